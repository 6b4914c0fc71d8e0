"""The webhook SSRF guard: URL checks, an address policy and a resolver that enforces it."""

import ipaddress
import json
import re
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from pipeline.errors import PromptbusError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Credentials endpoints of AWS/GCP/Azure/OpenStack (v4 and v6), ECS tasks and Alibaba Cloud.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)

# First match wins, so narrow ranges precede the ranges that contain them.
_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason)
    for reason, cidrs in (
        ("unspecified", "0.0.0.0/8 ::/128"),
        ("loopback", "127.0.0.0/8 ::1/128"),
        ("private", "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 fec0::/10 64:ff9b:1::/48"),
        ("cgnat", "100.64.0.0/10"),
        ("link-local", "169.254.0.0/16 fe80::/10"),
        ("documentation", "192.0.2.0/24 198.51.100.0/24 203.0.113.0/24 2001:db8::/32 3fff::/20"),
        ("benchmark", "198.18.0.0/15 2001:2::/48"),
        ("multicast", "224.0.0.0/4 ff00::/8"),
        ("broadcast", "255.255.255.255/32"),
        ("reserved", "192.0.0.0/24 192.88.99.0/24 240.0.0.0/4 100::/64 2001::/23"),
    )
    for cidr in cidrs.split()
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
# A last label that is a number makes a host an IPv4 address in legacy (inet_aton) parsing.
_NUMERIC_LABEL = re.compile(r"(^|\.)(\d+|0x[0-9a-f]*)\.?$")


class WebhookAddressRefused(PromptbusError):
    """Raised when a webhook URL or the address it resolves to is not allowed."""

    status = 422
    type = "webhook_address_refused"

    def __init__(self, url_or_host: str, *, address: str | None = None, reason: str) -> None:
        at = f" at {address}" if address is not None else ""
        super().__init__(f"webhook target {url_or_host!r}{at} refused: {reason}", field="url")
        self.url_or_host = url_or_host
        self.address = address
        self.reason = reason


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address maps, translates or tunnels to, if any."""
    if (mapped_or_6to4 := ip.ipv4_mapped or ip.sixtofour) is not None:
        return mapped_or_6to4
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """Why `ip` is internal (a reason word), or None for a public address."""
    if ip in METADATA:
        return "metadata"
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
        reason = classify(inner)
        # Mapped and NAT64 addresses reach exactly the IPv4 host; the others are judged as IPv6 too.
        if reason is not None or ip.ipv4_mapped is not None or ip in _NAT64:
            return reason
    for network, reason in _RANGES:
        if ip.version == network.version and ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which internal addresses webhooks may reach; by default none."""

    allow: tuple[IPNetwork, ...] = ()
    allow_all_private: bool = False

    @classmethod
    def parse(cls, value: str | bool | None) -> "AddressPolicy":
        """Read PROMPTBUS_WEBHOOK_ALLOW_PRIVATE: a boolean, or CIDRs (comma/space list or JSON)."""
        if isinstance(value, bool) or value is None:
            return cls(allow_all_private=bool(value))
        text = value.strip()
        if text.lower() in ("", "false", "0", "no", "off"):
            return cls()
        if text.lower() in ("true", "1", "yes", "on"):
            return cls(allow_all_private=True)
        # Text starting with "[" can only decode to a list (or raise JSONDecodeError, a ValueError).
        items = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        networks: list[IPNetwork] = []
        for item in items:
            try:
                # Strict: a CIDR with host bits set ("10.0.0.1/8") is probably a typo.
                networks.append(ipaddress.ip_network(item.strip() if isinstance(item, str) else ""))
            except ValueError:
                raise ValueError(f"webhook allow-list item {item!r} is not a CIDR") from None
        return cls(allow=tuple(networks))

    def refusal(self, address: str) -> str | None:
        """None if `address` may be connected to, else the reason it may not."""
        try:
            # A zone ("fe80::1%eth0") names an interface, not a different address.
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "invalid-address"
        reason = classify(ip)
        if reason is None:
            return None
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
            forms.append(inner)
        if any(f.version == n.version and f in n for f in forms for n in self.allow):
            return None
        # A blanket allow still keeps cloud credentials out of reach; listing a CIDR does not.
        if self.allow_all_private and reason != "metadata":
            return None
        return reason

    def check_address(self, address: str, host: str) -> None:
        """Raise WebhookAddressRefused unless `host`'s resolved `address` may be connected to."""
        reason = self.refusal(address)
        if reason is not None:
            raise WebhookAddressRefused(host, address=address, reason=reason)


def check_url(url: str, policy: AddressPolicy) -> None:
    """Refuse a bad scheme, a missing host, userinfo, or a host that is a refused/odd IP form."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise WebhookAddressRefused(url, reason="invalid-url") from None
    host = parsed.raw_host or ""
    if parsed.scheme not in ("http", "https"):
        raise WebhookAddressRefused(url, reason="scheme")
    if not host:
        raise WebhookAddressRefused(url, reason="no-host")
    # "https://good.example@evil.example/" misleads readers, and secrets belong in signatures.
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise WebhookAddressRefused(url, reason="userinfo")
    try:
        ip = ipaddress.ip_address(host.removesuffix("."))
    except ValueError:
        # Integer, octal, hex and short IPv4 forms are refused rather than guessed at.
        if _NUMERIC_LABEL.search(host) or not _HOSTNAME.fullmatch(host):
            raise WebhookAddressRefused(url, reason="non-canonical-host") from None
    else:
        policy.check_address(str(ip), url)


class GuardedResolver(AbstractResolver):
    """Resolves with a real resolver, then drops every address the policy refuses."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._owned = resolver is None
        self._resolver = resolver if resolver is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host`, keep the allowed addresses, and refuse the host if none is left."""
        results = await self._resolver.resolve(host, port, family)
        kept = [r for r in results if self.policy.refusal(r["host"]) is None]
        if results and not kept:
            self.policy.check_address(results[0]["host"], host)
        return kept

    async def close(self) -> None:
        """Close the underlying resolver if this guard created it."""
        if self._owned:
            await self._resolver.close()


class _GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that re-checks every request's literal host and refuses proxies."""

    def __init__(self, resolver: GuardedResolver, *, limit: int, limit_per_host: int) -> None:
        super().__init__(
            resolver=resolver, use_dns_cache=False, limit=limit, limit_per_host=limit_per_host
        )
        self._guard = resolver

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature, overridden
    ) -> Connection:
        """Refuse before connecting: aiohttp skips the resolver for IP literals (redirects too)."""
        if req.proxy is not None:
            # The proxy would resolve and connect to the target where the guard cannot see.
            raise WebhookAddressRefused(str(req.url), reason="proxy")
        check_url(str(req.url), self._guard.policy)
        return await super().connect(req, traces, timeout)

    async def close(self, *, abort_ssl: bool = False) -> None:
        """Close the connections, then the guard's resolver (aiohttp closes only its own)."""
        await super().close(abort_ssl=abort_ssl)
        await self._guard.close()


def guarded_connector(
    policy: AddressPolicy,
    *,
    limit: int,
    limit_per_host: int,
    resolver: AbstractResolver | None = None,
) -> aiohttp.TCPConnector:
    """A connector whose every connection goes through GuardedResolver, with no DNS cache."""
    guard = GuardedResolver(policy, resolver)
    return _GuardedConnector(guard, limit=limit, limit_per_host=limit_per_host)


def refusal_from(exc: BaseException) -> WebhookAddressRefused | None:
    """The WebhookAddressRefused behind whatever aiohttp raised, if there is one."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if isinstance(current, WebhookAddressRefused):
            return current
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, aiohttp.ClientConnectorError):
            pending.append(current.os_error)
    return None
