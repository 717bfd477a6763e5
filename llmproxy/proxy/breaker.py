"""The circuit breaker, per project (the reference has one per process; ours keys it by the upstream key's owner).

CIRCUIT_BREAKER_THRESHOLD consecutive answers of one project that show its upstream failing open that
project's breaker for CIRCUIT_BREAKER_COOLDOWN seconds, during which its /v1 requests get 503 at once;
other projects keep being served. Failing means the upstream could not be reached or broke off (the
proxy's 502) or answered 502/503/504 itself. A proxy-side timeout waiting for a slow upstream and a client
that went away are neither failure nor success: slowness alone never opens a breaker. Any other upstream
status resets the project's count. A threshold of 0 disables the breaker. No half-open state.

Only projects with a failure since their last success are tracked, at most MAX_TRACKED of them (the
least recently failing is forgotten first), so memory stays bounded whatever the number of projects.
"""

import time
from collections import OrderedDict

from django.conf import settings

TRANSIENT = frozenset({502, 503, 504})
MAX_TRACKED = 4096


class Breaker:
    """The per-project circuit breakers of this process."""

    def __init__(self) -> None:
        # project id -> [consecutive failures, monotonic time until which the breaker is open (0: closed)]
        self._projects: OrderedDict[str, list[float]] = OrderedDict()

    def is_open(self, project_id: str) -> bool:
        entry = self._projects.get(project_id)
        if entry is None or not entry[1]:
            return False
        if time.monotonic() < entry[1]:
            return True
        del self._projects[project_id]  # the cooldown is over: a fresh count
        return False

    def record(self, project_id: str, status: int) -> None:
        """An upstream answer's status for this project (the proxy's own 502 when it could not reach it)."""
        projects = self._projects
        if status not in TRANSIENT:
            projects.pop(project_id, None)
            return
        threshold = settings.CIRCUIT_BREAKER_THRESHOLD
        if not threshold:
            return
        entry = projects.get(project_id)
        if entry is None:
            entry = projects[project_id] = [0, 0.0]
            if len(projects) > MAX_TRACKED:
                projects.popitem(last=False)
        else:
            projects.move_to_end(project_id)
        entry[0] += 1
        if entry[0] >= threshold and not entry[1]:
            entry[1] = time.monotonic() + settings.CIRCUIT_BREAKER_COOLDOWN

    def tracked(self) -> int:
        """How many projects have a failure on record (for tests of the bound)."""
        return len(self._projects)
