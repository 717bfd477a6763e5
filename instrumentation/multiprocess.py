"""prometheus_client's multiprocess mode, set up by settings.py before any metric object exists.

Every process (web workers, Celery workers, beat) writes its own memory-mapped files into
PROMETHEUS_MULTIPROC_DIR, and a scrape of any web process adds them all up. prometheus_client names
those files by PID; containers sharing one folder (a volume) all have small PIDs (often 1), so the
files are named by host name and PID here instead, and each process refreshes its live gauges every
few seconds (metrics_runtime's heartbeat) so that a scrape can tell a running process from a crashed one.
Counters of finished processes stay: totals never go down.
"""

import glob
import os
import socket
import time
from typing import Any

LIVE_MODES = ("liveall", "livemin", "livemax", "livesum", "livemostrecent")
_cached_id: list[Any] = [0, ""]  # [pid, id]: the id of the process that last asked
STALE_AFTER = 60.0  # seconds without a heartbeat after which another host's process counts as gone


def process_id() -> str:
    """`<host>-<pid>`; prometheus_client asks on every increment (to notice forks), so it is cached per PID."""
    pid = os.getpid()
    if pid != _cached_id[0]:
        # File names are split on "_" by the collector, so the id must not contain one.
        _cached_id[:] = [pid, f"{_host()}-{pid}"]
    process: str = _cached_id[1]
    return process


def configure(path: str) -> None:
    """Use `path` (created if missing) for this process's metric files."""
    from prometheus_client import values

    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue(process_id)  # type: ignore[no-untyped-call]  # untyped in prometheus_client


def mark_dead(identifier: str) -> None:
    """Remove a finished process's live gauges: a gauge summed over live processes must forget it."""
    for mode in LIVE_MODES:
        for name in glob.glob(os.path.join(_folder(), f"gauge_{mode}_{identifier}.db")):
            try:
                os.remove(name)
            except FileNotFoundError:
                pass


def touch_own_live_files() -> None:
    """The heartbeat: other hosts' scrapes count a process's live gauges only while these stay fresh."""
    for name in glob.glob(os.path.join(_folder(), f"gauge_live*_{process_id()}.db")):
        try:
            os.utime(name)
        except FileNotFoundError:
            pass


def files_to_merge() -> list[str]:
    """Every counter and histogram file, and the live gauges of processes that still run.

    Processes of this host are checked by PID (and the files of dead ones removed); those of other hosts
    (containers sharing the folder) by their heartbeat, newer than STALE_AFTER seconds.
    """
    host, now, files = _host(), time.time(), []
    for name in glob.glob(os.path.join(_folder(), "*.db")):
        base = os.path.basename(name)
        if base.startswith("gauge_live"):
            file_host, _, pid = base.split("_", 2)[2][:-3].rpartition("-")
            if file_host == host and pid.isdigit() and not _alive(int(pid)):
                mark_dead(f"{file_host}-{pid}")
                continue
            if file_host != host and not _fresh(name, now):
                continue
        files.append(name)
    return files


def _fresh(name: str, now: float) -> bool:
    try:
        return now - os.stat(name).st_mtime <= STALE_AFTER
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _host() -> str:
    return socket.gethostname().replace("_", "-")


def _folder() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
