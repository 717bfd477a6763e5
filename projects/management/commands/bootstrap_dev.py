"""`manage.py bootstrap_dev`: the first-start step of `make run`.

Creates, when missing, `data/management_token` and a development admin login (`admin`, random password
in `data/admin_password`), both files mode 0600 and git-ignored, then prints how to get in. Safe to run
on every start: existing files and users are kept.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the development admin login and management token under data/ when missing, and print them."

    def handle(self, *args, **options) -> None:
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        file_token = read_or_create(data_dir / "management_token", lambda: secrets.token_hex(16))
        # An exported MANAGEMENT_TOKEN wins over the file, as in scripts/run-dev.sh.
        token = settings.MANAGEMENT_TOKEN or file_token
        password = ensure_admin(data_dir / "admin_password")
        self.stdout.write(
            "\nLLM Proxy (development)\n"
            f"  Admin:            {admin_url(settings.LISTEN_ADDR)}\n"
            f"  Username:         {ADMIN_USERNAME}\n"
            f"  Password:         {password}\n"
            f"  Management token: {token}\n"
            "  (stored in data/admin_password and data/management_token)\n"
        )


def read_or_create(path: Path, make) -> str:
    """The file's content, or a new value written to a new file readable by the owner only."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def ensure_admin(password_file: Path) -> str:
    """The development admin's password, creating the user when missing; a note when it is not ours to show."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        password = read_or_create(password_file, lambda: secrets.token_urlsafe(12))
        user_model.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
        return password
    password = password_file.read_text().strip() if password_file.exists() else ""
    if password and user.check_password(password):
        return password
    return "(set outside bootstrap_dev; change it with `manage.py changepassword admin`)"


def admin_url(listen_addr: str) -> str:
    """http://<host>:<port>/admin/ from LISTEN_ADDR; a wildcard or empty host is reached on 127.0.0.1."""
    host, colon, port = listen_addr.rpartition(":")
    if not colon:
        host, port = listen_addr, "8080"
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/admin/"
