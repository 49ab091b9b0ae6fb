"""Encryption at rest for provider credentials.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys derived by HKDF-SHA256 from
`settings.AIGW_ENCRYPTION_KEYS`; the first key encrypts, every key decrypts (MultiFernet), so
keys can be rotated by prepending a new one.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _derive(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aigw provider credentials").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(k) for k in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt `plaintext`; returns a URL-safe token string."""
    return _fernet(tuple(settings.AIGW_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a token made by `encrypt`.

    Raises:
        cryptography.fernet.InvalidToken: if no configured key decrypts it.
    """
    return _fernet(tuple(settings.AIGW_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
