"""The guide's "Go runtime" figures, measured in Python, under the guide's own names.

Go's runtime counts goroutines, heap bytes and GC cycles; CPython has asyncio tasks and threads,
the C allocator (glibc malloc) plus pymalloc's object arenas, and a generational collector that is
triggered by allocation counts. Each HELP text says which Python figure stands behind the name.

Values are sampled, not kept live: at every scrape and, with several processes, by each process every
REFRESH_INTERVAL seconds (a daemon thread), so that the gauges of all live processes can be summed.
GC pauses are timed with `gc.callbacks`.
"""

import asyncio
import ctypes
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from instrumentation import multiprocess as process_files
from llmproxy import compat, lifecycle

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
REFRESH_INTERVAL = 5.0
# Go's client names these counters without `_total`; the guide's queries use those names.
UNSUFFIXED_COUNTERS = {"llm_proxy_memory_total_alloc_bytes", "llm_proxy_gc_pause_total_seconds"}
GaugeMode = Literal[
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent"
]


def _gauge(name: str, help_text: str, mode: GaugeMode = "livesum", labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, help_text, labels, multiprocess_mode=mode)


GOROUTINES = _gauge("llm_proxy_goroutines", "Concurrent units of work: live asyncio tasks plus Python threads")
HEAP_ALLOC = _gauge(
    "llm_proxy_memory_heap_alloc_bytes",
    "Bytes in use in the C heap (glibc mallinfo2 uordblks+hblkhd): buffers, C extensions, Python objects over 512 B",
)
HEAP_SYS = _gauge(
    "llm_proxy_memory_heap_sys_bytes", "Bytes the C heap obtained from the OS (glibc mallinfo2 arena+hblkhd)"
)
HEAP_IDLE = _gauge(
    "llm_proxy_memory_heap_idle_bytes", "Free bytes the C heap holds for reuse (glibc mallinfo2 fordblks)"
)
HEAP_INUSE = _gauge(
    "llm_proxy_memory_heap_inuse_bytes",
    "Anonymous resident memory (RssAnon): the C heap, pymalloc's object arenas and thread stacks",
)
HEAP_RELEASED = _gauge(
    "llm_proxy_memory_heap_released_bytes",
    "Free bytes at the top of the C heap that malloc can give back to the OS (glibc mallinfo2 keepcost)",
)
MEMORY_SYS = _gauge("llm_proxy_memory_sys_bytes", "Resident memory of the process (VmRSS)")
TOTAL_ALLOC = Counter(
    "llm_proxy_memory_total_alloc_bytes",
    "Python keeps no allocation total: the increases of llm_proxy_memory_heap_alloc_bytes between samples",
)
MALLOCS = Counter(
    "llm_proxy_memory_mallocs",
    "Python keeps no malloc count: increases of pymalloc's allocated blocks (sys.getallocatedblocks) between samples",
)
FREES = Counter(
    "llm_proxy_memory_frees",
    "Python keeps no free count: decreases of pymalloc's allocated blocks (sys.getallocatedblocks) between samples",
)
GC_RUNS = Counter("llm_proxy_gc_runs", "Garbage collections of any generation (gc.get_stats)")
GC_PAUSE = Counter(
    "llm_proxy_gc_pause_total_seconds", "Time spent inside the cyclic garbage collector (timed with gc.callbacks)"
)
GC_NEXT = _gauge(
    "llm_proxy_gc_next_bytes",
    "Python collects by object count, not bytes: container allocations left before the next generation-0 collection",
    mode="livemin",
)
THREADS = _gauge("llm_proxy_python_threads", "Python threads alive (threading.active_count)")
TASKS = _gauge("llm_proxy_python_asyncio_tasks", "asyncio tasks alive on the event loop")
BLOCKS = _gauge("llm_proxy_python_allocated_blocks", "Memory blocks pymalloc has handed out (sys.getallocatedblocks)")
GC_TRACKED = _gauge(
    "llm_proxy_python_gc_pending_objects",
    "Allocations counted towards each generation's next collection (gc.get_count)",
    labels=("generation",),
)
START_TIME = _gauge("llm_proxy_start_time_seconds", "Unix time this process started serving", mode="liveall")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _load_mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):  # not glibc >= 2.33 (macOS, musl): heap figures stay 0
        return None
    function.restype = _MallInfo2
    return function


_mallinfo2 = _load_mallinfo2()

# Written by the gc callback (which runs with the GIL held, one collection at a time).
_gc = {"started": 0.0, "pause": 0.0}
# What was already transferred to the counters, to add only the difference.
_seen = {"pause": 0.0, "runs": 0, "heap_alloc": 0, "blocks": 0}
_state: dict[str, Any] = {"pid": 0, "loop": None}
_refresh_lock = threading.Lock()
_hooks: list[Callable[[], None]] = []


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        _gc["pause"] += time.perf_counter() - _gc["started"]


def install() -> None:
    """Start timing collections and mark this process's start (idempotent; re-run in a forked child)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    forked = _state["pid"] != 0
    _state["pid"] = os.getpid()
    START_TIME.set(_process_start_time())
    # A forked child starts from zero for what it did not itself do; counts before this are the parent's.
    _seen.update(pause=_gc["pause"], runs=_gc_runs() if forked else 0, heap_alloc=0, blocks=0)
    if MULTIPROCESS:
        threading.Thread(target=_heartbeat, name="metrics-heartbeat", daemon=True).start()


def _heartbeat() -> None:
    """With several processes, each refreshes its own figures for the others' scrapes, busy or idle."""
    pid = os.getpid()
    while os.getpid() == pid:
        try:
            refresh()
            process_files.touch_own_live_files()
        except Exception:  # never let the heartbeat die of one bad sample
            logger.debug("metrics heartbeat failed", exc_info=True)
        time.sleep(REFRESH_INTERVAL)


def remember_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The web process's event loop, so that samples taken from other threads can count its tasks."""
    _state["loop"] = loop


async def _remember_running_loop() -> None:
    remember_loop(asyncio.get_running_loop())


def on_refresh(hook: Callable[[], None]) -> None:
    """Run `hook` at every sample too (other modules' sampled gauges, e.g. the event buffer's)."""
    if hook not in _hooks:
        _hooks.append(hook)


def refresh(tasks: int | None = None) -> None:
    with _refresh_lock:
        tasks = _asyncio_tasks() if tasks is None else tasks
        threads = threading.active_count()
        GOROUTINES.set(tasks + threads)
        TASKS.set(tasks)
        THREADS.set(threads)
        _refresh_memory()
        _refresh_gc()
        for hook in _hooks:
            hook()


def _asyncio_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # not on the event loop's thread: count the remembered loop's tasks
        loop = _state["loop"]
        if loop is None or loop.is_closed():
            return 0
        try:
            return len(asyncio.all_tasks(loop))  # copies the task set, retrying if it changes meanwhile
        except RuntimeError:
            return 0


def _refresh_memory() -> None:
    status = _proc_status()
    MEMORY_SYS.set(status.get("VmRSS", 0))
    HEAP_INUSE.set(status.get("RssAnon", 0))
    if _mallinfo2 is not None:
        info = _mallinfo2()
        heap_alloc = info.uordblks + info.hblkhd
        HEAP_ALLOC.set(heap_alloc)
        HEAP_SYS.set(info.arena + info.hblkhd)
        HEAP_IDLE.set(info.fordblks)
        HEAP_RELEASED.set(info.keepcost)
        if heap_alloc > _seen["heap_alloc"]:
            TOTAL_ALLOC.inc(heap_alloc - _seen["heap_alloc"])
        _seen["heap_alloc"] = heap_alloc
    blocks = sys.getallocatedblocks()
    BLOCKS.set(blocks)
    (MALLOCS if blocks >= _seen["blocks"] else FREES).inc(abs(blocks - _seen["blocks"]))
    _seen["blocks"] = blocks


def _refresh_gc() -> None:
    pause, runs = _gc["pause"], _gc_runs()
    GC_PAUSE.inc(max(0.0, pause - _seen["pause"]))
    GC_RUNS.inc(max(0, runs - _seen["runs"]))
    _seen.update(pause=pause, runs=runs)
    counts = gc.get_count()
    GC_NEXT.set(max(0, gc.get_threshold()[0] - counts[0]))
    for generation, pending in enumerate(counts):
        GC_TRACKED.labels(str(generation)).set(pending)


def _process_start_time() -> float:
    """When this process started (not when this module was first imported, which may be a first request)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime, after "comm"
        with open("/proc/stat", "rb") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):  # not Linux
        return time.time()


def _gc_runs() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


def _proc_status() -> dict[str, int]:
    """VmRSS, RssAnon, ... in bytes from /proc/self/status (Linux; empty elsewhere)."""
    figures = {}
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.endswith(b" kB\n") and (line.startswith(b"Vm") or line.startswith(b"Rss")):
                    key, _, value = line.partition(b":")
                    figures[key.decode()] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return figures


def finish(families: list[Metric]) -> list[Metric]:
    """Replace the per-process start times with the guide's uptime: since the oldest live process started."""
    starts = [
        sample.value
        for family in families
        if family.name == compat.metric_name(START_TIME)
        for sample in family.samples
        if sample.value > 0
    ]
    kept = [family for family in families if family.name != compat.metric_name(START_TIME)]
    uptime = GaugeMetricFamily("llm_proxy_uptime_seconds", "Time since the server started")
    uptime.add_metric([], max(0.0, time.time() - min(starts)) if starts else 0.0)
    return [uptime, *kept]


def _after_fork_in_child() -> None:
    _refresh_lock.release()
    install()  # Celery's prefork children: their own start time and heartbeat


install()
# No fork while the heartbeat is writing: a child must not inherit a lock held by a thread it does not have.
os.register_at_fork(
    before=_refresh_lock.acquire, after_in_parent=_refresh_lock.release, after_in_child=_after_fork_in_child
)


def register() -> None:
    """Remember the serving loop when the web process starts (its samples of tasks are taken on that loop)."""
    lifecycle.on_startup(_remember_running_loop)
