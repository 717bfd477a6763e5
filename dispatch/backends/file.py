"""The `file` service: one JSON line per payload, appended, flushed and fsynced per batch."""

import os
from pathlib import Path
from typing import Any

from dispatch.backends.base import Backend, BackendConfigError, DeliveryError
from instrumentation.jsonsafe import dumps_bytes


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

    def send(self, payloads: list[dict[str, Any]]) -> None:
        data = b"".join(dumps_bytes(payload) + b"\n" for payload in payloads)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened per batch, so a rotated file is picked up; O_APPEND keeps concurrent lines whole.
            with open(self.path, "ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"file {self.path}: {exc}") from exc
