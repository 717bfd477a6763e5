"""Kept for the imports in `llmproxy/proxy/` (auth, cache purge), `scripts/` and `tests/browser/`: the audit
service is `audit/services.py`."""

from .services import ACTOR_SYSTEM, AuditContext, aaudit_log, audit_log, client_ip, obfuscate_id

__all__ = ["ACTOR_SYSTEM", "AuditContext", "aaudit_log", "audit_log", "client_ip", "obfuscate_id"]
