"""The webhook SSRF guard: address classes, allow-lists, URL checks, refusals before connecting."""

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

# Only loopback is ever connected to; every other address below is classified, never contacted.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "cgnat"),
    ("100.100.100.200", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fec0::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::", "loopback"),
    ("::7f00:1", "loopback"),
    ("::808:808", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmark"),
    ("100::1", "reserved"),
    ("2001::1", "reserved"),
    ("not-an-ip", "invalid-address"),
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::",
]


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


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_internal_addresses_are_refused_with_their_class(address: str, reason: str) -> None:
    assert AddressPolicy().refusal(address) == reason
    with pytest.raises(WebhookAddressRefused) as caught:
        AddressPolicy().check_address(address, "hooks.example")
    assert (caught.value.url_or_host, caught.value.address) == ("hooks.example", address)
    assert caught.value.reason == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(address) is None
    AddressPolicy().check_address(address, "hooks.example")


@pytest.mark.parametrize("value", [None, "", "false", " FALSE ", False])
def test_a_false_or_empty_setting_refuses_every_internal_address(value: str | bool | None) -> None:
    assert AddressPolicy.parse(value) == AddressPolicy()


@pytest.mark.parametrize("value", ["true", "True", True])
def test_allow_all_private_allows_internal_but_not_metadata(value: str | bool) -> None:
    policy = AddressPolicy.parse(value)

    assert policy.allow_all_private
    for address in ("10.0.0.1", "127.0.0.1", "::1", "fc00::1", "169.254.1.1", "100.64.0.1"):
        assert policy.refusal(address) is None
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:a9fe:a9fe"):
        assert policy.refusal(address) == "metadata"


def test_metadata_is_reachable_only_when_its_cidr_is_listed() -> None:
    policy = AddressPolicy.parse("169.254.169.254/32")

    assert policy.refusal("169.254.169.254") is None
    assert policy.refusal("169.254.170.2") == "metadata"


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.0/8,::1/128",
        "127.0.0.0/8 ::1/128",
        " 127.0.0.0/8 ,\n::1/128 ",
        '["127.0.0.0/8", "::1/128"]',
    ],
)
def test_a_cidr_list_allows_only_its_networks(value: str) -> None:
    policy = AddressPolicy.parse(value)

    assert policy.allow == AddressPolicy.parse("127.0.0.0/8,::1/128").allow
    assert not policy.allow_all_private
    for address in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        assert policy.refusal(address) is None
    assert policy.refusal("10.0.0.1") == "private"
    assert policy.refusal("::2") == "unspecified"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("127.0.0.0/8,not-a-cidr", "'not-a-cidr'"),
        ("10.0.0.1/8", "'10.0.0.1/8'"),
        ("127.0.0.0/33", "'127.0.0.0/33'"),
        ("true,10.0.0.0/8", "'true'"),
        ('["127.0.0.0/8", 5]', "5"),
        ('["127.0.0.0/8"', "Expecting"),
    ],
)
def test_a_bad_allow_list_names_the_bad_item(value: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        AddressPolicy.parse(value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://x/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/", "scheme"),
        ("hooks.example.com/x", "scheme"),
        ("http://", "no-host"),
        ("http:///path", "no-host"),
        ("http://[::1", "invalid-url"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.1./", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://2130706433/", "non-canonical-host"),
        ("http://0x7f000001/", "non-canonical-host"),
        ("http://0x7f.1/", "non-canonical-host"),
        ("http://127.1/", "non-canonical-host"),
        ("http://0177.0.0.1/", "non-canonical-host"),
        ("http://017700000001/", "non-canonical-host"),
        ("http://hooks.example.1/", "non-canonical-host"),
        ("http://ex%61mple.com/", "non-canonical-host"),
        ("http://user:secret@example.com/", "userinfo"),
        ("http://127.0.0.1:80@example.com/", "userinfo"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(WebhookAddressRefused) as caught:
        check_url(url, AddressPolicy())
    assert (caught.value.url_or_host, caught.value.reason) == (url, reason)


def test_check_url_names_the_literal_address() -> None:
    with pytest.raises(WebhookAddressRefused) as caught:
        check_url("http://[::ffff:127.0.0.1]:9/", AddressPolicy())
    assert caught.value.address == "::ffff:7f00:1"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://hooks.example.org/x",
        "HTTPS://Hooks.Example.ORG./x?y=1",
        "http://host1.example:8080/",
        "https://bücher.example/",
        "http://localhost:1/",
        "http://[2606:4700::1111]/",
        "http://93.184.216.34/",
    ],
)
def test_check_url_passes_hostnames_without_resolving_them(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"check_url resolved a name: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    check_url(url, AddressPolicy())


def test_check_url_lets_an_allowed_literal_through() -> None:
    policy = AddressPolicy.parse("127.0.0.0/8,::1/128")

    check_url("http://127.0.0.1:8080/hook", policy)
    check_url("http://[::1]:8080/hook", policy)
    with pytest.raises(WebhookAddressRefused, match="private"):
        check_url("http://10.0.0.1/", policy)


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
