"""The `helicone` service: one POST per event in Helicone's manual-logger format.

Helicone takes the provider from the URL path (`/oai/v1/log` prices OpenAI models), extracts stream
usage only from the raw SSE in `textBody`, requires `providerResponse.json` even then, and answers
200 `{"error": ...}` for some failures; all of that is handled here.
"""

import re
from datetime import datetime
from typing import Any

from dispatch import transform
from dispatch.backends.base import DeliveryError, HttpBackend
from instrumentation import bodies
from instrumentation.events import Event

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class HeliconeBackend(HttpBackend):
    name = "helicone"
    default_endpoint = "https://api.worker.helicone.ai/oai/v1/log"
    key_variable = "HELICONE_API_KEY"

    def payload(self, event: Event, received_at: datetime | None = None) -> dict[str, Any] | None:
        if event.method.upper() != "POST" or transform.is_refused(event):
            return None  # not an LLM call: refused requests (no token, bad method...) stay out of the service
        return manual_log(event, received_at)

    def send(self, payloads: list[dict[str, Any]]) -> None:
        failures: dict[int, Exception] = {}
        for index, body in enumerate(payloads):
            try:
                self._send_one(body)
            except DeliveryError as exc:
                failures[index] = exc
                if not exc.permanent:
                    # The service is unreachable or overloaded: the rest of the batch waits for the retry.
                    failures.update({later: exc for later in range(index + 1, len(payloads))})
                    break
            except Exception as exc:  # this log's own problem (a value httpx cannot encode): the others go on
                failures[index] = exc
        if failures:
            first = next(iter(failures.values()))
            raise DeliveryError(f"helicone refused {len(failures)} of {len(payloads)} logs: {first}", failures=failures)

    def _send_one(self, body: dict[str, Any]) -> None:
        response = self.post(body)
        text = response.text.strip()
        if text.startswith("{"):
            try:
                error = response.json().get("error")
            except (ValueError, AttributeError):
                error = None
            if error:
                # e.g. 200 {"error": "Auth failed! ..."}: a wrong key will not get better by retrying.
                raise DeliveryError(f"helicone answered 200 with error: {error}", permanent=True)


def manual_log(event: Event, received_at: datetime | None = None) -> dict[str, Any]:
    request_raw, response_raw = bodies.request_body(event), bodies.response_body(event)
    request = request_raw.json()
    started, ended = transform.event_times(event, received_at)
    stream = transform.is_stream(event, request)
    response: dict[str, Any] = {"status": event.status, "headers": _headers(event), "json": {}}
    if stream:
        response["textBody"] = _raw_stream(response_raw)
    else:
        output = transform.response_output(event, response_raw)
        if isinstance(output, dict):
            response["json"] = output
        elif isinstance(output, str) and output:
            response["textBody"] = output
    timing: dict[str, Any] = {"startTime": _moment(started), "endTime": _moment(ended)}
    first_chunk = transform.first_chunk_at(event) if stream else None
    if first_chunk is not None:
        ttft_ms = (first_chunk - started).total_seconds() * 1000
        timing["timeToFirstToken"] = int(min(max(ttft_ms, 0), event.duration_ns / 1_000_000))
    return {
        "providerRequest": {
            "url": event.path,
            "json": request if isinstance(request, dict) else {},
            "meta": _meta(event, request, transform.truncated_parts(request_raw, response_raw)),
        },
        "providerResponse": response,
        "timing": timing,
    }


def _meta(event: Event, request: Any, truncated: list[str]) -> dict[str, str]:
    meta = {
        "Helicone-Request-Id": transform.run_id(event),
        "Helicone-Property-Source": "llm-proxy",
        "Helicone-Property-Path": event.path,
        "Helicone-Property-Proxy-Request-Id": event.request_id,
    }
    if isinstance(request, dict) and isinstance(request.get("user"), str):
        meta["Helicone-User-Id"] = request["user"]
    if truncated:  # a body cut at OBSERVABILITY_MAX_DECODED_BYTES, shown as a property in Helicone
        meta["Helicone-Property-Truncated"] = ",".join(truncated)
    return {name: value for name, value in meta.items() if _header_value_ok(value)}


def _headers(event: Event) -> dict[str, str]:
    # Helicone builds HTTP Headers from this map: an invalid name or value would make it answer 500.
    headers = {}
    for name, values in event.response_headers.items():
        value = ", ".join(values)
        if _HEADER_NAME.match(name) and _header_value_ok(value):
            headers[name.lower()] = value
    return headers


def _header_value_ok(value: str) -> bool:
    if not value or any(ch in value for ch in "\r\n\0"):
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _raw_stream(body: bodies.Body) -> str:
    text = body.text() or ""
    # Helicone's stream preview drops the last line, assuming it is [DONE]; a capped stream lacks it.
    if not text.rstrip().endswith("data: [DONE]"):
        text = text.rstrip("\n") + "\n\ndata: [DONE]\n\n"
    return text


def _moment(moment: datetime) -> dict[str, int]:
    millis = int(moment.timestamp() * 1000)
    return {"seconds": millis // 1000, "milliseconds": millis % 1000}
