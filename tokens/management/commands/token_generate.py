"""`manage.py token_generate --project-id ID --duration MINUTES`: the reference's `manage token generate`."""

import json
import sys
import uuid

from django.core.management.base import BaseCommand, CommandError

from audit.services import AuditContext
from llmproxy.services import ServiceError
from projects.models import Project
from tokens.services import MAX_DURATION_MINUTES, token_create


class Command(BaseCommand):
    help = "Mint a proxy token for a project and print it. The token is shown only here; only its hash is stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project-id", required=True, help="The project's id (a UUID).")
        parser.add_argument("--duration", type=int, default=1440, help="Lifetime in minutes (default 1440, one day).")
        parser.add_argument("--max-requests", type=int, default=None, help="Request quota; omit or 0 for unlimited.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print id, token, expires_at as JSON.")

    def handle(self, *args, project_id: str, duration: int, max_requests: int | None, as_json: bool, **options) -> None:
        if not 1 <= duration <= MAX_DURATION_MINUTES:
            raise CommandError(f"--duration must be between 1 and {MAX_DURATION_MINUTES} minutes, got {duration}.")
        if max_requests is not None and max_requests < 0:
            raise CommandError(f"--max-requests must be >= 0, got {max_requests}.")
        project = _project(project_id)
        try:
            token, secret = token_create(
                project=project, duration_minutes=duration, max_requests=max_requests, ctx=AuditContext(actor="cli")
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if as_json:
            self.stdout.write(_as_json(token, secret))
        else:
            # The token alone on stdout, so `token=$(manage.py token_generate ...)` works.
            self.stdout.write(secret)
            quota = token.max_requests or "unlimited"
            print(
                f"Token for {project.name!r}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC, max requests {quota}.",
                file=sys.stderr,
            )


def _project(project_id: str) -> Project:
    try:
        pk = uuid.UUID(project_id)
    except ValueError:
        raise CommandError(f"--project-id {project_id!r} is not a project id (a UUID).") from None
    project = Project.objects.filter(pk=pk).first()
    if project is None:
        raise CommandError(f"project not found: {project_id}")
    return project


def _as_json(token, secret: str) -> str:
    body = {
        "id": str(token.id),
        "token": secret,
        "project_id": str(token.project_id),
        "expires_at": token.expires_at.isoformat().replace("+00:00", "Z"),
    }
    if token.max_requests:
        body["max_requests"] = token.max_requests
    return json.dumps(body)
