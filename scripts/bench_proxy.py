"""Micro-benchmarks of the /v1 hot path (docs/performance.md, "Proxy"). Not a test.

    .venv/bin/python scripts/bench_proxy.py path [--requests 3000] [--no-cache]
        CPU time per request of the whole application (ASGI entry, lean handler, instrumentation, cache,
        token check, view, relay) driven in-process, with the upstream answered from memory: no server,
        no socket. Uses a throw-away SQLite database.
    .venv/bin/python scripts/bench_proxy.py clients --url http://127.0.0.1:18081/v1/chat/completions
        The upstream client candidates against a running fixed-answer upstream (e.g. the bench's nginx):
        httpx (default transport), httpx with the httpx-aiohttp transport, aiohttp.

Both report process CPU time (time.process_time), best of a few rounds, so that other work on the machine
disturbs the figures as little as possible.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
ANSWER = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":'
    b'"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}'
)


def best_of(rounds: int, requests: int, run_round) -> float:
    results = []
    for _ in range(rounds):
        started = time.process_time()
        run_round(requests)
        results.append((time.process_time() - started) / requests * 1e6)
    return min(results)


# --- path ---------------------------------------------------------------------------------------------


class _Content:
    def __init__(self) -> None:
        self.data = ANSWER

    def read_nowait(self) -> bytes:
        data, self.data = self.data, b""
        return data

    def at_eof(self) -> bool:
        return not self.data

    async def readany(self) -> bytes:
        return self.read_nowait()


class _Answer:
    status = 200
    raw_headers = (
        (b"Server", b"nginx"),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(ANSWER)).encode()),
        (b"Connection", b"keep-alive"),
    )

    def __init__(self) -> None:
        self.content = _Content()

    def release(self) -> None:
        pass

    close = release


def bench_path(requests: int, cache: bool) -> None:
    folder = tempfile.mkdtemp(prefix="bench-proxy-")
    (Path(folder) / "providers.yaml").write_text(
        "default_api: openai\napis:\n  openai:\n    base_url: http://127.0.0.1:9\n"
        "    allowed_endpoints: [/v1/chat/completions]\n    allowed_methods: [POST]\n"
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="llmproxy.settings", DATABASE_URL=f"sqlite:///{folder}/db.sqlite3",
        API_CONFIG_PATH=f"{folder}/providers.yaml", LLM_PROXY_EVENT_BUS="in-memory",
        MANAGEMENT_TOKEN="bench-management-token-0123456789abcdef",
        ENCRYPTION_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        SECRET_KEY="bench-secret-key-not-for-production-0123456789abcdef",
        DATA_DIR=folder, FILE_EVENT_LOG="", HTTP_CACHE_ENABLED="true" if cache else "false",
    )  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from projects.services import project_create
    from tokens.services import token_create

    _, secret = token_create(project=project_create(name="bench", api_key="sk-upstream"), duration_minutes=60)
    from llmproxy.asgi import application
    from llmproxy.proxy import upstream

    async def answer(*args, **kwargs):
        return _Answer()

    upstream.asend = answer
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode()), (b"authorization", f"Bearer {secret}".encode()),
                    (b"user-agent", b"bench"), (b"accept", b"*/*")],
    }  # fmt: skip

    async def one() -> None:
        messages = [{"type": "http.request", "body": BODY, "more_body": False}]
        done = asyncio.Event()

        async def receive():
            if messages:
                return messages.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message
            elif not message.get("more_body"):
                done.set()

        await application(dict(scope), receive, send)

    loop = asyncio.new_event_loop()

    def run_round(n: int) -> None:
        async def many():
            for _ in range(n):
                await one()

        loop.run_until_complete(many())

    run_round(500)  # warm-up: caches filled, code paths hot
    cpu = best_of(5, requests, run_round)
    print(f"application path, HTTP cache {'on' if cache else 'off'}: {cpu:.0f} us CPU per request")
    os._exit(0)  # background tasks of the lifecycle stay on the loop; nothing to clean up


# --- clients ------------------------------------------------------------------------------------------


def bench_clients(url: str, requests: int) -> None:
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def via_httpx(client):
        response = await client.send(client.build_request("POST", url, headers=headers, content=BODY), stream=True)
        async for _ in response.aiter_raw():
            pass
        await response.aclose()

    async def via_aiohttp(session):
        response = await session.request("POST", url, headers=headers, data=BODY)
        while await response.content.readany():
            pass
        response.release()

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
    candidates = {
        "httpx, default transport": (lambda: httpx.AsyncClient(limits=limits), via_httpx),
        "httpx, httpx-aiohttp transport": (
            lambda: httpx.AsyncClient(transport=AiohttpTransport(limits=limits)), via_httpx),
        "aiohttp": (lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)), via_aiohttp),
    }  # fmt: skip
    loop = asyncio.new_event_loop()
    for name, (make, send) in candidates.items():
        client = loop.run_until_complete(_make(make))

        def run_round(n: int, client=client, send=send) -> None:
            async def concurrent():
                async def worker(k):
                    for _ in range(k):
                        await send(client)

                await asyncio.gather(*[worker(n // 16) for _ in range(16)])

            loop.run_until_complete(concurrent())

        run_round(400)
        cpu = best_of(3, requests, run_round)
        print(f"{name:32s} {cpu:6.0f} us CPU per request (16 concurrent)")
        loop.run_until_complete(client.aclose() if hasattr(client, "aclose") else client.close())


async def _make(factory):
    return factory()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    path = sub.add_parser("path")
    path.add_argument("--requests", type=int, default=3000)
    path.add_argument("--no-cache", action="store_true")
    clients = sub.add_parser("clients")
    clients.add_argument("--url", required=True)
    clients.add_argument("--requests", type=int, default=3200)
    args = parser.parse_args()
    if args.command == "path":
        bench_path(args.requests, cache=not args.no_cache)
    else:
        bench_clients(args.url, args.requests)


if __name__ == "__main__":
    main()
