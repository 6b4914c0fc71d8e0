"""The webhook SSRF guard's policy: address classes, allow-lists and URL checks (no sockets)."""

import socket

import pytest

from pipeline.webhooks.ssrf import (
    AddressPolicy,
    WebhookAddressRefused,
    check_url,
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
