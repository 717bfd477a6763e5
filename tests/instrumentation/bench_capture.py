"""Micro-benchmark: what event capture and publishing cost per request (not a test; prints numbers).

    .venv/bin/python -m tests.instrumentation.bench_capture [requests]

Runs a chat-completion-sized exchange (500-byte request, 700-byte JSON answer streamed as one
chunk, like the proxy's upstream relay) through the middleware on one event loop, consuming the
response as Django's ASGI handler does, and reports this process's CPU microseconds per request:
without the middleware, with it on the in-memory bus, and with it on the Redis Streams bus (the
drain task's JSON encoding and pipelined XADD included, since they share the loop and the CPU with
requests). CPU time rather than wall time, and the best of interleaved rounds, so that other work on
the machine disturbs the figures as little as possible.
"""

import asyncio
import os
import sys
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")
import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.http import StreamingHttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from instrumentation.bus import get_bus, reset_for_tests  # noqa: E402
from instrumentation.middleware import InstrumentationMiddleware  # noqa: E402

REQUEST = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x" * 430 + b'"}]}'
ANSWER = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"content":"' + b"y" * 600 + b'"}}]}'
HEADERS = {
    "Content-Type": "application/json",
    "X-Request-ID": "",
    "Openai-Processing-Ms": "12",
    "X-Ratelimit-Remaining-Requests": "9999",
    "Cache-Control": "no-store",
    "X-PROXY-CACHE": "miss",
}


async def view(request):
    request.proxy_request_id = str(uuid.uuid4())
    request.body  # noqa: B018

    async def relay():
        yield ANSWER

    response = StreamingHttpResponse(relay())
    for name, value in HEADERS.items():
        response[name] = value or request.proxy_request_id
    return response


async def run(handler, requests: int) -> float:
    factory = RequestFactory()
    started = time.process_time()
    for i in range(requests):
        request = factory.post("/v1/chat/completions", data=REQUEST, content_type="application/json")
        response = await handler(request)
        async for _chunk in response:
            pass
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the publisher's task run, as it does between requests in a server
    await get_bus().flush(within=30)
    return (time.process_time() - started) / requests * 1e6


async def main(requests: int, rounds: int = 5) -> None:
    settings.FILE_EVENT_LOG = ""
    settings.ALLOWED_HOSTS = ["*"]
    stream_key = f"bench-events-{uuid.uuid4().hex}"
    variants = {"no middleware": "in-memory", "in-memory bus": "in-memory", "redis-streams": "redis-streams"}
    results: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, bus in variants.items():
            settings.LLM_PROXY_EVENT_BUS = bus
            settings.REDIS_STREAM_KEY = stream_key
            reset_for_tests()
            handler = view if label == "no middleware" else InstrumentationMiddleware(view)
            await run(handler, 200)  # warm-up (and the Redis connection)
            results[label].append(await run(handler, requests))
            dropped = get_bus().stats()["events_dropped"]
            assert dropped == 0, f"{label}: {dropped} events dropped"
            reset_for_tests()
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete(stream_key)
    base = min(results["no middleware"])
    for label, runs in results.items():
        best = min(runs)
        print(f"{label:14s} {best:7.1f} us CPU/request  (+{best - base:5.1f} us)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
