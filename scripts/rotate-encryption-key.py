#!/usr/bin/env python
"""Re-encrypt every project's upstream API key with a new ENCRYPTION_KEY (docs/operations.md).

Run with the current key configured (ENCRYPTION_KEY as the servers have it) and the new key on standard input,
never on the command line or in the environment:

    openssl rand -base64 32 > new-encryption-key
    python scripts/rotate-encryption-key.py < new-encryption-key            # in the image: docker compose run ...
    # then set ENCRYPTION_KEY to the new key for every process and restart them together

All projects are re-encrypted in one transaction (nothing changes when one fails to decrypt). A key already
encrypted with the new key is left as is, so a second run is harmless. The rotation is audited
(`encryption_key.rotate`, actor `cli`). `--dry-run` only checks that every key decrypts.
"""

import argparse
import base64
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")


def read_new_key() -> bytes:
    raw = sys.stdin.readline().strip()
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        sys.exit("error: the new key on standard input must be 32 bytes, base64-encoded (openssl rand -base64 32)")
    return key


def rotate(new_key: bytes, *, dry_run: bool) -> tuple[int, int]:
    """(re-encrypted, already on the new key). Raises DecryptionError naming the project that cannot be read."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from django.db import transaction

    from audit.services import AuditContext, audit_log
    from projects import crypto
    from projects.models import Project

    cipher = AESGCM(new_key)
    rotated = skipped = 0
    with transaction.atomic():
        for project in Project.objects.select_for_update().order_by("name"):
            stored = project.api_key_encrypted
            if stored.startswith(crypto.PREFIX):
                raw = base64.b64decode(stored[len(crypto.PREFIX) :])
                try:
                    cipher.decrypt(raw[:12], raw[12:], None)
                    skipped += 1
                    continue
                except (InvalidTag, ValueError):
                    pass
            try:
                plaintext = project.api_key  # with the current ENCRYPTION_KEY
            except crypto.DecryptionError:
                raise crypto.DecryptionError(
                    f"project {project.name!r} ({project.id}): cannot decrypt its key"
                ) from None
            nonce = os.urandom(12)
            sealed = cipher.encrypt(nonce, plaintext.encode(), None)
            project.api_key_encrypted = crypto.PREFIX + base64.b64encode(nonce + sealed).decode()
            if not dry_run:
                project.save(update_fields=["api_key_encrypted"])
            rotated += 1
        if not dry_run:
            details = {"projects_reencrypted": rotated, "projects_already_rotated": skipped}
            audit_log("encryption_key.rotate", "success", AuditContext(actor="cli"), details=details)
    return rotated, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="check that every key decrypts; change nothing")
    args = parser.parse_args()
    new_key = read_new_key()

    import django

    django.setup()
    from projects.crypto import DecryptionError

    try:
        rotated, skipped = rotate(new_key, dry_run=args.dry_run)
    except DecryptionError as exc:
        sys.exit(f"error: {exc}: is ENCRYPTION_KEY the key the servers use now? Nothing was changed.")
    verb = "would re-encrypt" if args.dry_run else "re-encrypted"
    print(f"{verb} {rotated} project key(s); {skipped} already on the new key")
    if not args.dry_run:
        print("now set ENCRYPTION_KEY to the new key for every process and restart them together")


if __name__ == "__main__":
    main()
