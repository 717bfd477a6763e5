"""The dispatch benchmark script runs and accounts for every event (its timings are not asserted)."""

import re
import subprocess
import sys

import redis

from tests.dispatch.conftest import REDIS_URL
from tests.dispatch.processes import BASE_DIR, subprocess_env


def test_the_drain_benchmark_delivers_every_event_and_cleans_up():
    before = set(redis.Redis.from_url(REDIS_URL).keys("bench-dispatch-*"))
    result = subprocess.run(
        [sys.executable, "scripts/bench_dispatch.py", "drain", "--events", "300", "--batch-size", "50"],
        cwd=BASE_DIR,
        env=subprocess_env("unused"),  # the script picks its own stream key
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"drained 300 events \(300 lines\) in [\d.]+s with batch size 50: [\d,]+ events/s", result.stdout)
    after = set(redis.Redis.from_url(REDIS_URL).keys("bench-dispatch-*"))
    assert after <= before  # the run's stream and dead-letter stream are gone
