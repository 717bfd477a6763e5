"""The `lunary` service: `POST {"events": [...]}` with a `start` and an `end` (or `error`) run event per request.

Lunary stores output and token usage only from an `end` event, and answers 200 even when events
fail, so each payload's fate is read from the per-event `results` (what Lunary's ingestion endpoint returns). Events of
requests refused before their token was accepted are not LLM calls and are not sent.
"""

from datetime import datetime
from typing import Any

from dispatch import transform
from dispatch.backends.base import DeliveryError, HttpBackend
from instrumentation import bodies, sse
from instrumentation.events import Event

INPUT_KEYS = ("messages", "prompt", "input")
NOT_PARAMS = {"model", "user", *INPUT_KEYS}
DUPLICATE_START = "already exists"


class LunaryBackend(HttpBackend):
    name = "lunary"
    default_endpoint = "https://api.lunary.ai/v1/runs/ingest"
    key_variable = "LUNARY_API_KEY"

    def payload(self, event: Event, received_at: datetime | None = None) -> dict[str, Any] | None:
        if event.method.upper() != "POST" or transform.is_refused(event):
            return None  # not an LLM call: refused requests (no token, bad method...) stay out of the service
        return {"runId": transform.run_id(event), "events": run_events(event, received_at)}

    def send(self, payloads: list[dict[str, Any]]) -> None:
        response = self.post({"events": [e for payload in payloads for e in payload["events"]]})
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError):
            raise DeliveryError(f"lunary answered {response.status_code} without per-event results") from None
        failures: dict[int, Exception] = {}
        for index, payload in enumerate(payloads):
            problem = _problem(payload["runId"], results)
            if problem is not None:
                failures[index] = problem
        if failures:
            first = next(iter(failures.values()))
            raise DeliveryError(f"lunary refused {len(failures)} of {len(payloads)} runs: {first}", failures=failures)


def _problem(run_id: str, results: list[Any]) -> DeliveryError | None:
    mine = [r for r in results if isinstance(r, dict) and r.get("id") == run_id]
    if not mine:
        return DeliveryError(f"lunary returned no result for run {run_id}")
    for result in mine:
        error = str(result.get("error") or "")
        # A redelivered run's `start` is refused as a duplicate: the run is stored, which is what we want.
        # Any other per-event failure may pass (Lunary reports its own database timeouts this way), so it
        # is retried like a 5xx, then dead-lettered once the retries are spent.
        if not result.get("success") and DUPLICATE_START not in error:
            return DeliveryError(f"lunary refused run {run_id}: {error or 'success=false'}")
    return None


def run_events(event: Event, received_at: datetime | None = None) -> list[dict[str, Any]]:
    """The `start` (name, input, params, metadata) and the `end` (output, tokensUsage) or `error` of one call."""
    request_raw, response_raw = bodies.request_body(event), bodies.response_body(event)
    request = request_raw.json()
    output = transform.response_output(event, response_raw)
    started, ended = transform.event_times(event, received_at)
    common: dict[str, Any] = {
        "type": "llm",
        "runId": transform.run_id(event),
        "name": transform.model_name(request, output),
    }
    start = {
        **common,
        "event": "start",
        "timestamp": transform.iso(started),
        "input": _input(request, request_raw),
        "params": _params(request),
        "metadata": _metadata(event, request, transform.truncated_parts(request_raw, response_raw)),
        "userId": request.get("user") if isinstance(request, dict) and isinstance(request.get("user"), str) else None,
        "runtime": "llm-proxy",
    }
    finish: dict[str, Any] = {**common, "timestamp": transform.iso(ended)}
    if event.status >= 400:
        finish.update(event="error", error={"message": _error_message(event.status, output)})
    else:
        finish.update(event="end", output=_output(output), tokensUsage=sse.tokens_usage(output))
    return [_compact(start), _compact(finish)]


def _input(request: Any, body: bodies.Body) -> Any:
    if isinstance(request, dict):
        for key in INPUT_KEYS:
            if key in request:
                return request[key]
        return request
    return request if request is not None else (body.text() or None)


def _params(request: Any) -> dict[str, Any] | None:
    if not isinstance(request, dict):
        return None
    return {key: value for key, value in request.items() if key not in NOT_PARAMS} or None


def _output(output: Any) -> Any:
    """The assistant message (what the SDKs send), or the whole answer for other endpoints."""
    choices = output.get("choices") if isinstance(output, dict) else None
    if isinstance(choices, list) and choices and all(isinstance(c, dict) and "message" in c for c in choices):
        messages = [choice["message"] for choice in choices]
        return messages[0] if len(messages) == 1 else messages
    return output


def _metadata(event: Event, request: Any, truncated: list[str]) -> dict[str, Any]:
    # Lunary keeps only first-level scalars, so no headers here, and the cut bodies as one string.
    metadata: dict[str, Any] = {
        "request_id": event.request_id,
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "duration_ms": event.duration_ns // 1_000_000,
        "stream": transform.is_stream(event, request),
    }
    if truncated:
        metadata["truncated"] = ",".join(truncated)
    return metadata


def _error_message(status: int, output: Any) -> str:
    error = output.get("error") if isinstance(output, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{status}: {error['message']}"
    if isinstance(error, str):
        return f"{status}: {error}"
    return f"upstream answered {status}"


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}
