"""Generation and hashing of API key secrets.

Format (SPEC §1): `aigw_` followed by 43 random base62 characters (about 256 bits). The stored
hash is SHA-256 of the whole secret: the secret is random and long, so no salt or slow hash is
needed (as for GitHub and healthchecks.io keys), and the hash can be an indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import string

SECRET_PREFIX = "aigw_"
API_TOKEN_PREFIX = "aigwp_"  # personal API tokens of the management API
RANDOM_LENGTH = 43
VISIBLE_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits


def generate_secret(prefix: str = SECRET_PREFIX) -> str:
    """A new secret: `prefix` + 43 random base62 characters, e.g. an API key `aigw_3kP…` (48
    characters) or, with API_TOKEN_PREFIX, a personal API token `aigwp_…`."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LENGTH))


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of `secret`, as stored in `ApiKey.hashed_secret`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def visible_prefix(secret: str) -> str:
    """The part of `secret` shown in lists, e.g. `aigw_3kPq9Zx`."""
    return secret[:VISIBLE_PREFIX_LENGTH]
