"""API keys as callers hold them and as promptbus keeps them: only their SHA-256.

A key is `pb_` and 43 URL-safe characters (32 random bytes). Its first characters are
its visible prefix, shown in listings so that a person can tell keys apart; the rest is
never stored. A key that arrives is hashed and looked up by its hash.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

KEY_MARK: Final = "pb_"
# The prefix shown in listings: the mark and 8 characters (48 bits: not enough to guess with).
PREFIX_CHARS: Final = len(KEY_MARK) + 8
# A key that arrives longer than this is no key of ours; it is not even hashed.
MAX_KEY_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the plaintext (shown once), its prefix and its hash."""

    plaintext: str
    prefix: str
    digest: str


def new_key() -> NewKey:
    """A random key, with what is stored of it."""
    plaintext = KEY_MARK + secrets.token_urlsafe(32)
    return NewKey(plaintext=plaintext, prefix=plaintext[:PREFIX_CHARS], digest=digest_of(plaintext))


def new_key_id() -> str:
    """A key's id: public, names it in listings and revocations."""
    return "key_" + secrets.token_hex(8)


def digest_of(key: str) -> str:
    """The SHA-256 of a key, hex: what the database holds and lookups use."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_digest(stored: str, presented: str) -> bool:
    """Whether two digests are equal, compared in constant time."""
    return hmac.compare_digest(stored.encode(), presented.encode())
