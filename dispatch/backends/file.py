"""The `file` service: one JSON line per payload, appended, flushed and fsynced per batch."""

import os
from pathlib import Path

import ujson

from dispatch.backends.base import Backend, BackendConfigError, DeliveryError


class FileBackend(Backend):
    name = "file"
    batch_wait = 0.0  # local appends are cheap: write as soon as events arrive

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        if not endpoint:
            raise BackendConfigError(
                "The file dispatcher needs a file path: pass --endpoint PATH or set DISPATCHER_ENDPOINT "
                "(Celery workers use DISPATCH_FILE_PATH)."
            )
        super().__init__(endpoint=endpoint)
        self.path = Path(endpoint)

    def send(self, payloads: list[dict]) -> None:
        data = "".join(ujson.dumps(p, ensure_ascii=False, escape_forward_slashes=False) + "\n" for p in payloads)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened per batch, so a rotated file is picked up; O_APPEND keeps concurrent lines whole.
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"file {self.path}: {exc}") from exc
