import uuid

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """A security-relevant operation, with the reference's audit table columns, also appended to AUDIT_LOG_FILE."""

    OUTCOMES = [(o, o) for o in ("success", "failure", "denied", "error")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=255)
    project_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    request_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    client_ip = models.CharField(max_length=64, blank=True, default="", db_index=True)
    method = models.CharField(max_length=16, blank=True, default="")
    path = models.CharField(max_length=2048, blank=True, default="")
    user_agent = models.CharField(max_length=1024, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=OUTCOMES, db_index=True)
    reason = models.TextField(blank=True, default="")
    token_id = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_events"
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["client_ip", "action"], name="audit_ip_action_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=["success", "failure", "denied", "error"]), name="audit_outcome_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} {self.timestamp:%Y-%m-%d %H:%M:%S}"
