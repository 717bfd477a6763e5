"""Encryption at rest for upstream API keys, compatible with the reference's `enc:v1:` format.

`enc:v1:` + base64(nonce(12) || AES-256-GCM ciphertext+tag), keyed by ENCRYPTION_KEY (base64, 32 bytes).
Without ENCRYPTION_KEY (development only) a key derived from SECRET_KEY is used, with a warning.
"""

import base64
import hashlib
import logging
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

PREFIX = "enc:v1:"
logger = logging.getLogger(__name__)


class DecryptionError(Exception):
    """The stored value cannot be decrypted with the configured key."""


@lru_cache(maxsize=4)
def _cipher(encryption_key: str, secret_key: str) -> AESGCM:
    if encryption_key:
        return AESGCM(base64.b64decode(encryption_key))
    logger.warning("ENCRYPTION_KEY is not set: deriving the API-key encryption key from SECRET_KEY (development only).")
    return AESGCM(hashlib.sha256(b"llm-proxy-encryption:" + secret_key.encode()).digest())


def cipher() -> AESGCM:
    return _cipher(settings.ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = cipher().encrypt(nonce, plaintext.encode(), None)
    return PREFIX + base64.b64encode(nonce + sealed).decode()


def decrypt(stored: str) -> str:
    """Plaintext of a stored key; values without the prefix are legacy plaintext and returned as is."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        raw = base64.b64decode(stored[len(PREFIX) :])
        return cipher().decrypt(raw[:12], raw[12:], None).decode()
    except (ValueError, InvalidTag) as exc:
        raise DecryptionError("cannot decrypt the stored API key with the configured ENCRYPTION_KEY") from exc


def obfuscate_key(key: str) -> str:
    """The reference's ObfuscateTokenGeneric: <=4 all stars; 5-12 first 2 + stars; else first 8 + ... + last 4."""
    if len(key) <= 4:
        return "*" * len(key)
    if len(key) <= 12:
        return key[:2] + "*" * (len(key) - 2)
    return key[:8] + "..." + key[-4:]
