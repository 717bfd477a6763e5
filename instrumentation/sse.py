"""An OpenAI server-sent-event stream merged into one completion, and the token usage read from a completion.

FILE_EVENT_LOG (in the web process), the dispatch backends and the usage rollups all read these; they live
beside the event capture so that `dispatch` imports `instrumentation`, never the other way round.
"""

from typing import Any

import ujson
from django.conf import settings

MAX_TOKEN_COUNT = 2**53  # the largest integer every JSON reader (JavaScript's included) holds exactly
# ujson parses these small documents about twice as fast as the standard library.
loads = ujson.loads


def merge_openai_sse(text: str) -> dict[str, Any] | None:
    """One completion object from an OpenAI server-sent-event stream; None when `text` is not one.

    Chat chunks become a `chat.completion` (content deltas joined, tool-call arguments joined,
    the last finish_reason, `usage` from the final chunk); legacy completion chunks become a
    `text_completion`; a Responses API stream yields its `response.completed` object.
    Only the first OBSERVABILITY_MAX_DECODED_BYTES characters are read, so an endless stream costs bounded time.
    """
    chunks = _sse_json_chunks(text[: settings.OBSERVABILITY_MAX_DECODED_BYTES])
    if not chunks:
        return None
    for chunk in reversed(chunks):
        if chunk.get("type") == "response.completed" and isinstance(chunk.get("response"), dict):
            response: dict[str, Any] = chunk["response"]
            return response
    if not any("choices" in chunk or "usage" in chunk for chunk in chunks):
        return None
    try:
        return _merge_chat_chunks(chunks)
    except (
        AttributeError,
        TypeError,
        ValueError,
        OverflowError,
    ):  # chunks shaped unlike OpenAI's: leave the text as it is
        return None


def _sse_json_chunks(text: str) -> list[dict[str, Any]]:
    lines = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    lines = [line for line in lines if line.startswith("{")]  # not [DONE]
    try:
        # One parser call for the whole stream: a long answer has one chunk per token.
        chunks = loads("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):  # a broken line (e.g. cut at the capture cap): parse one by one, skip it
        chunks = []
        for line in lines:
            try:
                chunks.append(loads(line))
            except (ValueError, RecursionError):
                continue
    return [chunk for chunk in chunks if isinstance(chunk, dict)]


def _merge_chat_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    meta = next((chunk for chunk in chunks if chunk.get("id")), chunks[0])
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index") or 0
            state = choices.get(index)
            if state is None:
                state = choices[index] = {"content": []}
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    state["content"].append(content)
                if content is None or len(delta) > 1:
                    _merge_delta(state, delta)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
            if isinstance(choice.get("text"), str):
                state.setdefault("text", []).append(choice["text"])
    legacy = any("text" in state for state in choices.values())
    merged = {
        "id": meta.get("id"),
        "object": "text_completion" if legacy else "chat.completion",
        "created": meta.get("created"),
        "model": meta.get("model"),
        "choices": [_finish_choice(index, choices[index], legacy) for index in sorted(choices)],
    }
    if meta.get("system_fingerprint"):
        merged["system_fingerprint"] = meta["system_fingerprint"]
    if isinstance(usage, dict):
        merged["usage"] = usage
    return merged


def _merge_delta(state: dict[str, Any], delta: dict[str, Any]) -> None:
    """The rarer parts of a delta: role, refusal, tool calls."""
    if delta.get("role"):
        state["role"] = delta["role"]
    if isinstance(delta.get("refusal"), str):
        state.setdefault("refusal", []).append(delta["refusal"])
    for call in delta.get("tool_calls") or ():
        _merge_tool_call(state.setdefault("tool_calls", {}), call)


def _merge_tool_call(calls: dict[int, Any], call: dict[str, Any]) -> None:
    slot = calls.setdefault(int(call.get("index") or 0), {"arguments": []})
    for key in ("id", "type"):
        if call.get(key):
            slot[key] = call[key]
    function = call.get("function") or {}
    if function.get("name"):
        slot["name"] = function["name"]
    if isinstance(function.get("arguments"), str):
        slot["arguments"].append(function["arguments"])


def _finish_choice(index: int, state: dict[str, Any], legacy: bool) -> dict[str, Any]:
    if legacy:
        return {"index": index, "text": "".join(state.get("text", [])), "finish_reason": state.get("finish_reason")}
    message: dict[str, Any] = {"role": state.get("role", "assistant"), "content": "".join(state.get("content", []))}
    if "refusal" in state:
        message["refusal"] = "".join(state["refusal"])
    if state.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": slot.get("id"),
                "type": slot.get("type", "function"),
                "function": {"name": slot.get("name"), "arguments": "".join(slot["arguments"])},
            }
            for _, slot in sorted(state["tool_calls"].items())
        ]
        message["content"] = message["content"] or None
    return {"index": index, "message": message, "finish_reason": state.get("finish_reason")}


def tokens_usage(output: object) -> dict[str, int] | None:
    """`{prompt, completion}` from an OpenAI `usage` (chat/completions or the Responses API)."""
    usage = output.get("usage") if isinstance(output, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if not is_token_count(prompt) and not is_token_count(completion):
        return None
    return {
        "prompt": prompt if isinstance(prompt, int) and is_token_count(prompt) else 0,
        "completion": completion if isinstance(completion, int) and is_token_count(completion) else 0,
    }


def is_token_count(value: object) -> bool:
    # An upstream's number, not trusted: a bool, a negative or a 4,000-digit count would break the rollups.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT
