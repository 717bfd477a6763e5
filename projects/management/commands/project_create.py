"""`manage.py project_create --name N --api-key K`: the reference CLI's `manage project create`, in process."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from audit.services import AuditContext
from llmproxy.services import ServiceError
from projects.services import project_create


class Command(BaseCommand):
    help = "Create a project holding an upstream API key (stored encrypted). Prints the project id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="Unique project name.")
        parser.add_argument("--api-key", required=True, help="The upstream provider key, e.g. sk-... for OpenAI.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the project as JSON instead of its id."
        )

    def handle(self, *args, name: str, api_key: str, as_json: bool, **options) -> None:
        try:
            project = project_create(name=name.strip(), api_key=api_key.strip(), ctx=AuditContext(actor="cli"))
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if as_json:
            self.stdout.write(_as_json(project))
        else:
            # The id alone on stdout, so `id=$(manage.py project_create ...)` works; the rest is for people.
            self.stdout.write(str(project.id))
            print(f"Created project {project.name!r} (API key {project.api_key_obfuscated}).", file=sys.stderr)


def _as_json(project) -> str:
    return json.dumps(
        {
            "id": str(project.id),
            "name": project.name,
            "api_key": project.api_key_obfuscated,
            "is_active": project.is_active,
            "created_at": project.created_at.isoformat().replace("+00:00", "Z"),
        }
    )
