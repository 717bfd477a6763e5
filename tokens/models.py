import base64
import hashlib
import os
import re
import time
import uuid

from django.db import models
from django.utils import timezone

TOKEN_RE = re.compile(r"^sk-[A-Za-z0-9_-]{22}$")


def uuid7_bytes() -> bytes:
    """16 bytes of a UUIDv7 (48-bit ms timestamp, version and variant bits, random rest), as the reference mints."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def generate_token() -> str:
    return "sk-" + base64.urlsafe_b64encode(uuid7_bytes()).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def format_error(token: str) -> str | None:
    """None when `token` has the reference's format, else the reference's description of the problem."""
    if not TOKEN_RE.match(token):
        return "invalid token format: invalid token format"
    try:
        if len(base64.urlsafe_b64decode(token[3:] + "==")) != 16:
            return "invalid token format: token decoding failed: wrong length"
    except ValueError as exc:
        return f"invalid token format: token decoding failed: {exc}"
    return None


def obfuscate_token(token: str) -> str:
    """The reference's ObfuscateToken: sk- + first 4 + stars + last 4 of the remainder."""
    if not token.startswith("sk-"):
        return token
    rest = token[3:]
    if len(rest) <= 8:
        return token
    return "sk-" + rest[:4] + "*" * (len(rest) - 8) + rest[-4:]


class TokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class Token(models.Model):
    """A proxy token. Only its SHA-256 hash is stored, plus a prefix and suffix for display."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=8)
    token_suffix = models.CharField(max_length=4)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tokens")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    is_active = models.BooleanField(default=True, db_index=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    request_count = models.PositiveIntegerField(default=0)
    max_requests = models.PositiveIntegerField(null=True, blank=True)
    cache_hit_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = TokenQuerySet.as_manager()

    class Meta:
        db_table = "tokens"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.obfuscated

    @property
    def obfuscated(self) -> str:
        """`sk-ABCD**************WXYZ`, the reference's display form, from the stored prefix and suffix."""
        return "sk-" + self.token_prefix + "*" * 14 + self.token_suffix

    def set_secret(self, token: str) -> None:
        self.token_hash = hash_token(token)
        self.token_prefix = token[3:7]
        self.token_suffix = token[-4:]

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and (now or timezone.now()) > self.expires_at

    @property
    def status(self) -> str:
        if not self.is_active:
            return "Revoked"
        return "Expired" if self.is_expired() else "Active"
