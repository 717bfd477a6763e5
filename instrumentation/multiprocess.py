"""prometheus_client's multiprocess mode, set up by settings.py before any metric object exists.

Every process (web workers, Celery workers, beat) writes its own memory-mapped files into
PROMETHEUS_MULTIPROC_DIR, and a scrape of any web process adds them all up. prometheus_client names
those files by PID; containers sharing one folder (a volume) all have small PIDs (often 1), so the
files are named by host name and PID here instead.
"""

import glob
import os
import socket

LIVE_MODES = ("liveall", "livemin", "livemax", "livesum", "livemostrecent")


def process_id() -> str:
    # File names are split on "_" by the collector, so the id must not contain one.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


def configure(path: str) -> None:
    """Use `path` (created if missing) for this process's metric files."""
    from prometheus_client import values

    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue(process_id)


def mark_dead(identifier: str) -> None:
    """Remove a finished process's live gauges: a gauge summed over live processes must forget it."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    for mode in LIVE_MODES:
        for name in glob.glob(os.path.join(path, f"gauge_{mode}_{identifier}.db")):
            try:
                os.remove(name)
            except FileNotFoundError:
                pass


def sweep_dead_local_processes() -> None:
    """Forget processes of this host that died without cleaning up (SIGKILL, OOM): their PIDs are gone."""
    prefix = socket.gethostname().replace("_", "-") + "-"
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    for name in glob.glob(os.path.join(path, f"gauge_live*_{prefix}*.db")):
        identifier = os.path.basename(name).split("_", 2)[2][:-3]
        pid = identifier[len(prefix) :]
        if pid.isdigit() and not _alive(int(pid)):
            mark_dead(identifier)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
