import uuid

from django.db import models
from django.utils import timezone

from . import crypto


class ProjectQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Project(models.Model):
    """A tenant: holds the upstream provider key (encrypted) that its proxy tokens stand in for."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)
    api_key_encrypted = models.TextField(db_column="api_key")
    is_active = models.BooleanField(default=True, db_index=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        db_table = "projects"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)

    @property
    def api_key_obfuscated(self) -> str:
        try:
            return crypto.obfuscate_key(self.api_key)
        except crypto.DecryptionError:
            return "<undecryptable>"
