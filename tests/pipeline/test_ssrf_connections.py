"""The SSRF guard on real connections: resolver, connector, refusal before any connect."""

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from pipeline.webhooks.ssrf import (
    AddressPolicy,
    GuardedResolver,
    WebhookAddressRefused,
    check_url,
    guarded_connector,
    refusal_from,
)


# Only loopback is ever connected to.
def _ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6 = _ipv6_loopback()


class FakeResolver(AbstractResolver):
    """Answers from a fixed table, so no test ever asks a real DNS server."""

    def __init__(self, table: dict[str, list[str]], error: Exception | None = None) -> None:
        self.table = table
        self.error = error
        self.asked: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if self.error is not None:
            raise self.error
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


def _localhost_resolver() -> AbstractResolver | None:
    """None (the real resolver) if /etc/hosts answers "localhost", else a fake: no DNS traffic."""
    hosts = Path("/etc/hosts")
    lines = hosts.read_text().splitlines() if hosts.exists() else []
    if any("localhost" in line.split("#", 1)[0].split()[1:] for line in lines):
        return None
    return FakeResolver({"localhost": ["127.0.0.1", *(["::1"] if IPV6 else [])]})


@dataclass
class Listener:
    """A raw TCP listener on loopback that counts every accepted connection per local address."""

    port: int
    redirect_to: str = ""
    accepted: Counter[str] = field(default_factory=Counter)
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted[writer.get_extra_info("sockname")[0]] += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            self.requests.append(head + await reader.readexactly(length))
            if head.startswith(b"POST /redirect "):
                reply = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {self.redirect_to}\r\n"
                writer.write(f"{reply}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    def total(self) -> int:
        return sum(self.accepted.values())


def _bind_same_port(hosts: list[str]) -> list[socket.socket]:
    """Sockets bound to one free port on every host, so "localhost" lands here on v4 or v6."""
    for _ in range(50):
        bound: list[socket.socket] = []
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                bound.append(socket.socket(family, socket.SOCK_STREAM))
                bound[-1].bind((host, bound[0].getsockname()[1] if len(bound) > 1 else 0))
        except OSError:
            for sock in bound:
                sock.close()
            continue
        return bound
    raise RuntimeError(f"no common free port on {hosts}")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    hosts = ["127.0.0.1", "127.0.0.2", *(["::1"] if IPV6 else [])]
    sockets = _bind_same_port(hosts)
    counting = Listener(port=sockets[0].getsockname()[1])
    servers = [await asyncio.start_server(counting.handle, sock=sock) for sock in sockets]
    yield counting
    for server in servers:
        server.close()
        await server.wait_closed()


async def _post(
    url: str,
    policy: AddressPolicy,
    resolver: AbstractResolver | None = None,
    *,
    redirects: bool = False,
    proxy: str | None = None,
) -> int:
    """POST through a guarded session, without check_url, so only the connector guards."""
    connector = guarded_connector(policy, limit=4, limit_per_host=2, resolver=resolver)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(url, data=b'{"n":1}', allow_redirects=redirects, proxy=proxy) as response,
    ):
        await response.read()
        return response.status


TABLE = {
    "rebind.test": ["127.0.0.1"],
    "mixed.test": ["127.0.0.1", "93.184.216.34"],
    "meta.test": ["169.254.169.254"],
    "v6.test": ["fe80::1%eth0", "::ffff:10.0.0.1"],
}


@pytest.mark.parametrize(
    ("host", "address", "reason"),
    [
        ("rebind.test", "127.0.0.1", "loopback"),
        ("meta.test", "169.254.169.254", "metadata"),
        ("v6.test", "fe80::1%eth0", "link-local"),
    ],
)
async def test_the_resolver_refuses_a_host_with_only_internal_addresses(
    host: str, address: str, reason: str
) -> None:
    resolver = GuardedResolver(AddressPolicy(), FakeResolver(TABLE))

    with pytest.raises(WebhookAddressRefused) as caught:
        await resolver.resolve(host, 443)
    assert (caught.value.url_or_host, caught.value.address, caught.value.reason) == (
        host,
        address,
        reason,
    )


async def test_the_resolver_drops_internal_addresses_and_keeps_public_ones() -> None:
    resolver = GuardedResolver(AddressPolicy(), FakeResolver(TABLE))

    results = await resolver.resolve("mixed.test", 443, socket.AF_UNSPEC)

    assert [(r["host"], r["port"], r["hostname"]) for r in results] == [
        ("93.184.216.34", 443, "mixed.test")
    ]


async def test_the_resolver_follows_the_allow_list() -> None:
    resolver = GuardedResolver(AddressPolicy.parse("127.0.0.0/8"), FakeResolver(TABLE))

    assert [r["host"] for r in await resolver.resolve("rebind.test", 80)] == ["127.0.0.1"]
    assert [r["host"] for r in await resolver.resolve("mixed.test", 80)] == [
        "127.0.0.1",
        "93.184.216.34",
    ]
    with pytest.raises(WebhookAddressRefused, match="metadata"):
        await resolver.resolve("meta.test", 80)


async def test_the_resolver_passes_lookup_failures_through_and_leaves_a_given_resolver_open() -> (
    None
):
    fake = FakeResolver(TABLE)
    resolver = GuardedResolver(AddressPolicy(), fake)

    with pytest.raises(socket.gaierror):
        await resolver.resolve("nowhere.test", 80)
    await resolver.close()
    assert not fake.closed


async def test_the_connector_never_caches_dns() -> None:
    connector = guarded_connector(AddressPolicy(), limit=3, limit_per_host=1)
    try:
        assert isinstance(connector, aiohttp.TCPConnector)
        assert not connector.use_dns_cache
        assert (connector.limit, connector.limit_per_host) == (3, 1)
    finally:
        await connector.close()


async def test_localhost_is_refused_after_resolving_and_before_connecting(
    listener: Listener,
) -> None:
    url = f"http://localhost:{listener.port}/hook"
    check_url(url, AddressPolicy())  # a name passes; its addresses are judged at connect time

    # A refusal is not an OSError, so aiohttp lets it through unwrapped.
    with pytest.raises(WebhookAddressRefused) as caught:
        await _post(url, AddressPolicy(), _localhost_resolver())

    assert (caught.value.url_or_host, caught.value.reason) == ("localhost", "loopback")
    assert refusal_from(caught.value) is caught.value
    assert listener.total() == 0


async def test_a_name_rebound_to_loopback_is_refused_before_connecting(listener: Listener) -> None:
    fake = FakeResolver(TABLE)

    with pytest.raises(WebhookAddressRefused) as caught:
        await _post(f"http://rebind.test:{listener.port}/hook", AddressPolicy(), fake)

    assert (caught.value.address, caught.value.reason) == ("127.0.0.1", "loopback")
    assert fake.asked == ["rebind.test"]
    assert listener.total() == 0


async def test_a_refusal_wrapped_by_aiohttp_is_still_found(listener: Listener) -> None:
    class OSErrorRefusal(WebhookAddressRefused, OSError):
        """A refusal that is also an OSError, as it may become in the project's error tree."""

    refused = OSErrorRefusal("rebind.test", address="127.0.0.1", reason="loopback")

    with pytest.raises(aiohttp.ClientConnectorDNSError) as caught:
        await _post(
            f"http://rebind.test:{listener.port}/", AddressPolicy(), FakeResolver({}, refused)
        )

    assert refusal_from(caught.value) is refused
    assert listener.total() == 0


def test_refusal_from_walks_causes_and_contexts() -> None:
    refused = WebhookAddressRefused("h", reason="loopback")
    try:
        try:
            raise refused
        except WebhookAddressRefused:
            raise RuntimeError("during handling") from None
    except RuntimeError as outer:
        hidden = outer
    try:
        raise aiohttp.ClientConnectionError("wrapped") from refused
    except aiohttp.ClientConnectionError as wrapped:
        caused = wrapped

    assert refusal_from(caused) is refused
    assert hidden.__context__ is refused
    assert refusal_from(hidden) is refused
    assert refusal_from(aiohttp.ClientConnectionError("plain")) is None


async def test_a_literal_loopback_url_is_refused_by_check_url_and_by_the_connector(
    listener: Listener,
) -> None:
    url = f"http://127.0.0.1:{listener.port}/hook"
    with pytest.raises(WebhookAddressRefused, match="loopback"):
        check_url(url, AddressPolicy())

    # aiohttp skips the resolver for IP literals; the connector checks them itself.
    with pytest.raises(WebhookAddressRefused) as caught:
        await _post(url, AddressPolicy())

    assert (caught.value.address, caught.value.reason) == ("127.0.0.1", "loopback")
    assert listener.total() == 0


async def test_ipv6_loopback_is_refused_before_connecting(listener: Listener) -> None:
    url = f"http://[::1]:{listener.port}/hook"
    with pytest.raises(WebhookAddressRefused, match="loopback"):
        check_url(url, AddressPolicy())
    if IPV6:
        with pytest.raises(WebhookAddressRefused, match="loopback"):
            await _post(url, AddressPolicy())
        assert await _post(url, AddressPolicy.parse("::1/128")) == 200
        assert listener.accepted == Counter({"::1": 1})
    else:
        assert listener.total() == 0


async def test_allowed_loopback_receives_the_post(listener: Listener) -> None:
    policy = AddressPolicy.parse("127.0.0.0/8,::1/128")

    status = await _post(f"http://localhost:{listener.port}/hook", policy, _localhost_resolver())

    assert status == 200
    assert listener.total() == 1
    assert listener.requests[0].startswith(b"POST /hook HTTP/1.1\r\n")
    assert listener.requests[0].endswith(b'\r\n\r\n{"n":1}')


async def test_an_allowed_rebound_name_and_literal_reach_the_listener(listener: Listener) -> None:
    policy = AddressPolicy.parse("127.0.0.0/8")

    assert await _post(f"http://rebind.test:{listener.port}/a", policy, FakeResolver(TABLE)) == 200
    assert await _post(f"http://127.0.0.1:{listener.port}/b", policy) == 200

    assert listener.accepted == Counter({"127.0.0.1": 2})
    assert b"Host: rebind.test:" in listener.requests[0]


async def test_a_redirect_to_a_refused_literal_is_not_followed(listener: Listener) -> None:
    listener.redirect_to = f"http://127.0.0.2:{listener.port}/hook"

    with pytest.raises(WebhookAddressRefused) as caught:
        await _post(
            f"http://127.0.0.1:{listener.port}/redirect",
            AddressPolicy.parse("127.0.0.1/32"),
            redirects=True,
        )

    assert (caught.value.address, caught.value.reason) == ("127.0.0.2", "loopback")
    assert listener.accepted == Counter({"127.0.0.1": 1})


async def test_a_proxy_is_refused_because_it_would_connect_out_of_sight(listener: Listener) -> None:
    with pytest.raises(WebhookAddressRefused, match="proxy"):
        await _post(
            "http://hooks.example/x",
            AddressPolicy(allow_all_private=True),
            FakeResolver(TABLE),
            proxy=f"http://127.0.0.1:{listener.port}",
        )
    assert listener.total() == 0
