"""The shared upstream client: one aiohttp session per event loop and provider, with keep-alive pooling.

aiohttp directly rather than httpx: measured on this machine, httpx costs more per request than the rest
of the proxy together, with either of its transports (numbers in docs/performance.md).

Timeouts (from the provider YAML): connect; response headers (`response_header`, and for non-streaming
requests the REQUEST_TIMEOUT deadline, both enforced around the wait for headers); idle read between
body chunks (`idle_connection`, as aiohttp's per-read socket timeout), so a long stream is never cut.
"""

import asyncio
import logging
import os
import weakref
from collections.abc import Sequence

import aiohttp
from yarl import URL

from . import errors
from .providers import Provider

logger = logging.getLogger(__name__)

# aiohttp adds these unless told not to; the proxy forwards exactly what the client sent.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class UpstreamClient:
    """The upstream sessions of this process: one per event loop, for the provider it was made for."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Provider, aiohttp.ClientSession]] = (
            weakref.WeakKeyDictionary()
        )

    def session_for(self, provider: Provider) -> aiohttp.ClientSession:
        """The running loop's session for this provider (a new provider config gets a new session)."""
        loop = asyncio.get_running_loop()
        current = self._sessions.get(loop)
        if current is not None and current[0] is provider and not current[1].closed:
            return current[1]
        if current is not None:
            loop.create_task(current[1].close())
        session = _new_session(provider)
        self._sessions[loop] = (provider, session)
        return session

    async def aclose(self) -> None:
        """Close this loop's session (at shutdown)."""
        current = self._sessions.pop(asyncio.get_running_loop(), None)
        if current is not None:
            await current[1].close()


def _new_session(provider: Provider) -> aiohttp.ClientSession:
    timeouts = provider.timeouts
    connector = aiohttp.TCPConnector(
        limit=0,  # like Go's transport: no cap on concurrent upstream connections (streams can be long)
        limit_per_host=0,
        keepalive_timeout=timeouts.idle,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # never carry one tenant's upstream cookies to another
        auto_decompress=False,  # bytes pass through as the upstream encoded them
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.idle),
        trust_env=any(os.environ.get(name) for name in _PROXY_ENV),  # HTTP(S)_PROXY honoured, as the reference
    )


async def asend(
    client: UpstreamClient,
    provider: Provider,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    headers_by: float,
) -> aiohttp.ClientResponse:
    """Send the request and wait for the response headers until loop time `headers_by`.

    Raises ProxyError: 504 when a timeout ran out, 502 when the upstream could not be reached or broke off.
    """
    session = client.session_for(provider)
    try:
        async with asyncio.timeout_at(headers_by):
            return await session.request(
                method, URL(url, encoded=True), headers=headers, data=body or None, allow_redirects=False
            )
    except TimeoutError:  # aiohttp's own timeouts subclass it too
        raise errors.timeout() from None
    except (aiohttp.ClientError, OSError) as exc:
        logger.warning("upstream %s %s failed: %s: %s", method, url.split("?", 1)[0], type(exc).__name__, exc)
        raise errors.proxy_error() from None
