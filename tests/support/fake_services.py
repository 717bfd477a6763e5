"""Fake Lunary and Helicone ingestion services on real sockets (aiohttp in a background thread).

They answer what the real services answer, check for check, in the order the real services make their
checks (authentication, rate limit, body shape, then each event), keep the state the real services would
store, and collect `violations`: payloads the real service accepts but would store incompletely (strict
mode: e.g. a Lunary run without a start, a Helicone log without timing). Tests assert `fake.violations == []`.
`fail_next` scripts transient outages,
`hang_next` a stalled service, and FakeLunary's `fail_events_next` its per-event transient failures.
"""

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

LUNARY_KEY = "3f1c2b8e-5d4a-4e7b-9c2d-1a2b3c4d5e6f"
HELICONE_KEY = "sk-helicone-abc1234-def5678-ghi9012-jkl3456"

# What Lunary reports in `results[]` when its database is briefly unreachable.
TRANSIENT_EVENT_ERROR = "Connection terminated due to connection timeout"
UUID_ANY = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
UUID_V1_5 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
HELICONE_KEY_FORMAT = re.compile(r"^[sp]k(-helicone)?(-eu)?(-cp)?-\w{7}-\w{7}-\w{7}-\w{7}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HELICONE_PATHS = {
    "/custom/v1/log": "CUSTOM",
    "/oai/v1/log": "OPENAI",
    "/anthropic/v1/log": "ANTHROPIC",
    "/googleapis/v1/log": "GOOGLE",
}
HELICONE_META_PREFIXES = ("helicone-property-",)
HELICONE_META_KEYS = {
    "helicone-request-id",
    "helicone-user-id",
    "helicone-session-id",
    "helicone-session-path",
    "helicone-session-name",
    "helicone-prompt-id",
    "helicone-prompt-mode",
    "helicone-prompt-version",
    "helicone-model-override",
    "helicone-omit-request",
    "helicone-omit-response",
    "helicone-cache-enabled",
    "helicone-cache-seed",
    "helicone-cache-bucket-max-size",
    "helicone-cache-control",
    "helicone-posthog-key",
    "helicone-posthog-host",
    "helicone-lytix-key",
    "helicone-lytix-host",
    "helicone-webhook-enabled",
    "helicone-experiment-id",
    "helicone-experiment-column-id",
    "helicone-experiment-row-index",
    "helicone-manual-access-key",
    "helicone-node-id",
    "helicone-fallbacks",
    "helicone-auth",
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self):
        return json.loads(self.body)


class _FakeServer:
    """An aiohttp app on 127.0.0.1:<free port> served from its own thread and loop."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._scripted: list[tuple[int, str]] = []
        self._hangs: list[float] = []
        self._stalled: list[asyncio.Event] = []  # set by reset(): requests still stalled then are let go
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.violations.clear()
            self._scripted.clear()
            self._hangs.clear()
            for stalled in self._stalled:
                self._loop.call_soon_threadsafe(stalled.set)
            self._stalled.clear()
            self._reset_state()

    def _reset_state(self) -> None:
        pass

    def fail_next(self, times: int = 1, *, status: int = 503, body: str = "service unavailable") -> None:
        """Answer the next `times` requests with `status` before any check (an outage in front of the service)."""
        with self._lock:
            self._scripted.extend([(status, body)] * times)

    def hang_next(self, times: int = 1, *, seconds: float = 20.0) -> None:
        """Keep the next `times` requests waiting `seconds`, then answer 504 without processing them (a stall)."""
        with self._lock:
            self._hangs.extend([seconds] * times)

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = Recorded(request.method, request.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(record)
            hang = self._hangs.pop(0) if self._hangs else 0.0
            released = asyncio.Event()
            if hang:
                self._stalled.append(released)
        if hang:
            try:
                await asyncio.wait_for(released.wait(), hang)
            except TimeoutError:
                pass
            # Never processed: a stalled request must not change the state a later test sees.
            record.status = 504
            return web.Response(status=504, text="gateway timeout")
        with self._lock:
            scripted = self._scripted.pop(0) if self._scripted else None
        if scripted is not None:
            response = web.Response(status=scripted[0], text=scripted[1])
        else:
            with self._lock:
                response = self.handle(request, body)
        record.status = response.status
        return response

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        raise NotImplementedError

    def start(self):
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._entry)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name=type(self).__name__)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _violation(self, message: str) -> None:
        self.violations.append(message)


def _json_response(status: int, data) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


# --- Lunary --------------------------------------------------------------------------------------------


class FakeLunary(_FakeServer):
    """`POST /v1/runs/ingest` as Lunary's ingestion service answers it."""

    def __init__(self, *, keys=(LUNARY_KEY,), requests_per_minute: int = 150, max_batch: int = 100) -> None:
        super().__init__()
        self.keys = set(keys)
        self.requests_per_minute = requests_per_minute
        self.max_batch = max_batch
        self.runs: dict[str, dict] = {}
        self._hits: list[float] = []
        self._event_failures: list[str] = []

    def _reset_state(self) -> None:
        self.runs.clear()
        self._hits.clear()
        self._event_failures.clear()

    def fail_events_next(self, times: int = 1, *, error: str = TRANSIENT_EVENT_ERROR) -> None:
        """Answer the next `times` events with `success: false` inside a 200 (Lunary's own transient failures)."""
        with self._lock:
            self._event_failures.extend([error] * times)

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        if request.method != "POST" or request.path != "/v1/runs/ingest":  # L1
            return _json_response(404, {"message": "Not Found"})
        auth = request.headers.get("Authorization", "")
        token = auth.split()[1] if len(auth.split()) > 1 else request.headers.get("X-API-Key", "")
        if token and not UUID_ANY.match(token):  # L3
            return _json_response(401, {"message": "Invalid access token"})
        if token and token not in self.keys:  # L4
            return _json_response(401, {"message": "Invalid API key"})
        now = time.monotonic()
        self._hits = [t for t in self._hits if now - t < 60] + [now]
        if len(self._hits) > self.requests_per_minute:  # L5
            return web.Response(status=429, text="Sometimes You Just Have to Slow Down.")
        payload: object = {}
        if "json" in request.headers.get("Content-Type", ""):  # L6
            if len(body) > 20 * 1024 * 1024:
                return _json_response(413, {"message": "request entity too large"})
            try:
                if body.lstrip()[:1] not in (b"{", b"["):
                    raise ValueError("invalid JSON, only supports object and array")
                payload = json.loads(body)
            except ValueError as exc:
                return _json_response(400, {"message": str(exc)})
        if not token:  # L7a
            return _json_response(402, {"message": "Incorrect project id format"})
        if not isinstance(payload, dict) or not payload.get("events"):  # L7b
            return _json_response(500, {"message": "Missing events payload."})
        self._strict_request(request, auth, payload, body)
        events = payload["events"] if isinstance(payload["events"], list) else [payload["events"]]
        events = sorted(events, key=_lunary_time)  # L8 (stable)
        return _json_response(200, {"results": [self._ingest(event) for event in events]})  # L9

    def _ingest(self, event) -> dict:
        original_id = event.get("runId") if isinstance(event, dict) else None
        if self._event_failures:
            return {"id": original_id, "success": False, "error": self._event_failures.pop(0)}
        try:
            self._apply(_camel(event) if isinstance(event, dict) else {})
        except ValueError as exc:
            if "already exists" not in str(exc):  # a redelivered start is normal at-least-once
                self._violation(f"lunary refused run {original_id}: {exc}")
            return {"id": original_id, "success": False, "error": str(exc)}
        return {"id": original_id, "success": True}

    def _apply(self, event: dict) -> None:
        run_id, parent = _run_id(event.get("runId")), _run_id(event.get("parentRunId"))
        kind = event.get("event")
        tags = event.get("tags")
        if tags is not None and not isinstance(tags, str) and not _scalars(tags):  # E7
            raise ValueError("malformed array literal")
        if event.get("type") == "log" and (not parent or not kind):  # E4
            raise ValueError("parentRunId and eventName must be defined")
        if kind in ("chat", "custom-event") and not isinstance(event.get("parentRunId"), str):  # E5
            raise ValueError("No parent run ID provided")
        if kind == "start":
            self._start(run_id, parent, event)
        elif kind in ("end", "error"):
            self._finish(run_id, event)
        elif kind not in ("feedback", "update", "chat", "custom-event"):
            self._violation(f"lunary: unknown event value {kind!r}")

    def _start(self, run_id, parent, event: dict) -> None:
        if not event.get("type"):  # E2
            raise ValueError('null value in column "type" of relation "run" violates not-null constraint')
        if run_id in self.runs:  # E1
            raise ValueError("Run with this ID already exists in the database.")
        for key in ("templateId", "templateVersionId"):
            if key in event and not _integer_like(event[key]):  # E6
                raise ValueError("invalid input syntax for type integer")
        self._strict_start(event)
        self.runs[run_id or str(uuid.uuid4())] = {
            "status": "started",
            "type": event.get("type"),
            "name": str(event.get("name") or "").removeprefix("models/"),
            "input": event.get("input"),
            "params": event.get("params") or event.get("extra"),
            "metadata": _scalar_metadata(event.get("metadata")),
            "tags": event.get("tags"),
            "userId": event.get("userId"),
            "parentRunId": parent if parent in self.runs else None,
            "createdAt": event.get("timestamp"),
        }

    def _finish(self, run_id, event: dict) -> None:
        usage = event.get("tokensUsage") or {}
        for key in ("prompt", "completion"):
            if usage.get(key) is not None and not _integer_like(usage[key]):  # E6
                raise ValueError("invalid input syntax for type integer")
        run = self.runs.get(run_id)
        if run is None:
            self._violation(f"lunary: {event.get('event')} for unknown run {run_id} (the real service drops it)")
            return
        self._strict_finish(run, event)
        if event["event"] == "error":
            run.update(status="error", error=event.get("error"), endedAt=event.get("timestamp"))
            return
        run.update(status="success", output=event.get("output"), endedAt=event.get("timestamp"))
        run.update(promptTokens=usage.get("prompt"), completionTokens=usage.get("completion"))
        run["metadata"] = {**(run["metadata"] or {}), **_scalar_metadata(event.get("metadata"))}

    # S-L rules: accepted by the real service, but data would be lost.
    def _strict_request(self, request, auth: str, payload: dict, body: bytes) -> None:
        if "application/json" not in request.headers.get("Content-Type", ""):
            self._violation("lunary: Content-Type is not application/json")
        if not auth.startswith("Bearer ") or not UUID_ANY.match(auth[7:]):
            self._violation("lunary: Authorization is not 'Bearer <uuid>'")
        events = payload["events"]
        if not isinstance(events, list):
            self._violation("lunary: events is not a list")
        elif len(events) > self.max_batch or len(body) > 20 * 1024 * 1024:
            self._violation(f"lunary: batch of {len(events)} events is over {self.max_batch}")

    def _strict_start(self, event: dict) -> None:
        # The runId is a UUID from the request id (v5, for idempotent redelivery); Lunary accepts any version.
        if event.get("type") == "llm":
            if not event.get("name"):
                self._violation(f"lunary: llm start {event.get('runId')} without name (no cost)")
            if "input" not in event:
                self._violation(f"lunary: llm start {event.get('runId')} without input")
        if "output" in event or "tokensUsage" in event:
            self._violation(f"lunary: start {event.get('runId')} carries output/tokensUsage (ignored)")
        if not isinstance(event.get("runId"), str) or not UUID_ANY.match(event["runId"]):
            self._violation(f"lunary: start runId {event.get('runId')!r} is not a UUID")
        self._strict_metadata(event)

    def _strict_finish(self, run: dict, event: dict) -> None:
        if run.get("endedAt"):
            return  # a redelivered end: same content
        if str(event.get("timestamp")) < str(run.get("createdAt")):
            self._violation(f"lunary: end of {event.get('runId')} before its start")
        if event["event"] == "end":
            usage = event.get("tokensUsage") or {}
            if "output" not in event:
                self._violation(f"lunary: end {event.get('runId')} without output")
            if not all(isinstance(usage.get(k), int) and usage[k] >= 0 for k in ("prompt", "completion")):
                self._violation(f"lunary: end {event.get('runId')} without integer tokensUsage")
        elif not (event.get("error") or {}).get("message"):
            self._violation(f"lunary: error {event.get('runId')} without error.message")
        self._strict_metadata(event)

    def _strict_metadata(self, event: dict) -> None:
        metadata = event.get("metadata") or {}
        dropped = [k for k, v in metadata.items() if not (_is_scalar(v) or (isinstance(v, list) and _scalars(v)))]
        if dropped:
            self._violation(f"lunary: metadata keys {dropped} are dropped (not scalars)")


def _lunary_time(event) -> float:
    raw = event.get("timestamp") if isinstance(event, dict) else None
    if isinstance(raw, int | float):
        return float(raw) / 1000
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except ValueError:
        return float("inf")


def _run_id(raw):
    if not isinstance(raw, str):
        return None
    if len(raw) == 36:
        if not UUID_ANY.match(raw):  # E3
            raise ValueError(f'invalid input syntax for type uuid: "{raw}"')
        return raw
    return str(uuid.UUID(bytes=hashlib.sha256(raw.encode()).digest()[:16]))


def _camel(value):
    if isinstance(value, dict):
        return {re.sub(r"[_-](\w)", lambda m: m.group(1).upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _is_scalar(value) -> bool:
    return isinstance(value, str | int | float | bool)


def _scalars(values) -> bool:
    return isinstance(values, list) and all(_is_scalar(v) for v in values)


def _scalar_metadata(metadata) -> dict:
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if _is_scalar(v) or _scalars(v)}


def _integer_like(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


# --- Helicone ------------------------------------------------------------------------------------------


class HeliconeError(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


class FakeHelicone(_FakeServer):
    """The manual-logger endpoints (`/oai/v1/log`, `/custom/v1/log`, ...) as Helicone's logger answers them."""

    def __init__(self, *, keys=(HELICONE_KEY,)) -> None:
        super().__init__()
        self.keys = set(keys)
        self.logs: list[dict] = []

    def _reset_state(self) -> None:
        self.logs.clear()

    def by_request_id(self) -> dict[str, list[dict]]:
        grouped = defaultdict(list)
        for log in self.logs:
            grouped[log["requestId"]].append(log)
        return dict(grouped)

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        if request.method == "OPTIONS":  # H0
            return web.Response(status=200, headers={"Access-Control-Allow-Origin": "*"})
        if request.method != "POST" or request.path not in HELICONE_PATHS:  # H1
            return web.Response(status=400, text="invalid path")
        try:
            payload = json.loads(body)  # H2
        except ValueError:
            payload = {}
        if len(json.dumps(payload, separators=(",", ":"))) > 10 * 1024 * 1024:  # H3
            return web.Response(status=400, text="Payload too large")
        if not any(h in request.headers for h in ("Authorization", "x-api-key", "api-key")):  # H4
            return web.Response(status=401, text="Unauthorized")
        try:
            self._validate(payload)  # H5, H6
            merged = self._headers(payload, request)  # H7
            self._auth(request)  # H8, H9
        except HeliconeError as exc:
            return exc.response
        return self._accept(request, payload, merged, body)  # H10

    def _validate(self, payload) -> None:
        def fail(message: str):
            raise HeliconeError(_json_response(400, {"error": message}))

        req = payload.get("providerRequest") if isinstance(payload, dict) else None
        res = payload.get("providerResponse") if isinstance(payload, dict) else None
        if not req or not res:
            fail("One of the required fields is missing, providerRequest, providerResponse, or timing")
        if not isinstance(req.get("url"), str):
            fail("Invalid providerRequest: 'url' should be a string")
        if "meta" not in req or not isinstance(req["meta"], dict | type(None)):
            fail("Invalid providerRequest: 'meta' should be an object")
        if "json" not in req:
            fail("Invalid providerRequest: 'json' is undefined")
        if "json" not in res:
            fail("Invalid providerResponse: 'json' is undefined")
        if not isinstance(res.get("status"), int | float) or isinstance(res.get("status"), bool):
            fail("Invalid providerResponse: 'status' should be a number")
        if "headers" not in res or not isinstance(res["headers"], dict | type(None)):
            fail("Invalid providerResponse: 'headers' should be an object")
        timing = payload.get("timing")
        if timing:
            if not isinstance(timing.get("startTime"), dict) or not isinstance(timing.get("endTime"), dict):  # H6
                raise HeliconeError(_crash("Cannot read properties of undefined (reading 'seconds')"))
            for moment in ("startTime", "endTime"):
                for part in ("seconds", "milliseconds"):
                    value = timing[moment].get(part)
                    if not isinstance(value, int | float) or isinstance(value, bool):
                        fail(f"Invalid timing: '{moment}.{part}' should be a number")
            start, end = (_millis(timing["startTime"]), _millis(timing["endTime"]))
            if start > end:
                fail("startTime cannot be greater than endTime")
            if start < 0 or end < 0:
                fail("startTime and endTime cannot be negative")

    def _headers(self, payload: dict, request: web.Request) -> dict[str, str]:
        meta = payload["providerRequest"]["meta"]
        headers = payload["providerResponse"]["headers"]
        for mapping in (meta, headers):
            if mapping is None:
                raise HeliconeError(_crash("Cannot convert undefined or null to object"))
            for name, value in mapping.items():
                if not HEADER_NAME.match(str(name)) or not isinstance(value, str) or not _latin1_line(value):
                    raise HeliconeError(_crash(f"Headers.append: {name!r} is an invalid header"))
        merged = {k.lower(): v for k, v in meta.items()}
        merged.update({k.lower(): v for k, v in request.headers.items()})  # HTTP headers win
        if "helicone-fallbacks" in merged:
            try:
                assert isinstance(json.loads(merged["helicone-fallbacks"]), list)
            except (ValueError, AssertionError):
                raise HeliconeError(_crash("Helicone-Fallbacks is not valid JSON")) from None
        return merged

    def _auth(self, request: web.Request) -> None:
        raw = request.headers.get("helicone-auth") or request.headers.get("Authorization") or ""
        if not raw:
            raise HeliconeError(_json_response(401, {"error": "invalid auth key"}))
        if "Bearer " not in raw:
            raise HeliconeError(_json_response(401, {"error": "Must included Bearer in API Key"}))
        key = raw.split("Bearer ", 1)[1].strip()
        if not HELICONE_KEY_FORMAT.match(key):
            raise HeliconeError(_json_response(401, {"error": "API Key is not well formed"}))
        if key not in self.keys:  # H9: a well-formed unknown key is a 200 with an error body
            raise HeliconeError(_json_response(200, {"error": "Auth failed! undefined"}))

    def _accept(self, request: web.Request, payload: dict, merged: dict, body: bytes) -> web.Response:
        req, res, timing = payload["providerRequest"], payload["providerResponse"], payload.get("timing") or {}
        given = merged.get("helicone-request-id", "")
        request_id = given if UUID_V1_5.match(given) else str(uuid.uuid4())
        is_stream = isinstance(req.get("json"), dict) and req["json"].get("stream") is True
        text = res.get("textBody") or ""
        log = {
            "requestId": request_id,
            "provider": HELICONE_PATHS[request.path],
            "path": req["url"],
            "isStream": is_stream,
            "headers": merged,
            "userId": merged.get("helicone-user-id"),
            "properties": {
                k[len("helicone-property-") :]: v for k, v in merged.items() if k.startswith("helicone-property-")
            },
            "request": req.get("json"),
            "status": res.get("status"),
            "ttft": timing.get("timeToFirstToken"),
            "start": _millis(timing["startTime"]) if timing else None,
            "end": _millis(timing["endTime"]) if timing else None,
            "body": text or res.get("json"),
            "usage": _helicone_usage(text, res.get("json"), is_stream),
        }
        self._strict(request, payload, log)
        self.logs.append(log)
        return web.Response(status=200, text="ok", headers={"helicone-id": request_id})

    # S-H rules: accepted by the real service, but cost, usage or correlation would be lost.
    def _strict(self, request: web.Request, payload: dict, log: dict) -> None:
        req, res, timing = payload["providerRequest"], payload["providerResponse"], payload.get("timing")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            self._violation("helicone: Authorization is not 'Bearer <key>'")
        if "application/json" not in request.headers.get("Content-Type", ""):
            self._violation("helicone: Content-Type is not application/json")
        if log["provider"] != "OPENAI":
            self._violation(f"helicone: path {request.path} is not /oai/v1/log: OpenAI models get no price")
        if not isinstance(req["json"], dict) or not req["json"].get("model"):
            self._violation("helicone: providerRequest.json has no model")
        for key, value in (req["meta"] or {}).items():
            known = key.lower() in HELICONE_META_KEYS or key.lower().startswith(HELICONE_META_PREFIXES)
            if not known or not isinstance(value, str):
                self._violation(f"helicone: meta key {key!r} is not one Helicone reads")
        if not UUID_V1_5.match((req["meta"] or {}).get("Helicone-Request-Id", "")):
            self._violation("helicone: no Helicone-Request-Id UUID in meta")
        if not all(isinstance(v, str) for v in (res["headers"] or {}).values()):
            self._violation("helicone: providerResponse.headers is not a string map")
        self._strict_body(log, res)
        if not timing:
            self._violation("helicone: no timing: start and end become 'now'")
        elif not all(
            isinstance(timing[m][p], int) for m in ("startTime", "endTime") for p in ("seconds", "milliseconds")
        ):
            self._violation("helicone: timing parts are not integers")
        elif log["start"] == log["end"]:
            self._violation("helicone: timing start == end (duration lost)")

    def _strict_body(self, log: dict, res: dict) -> None:
        if log["isStream"]:
            text = res.get("textBody") or ""
            if res.get("json") != {}:
                self._violation("helicone: stream logged with a non-empty json (usage is not read from it)")
            if not text.rstrip().endswith("data: [DONE]") or "chat.completion.chunk" not in text:
                self._violation("helicone: stream textBody is not the raw SSE ending with data: [DONE]")
            if log["usage"] is None:
                self._violation("helicone: stream without a usage chunk")
            if not isinstance(log["ttft"], int | float):
                self._violation("helicone: stream without timing.timeToFirstToken")
        elif log["status"] == 200:
            if res.get("textBody"):
                self._violation("helicone: non-stream logged with textBody")
            if log["usage"] is None:
                self._violation("helicone: non-stream json without usage")


def _crash(message: str) -> web.Response:
    body = {
        "helicone-message": f"Helicone ran into an error servicing your request: {message}",
        "support": "Please reach out on our discord or email us at help@helicone.ai",
        "helicone-error": message,
    }
    return web.Response(
        status=500, text=json.dumps(body), content_type="application/json", headers={"helicone-error": "true"}
    )


def _millis(moment: dict) -> float:
    return moment["seconds"] * 1000 + moment["milliseconds"]


def _latin1_line(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(ch in value for ch in "\r\n\0")


def _helicone_usage(text: str, body, is_stream: bool) -> dict | None:
    """Token usage as Helicone's body processors extract it (from `usage`, for streams from the last chunk)."""
    if text:
        try:
            json.loads(text)
            return None  # a stream logged as one JSON document: stored as-is, no usage
        except ValueError:
            pass
        usage = None
        for line in text.split("\n"):
            line = line.strip()
            if not line or line.startswith("event:"):
                continue
            try:
                chunk = json.loads(line.removeprefix("data:").strip())
            except ValueError:
                continue
            if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
        return usage
    if is_stream:
        return None
    usage = body.get("usage") if isinstance(body, dict) else None
    return usage if isinstance(usage, dict) else None
