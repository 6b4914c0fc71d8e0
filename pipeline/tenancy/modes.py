"""Whether requests need a key: the `auth` setting, the address served on, keys made.

- `off`: never; every request is tenant `default`.
- `on`: always.
- `auto` (the default): on loopback, once any key exists (until then every request is
  tenant `default`, the embedded default); on any other address, always, and `serve`
  refuses to start while there is neither a key nor an admin key to make one with.
"""

import ipaddress
from enum import StrEnum

from pipeline.settings import Settings


class Mode(StrEnum):
    """How this process treats requests without a key."""

    OPEN = "open"  # auth=off: tenant `default`, keys ignored
    UNTIL_KEYS = "until_keys"  # loopback, auto: tenant `default` until a key exists
    REQUIRED = "required"


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`): reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mode_of(settings: Settings) -> Mode:
    """The mode `settings` give."""
    if settings.auth == "off":
        return Mode.OPEN
    if settings.auth == "on" or not is_loopback(settings.host):
        return Mode.REQUIRED
    return Mode.UNTIL_KEYS


def refusal(settings: Settings, *, keys_exist: bool) -> str | None:
    """Why `serve` must not start with these settings, or None."""
    if mode_of(settings) is not Mode.REQUIRED or settings.auth == "on":
        return None
    if keys_exist or settings.admin_key is not None:
        return None
    return (
        f"refusing to serve on {settings.host}, beyond loopback, with no API keys: anyone who "
        "can reach it could use it. Create a key (promptbus tenants create ID; promptbus keys "
        "create --tenant ID), or set PROMPTBUS_ADMIN_KEY to create keys through the admin API, "
        "or set PROMPTBUS_AUTH=off to serve without keys on purpose."
    )


def describe(settings: Settings, *, keys_exist: bool) -> str:
    """The start-up log's words on who may call."""
    mode = mode_of(settings)
    if mode is Mode.OPEN:
        return "auth off (PROMPTBUS_AUTH=off): every request is tenant 'default'"
    if mode is Mode.UNTIL_KEYS and not keys_exist:
        return "no API keys configured: every request is tenant 'default' (loopback only)"
    return "API keys required"
