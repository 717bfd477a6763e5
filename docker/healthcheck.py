"""Container HEALTHCHECK: GET /ready on the port of LISTEN_ADDR; exit 0 only on 200."""

import os
import sys
import urllib.error
import urllib.request

port = os.environ.get("LISTEN_ADDR", "0.0.0.0:8080").rpartition(":")[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"not ready: {exc}", file=sys.stderr)
    sys.exit(1)
