"""What the apps' services share: the one error type a caller can cause.

The services say what went wrong (`kind`); each entry point decides how to answer it: the management API
maps kinds to HTTP statuses (`llmproxy/manage/errors.py`), the admin shows the message on the form, and
the commands print it.
"""

INVALID = "invalid"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
FORBIDDEN = "forbidden"
KINDS = (INVALID, NOT_FOUND, CONFLICT, FORBIDDEN)


class ServiceError(Exception):
    """A request the caller must fix: `message` says what was wrong, in the reference's wording.

    `code` is a stable machine-readable code some answers carry (`project_inactive`); `audit_reason` and
    `details` shape the failure audit event; `audited` means the service already wrote that event.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = INVALID,
        code: str = "",
        audit_reason: str = "",
        details: dict | None = None,
        audited: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown service error kind {kind!r}; use one of {', '.join(KINDS)}")
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.code = code
        self.audit_reason = audit_reason or message
        self.details = details or {}
        self.audited = audited

    @property
    def audit_details(self) -> dict | None:
        """The details of the failure audit event, or None when the service already wrote it."""
        if self.audited:
            return None
        # A request the caller got wrong is a validation error; the others name their kind of error.
        key = "validation_error" if self.kind == INVALID else "error_type"
        return {key: self.audit_reason, **self.details, "error": self.message}
