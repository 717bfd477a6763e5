"""ProxyRuntime: the one owner of a web process's proxy state, started and stopped in a fixed order.

It is made by `ProxyConfig.ready()` (installed in state.py) and wires its parts together by constructor, so
that modules import downward only:

    db            DbThread                the shared database thread (token check, quota, usage writes)
    providers     ProviderConfig          the provider served, from API_CONFIG_PATH
    upstream      UpstreamClient          the aiohttp sessions to the provider
    cache         BackendHolder           the response cache's backend
    breaker       Breaker                 per-project circuit breakers
    usage         UsageBatcher            batched per-token counters (needs db)
    freshness     Freshness               how far cached tokens and projects are trusted
    projects      ProjectKeyCache         projects' status and upstream keys (needs db)
    tokens        TokenCache              validated tokens (needs db, projects, usage)
    invalidation  InvalidationListener    clears both caches, here and in other processes (needs them)
    watch         GenerationWatch         clears both caches when the shared generation moves (needs db, them)

`astart()` runs on the serving event loop (ASGI lifespan, Daphne's reactor, or the first request, see
application.py): the usage batcher's task, then the generation watch, then the invalidation listener, then
the hooks that other apps registered with llmproxy.lifecycle (the instrumentation event bus, the runtime
metrics' loop). `astop()` runs the same in reverse: those hooks (the bus flushes its events), the listener,
the watch, the usage batcher (its last flush, through the database thread), the cache backend, the upstream
sessions, and last the database thread's connections.
"""

import logging

from llmproxy import lifecycle

from .auth import Freshness, ProjectKeyCache, TokenCache
from .breaker import Breaker
from .cache_backends import BackendHolder
from .db import DbThread
from .generation import GenerationWatch
from .invalidation import InvalidationListener
from .providers import ProviderConfig
from .upstream import UpstreamClient
from .usage import UsageBatcher

logger = logging.getLogger(__name__)


class ProxyRuntime:
    """The proxy's per-process objects; see the module docstring for their start-up and shutdown order."""

    def __init__(self) -> None:
        self.db = DbThread()
        self.providers = ProviderConfig()
        self.upstream = UpstreamClient()
        self.cache = BackendHolder()
        self.breaker = Breaker()
        self.usage = UsageBatcher(self.db)
        self.freshness = Freshness()
        self.projects = ProjectKeyCache(self.db, self.freshness)
        self.tokens = TokenCache(self.db, self.projects, self.usage, self.freshness)
        self.invalidation = InvalidationListener(self.tokens, self.projects, self.freshness)
        self.watch = GenerationWatch(self.db, self.tokens, self.projects, self.freshness)

    async def astart(self) -> None:
        await self.usage.astart()
        await self.watch.astart()
        await self.invalidation.astart()
        await lifecycle.run_startup()

    async def astop(self) -> None:
        """Stop in reverse order; a part that fails to stop is logged and the others still stop."""
        steps = (
            lifecycle.run_shutdown,
            self.invalidation.astop,
            self.watch.astop,
            self.usage.astop,
            self.cache.aclose,
            self.upstream.aclose,
            self.db.aclose,
        )
        for step in steps:
            try:
                await step()
            except Exception:
                logger.exception("stopping the proxy runtime: %s failed", getattr(step, "__qualname__", step))
