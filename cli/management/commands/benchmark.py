"""`manage.py benchmark`: the reference's load generator (its `benchmark` command), same flags and table.

    manage.py benchmark --base-url http://localhost:8080 --endpoint /v1/chat/completions \
        --token "$PROXY_TOKEN" -r 100 -c 4 --json '{"model":"gpt-4o-mini","messages":[...]}'
"""

import asyncio
import json
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cli import benchmark
from cli.benchmark import Options, Progress

BORDER = "+" + "-" * 52 + "+"


class Command(BaseCommand):
    help = "Benchmark latency, throughput and error rates of the proxy (or any OpenAI-compatible URL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", required=True, help="e.g. http://localhost:8080")
        parser.add_argument("--endpoint", required=True, help="e.g. /v1/chat/completions")
        parser.add_argument("--token", default="", help="Bearer token (proxy token or provider key)")
        parser.add_argument(
            "--token-env", default="PROXY_TOKEN", help="Environment variable holding the token when --token is absent"
        )
        parser.add_argument("-r", "--requests", type=int, default=1, help="Total number of requests")
        parser.add_argument("-c", "--concurrency", type=int, default=1, help="Concurrent workers")
        parser.add_argument("--json", dest="body", default="", help="JSON body sent with POST/PUT/PATCH")
        parser.add_argument("--method", default="POST", help="HTTP method (default POST)")
        parser.add_argument("--cache", action="store_true", help="Send Cache-Control: public, max-age=<ttl>")
        parser.add_argument("--cache-ttl", type=int, default=0, help="max-age for --cache (default 86400)")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds per request (default 10)")
        parser.add_argument("--debug", action="store_true", help="Print a sample response per status code")
        parser.add_argument("--json-output", action="store_true", help="Print the results as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        options = _options(opts)
        progress = Progress(options.requests, write=self._progress)
        results, duration = asyncio.run(benchmark.run(options, progress))
        progress.finish()
        summary = benchmark.summarize(options, results, duration)
        samples = benchmark.samples_by_status(results) if opts["debug"] else {}
        if opts["json_output"]:
            output = json.dumps(_as_json(summary, samples), indent=2)
        else:
            output = "\n".join(_table(summary, options) + _debug_lines(samples))
        # Belt and braces: the token never reaches the terminal, even if a server echoes it back.
        self.stdout.write(output.replace(options.token, "<redacted>"))

    def _progress(self, text: str) -> None:
        self.stderr.write(text, ending="")
        self.stderr.flush()


def _options(opts: dict[str, Any]) -> Options:
    token = opts["token"] or os.environ.get(opts["token_env"], "")
    if not token:
        raise CommandError(f"No token: pass --token or set {opts['token_env']} (see --token-env).")
    if opts["requests"] <= 0 or opts["concurrency"] <= 0:
        raise CommandError("--requests and --concurrency must be positive.")
    if opts["body"]:
        try:
            json.loads(opts["body"])
        except ValueError as exc:
            raise CommandError(f"--json is not valid JSON: {exc}")
    return Options(
        base_url=opts["base_url"].rstrip("/"),
        endpoint="/" + opts["endpoint"].lstrip("/"),
        token=token,
        requests=opts["requests"],
        concurrency=opts["concurrency"],
        body=opts["body"],
        method=(opts["method"].strip() or "POST").upper(),
        cache=opts["cache"],
        cache_ttl=opts["cache_ttl"],
        timeout=opts["timeout"],
    )


def duration(ns: int) -> str:
    """Like Go's benchmark output: 0, 812ns, 3.250µs, 12.500ms, 1.234s."""
    if ns == 0:
        return "0"
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.3f}s"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.3f}ms"
    if ns >= 1_000:
        return f"{ns / 1e3:.3f}µs"
    return f"{ns}ns"


def _row(label: str, value: object) -> str:
    return f"| {label:<25} | {str(value):<22} |"


def _table(summary: dict[str, Any], options: Options) -> list[str]:
    latency = summary["latency"] or dict.fromkeys(("avg", "min", "max", "p50", "p90", "p99", "p90_mean"), 0)
    lines = [BORDER, _row("Total requests", summary["total_requests"]), _row("Concurrency", summary["concurrency"])]
    lines += [_row("Duration (s)", f"{summary['duration_seconds']:.2f}"), _row("Success", summary["success"])]
    lines += [_row("Failed", summary["failed"]), _row("Requests/sec", f"{summary['requests_per_second']:.2f}")]
    lines += [_row(f"{name} latency", duration(latency[key])) for name, key in _LATENCY_ROWS]
    if summary["cache_hits"] or summary["saw_cache_header"] or options.cache:
        lines.append(_row("Cache hits", summary["cache_hits"]))
    if summary["success"]:
        lines += _split_rows("Upstream latency", summary["upstream_latency"])
        lines += _split_rows("Proxy latency", summary["proxy_latency"])
    lines += [BORDER, f"| {'Response code':<50} |"]
    for status, count in summary["status_counts"].items():
        lines.append(_row("Network error" if status == 0 else str(status), count))
    return [*lines, BORDER]


_LATENCY_ROWS = [("Avg", "avg"), ("Min", "min"), ("Max", "max"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99")]
_LATENCY_ROWS.append(("p90 mean", "p90_mean"))


def _split_rows(label: str, stats: dict[str, Any] | None) -> list[str]:
    if stats is None:
        return [_row(label, "N/A")]
    keys = [("avg", "avg"), ("min", "min"), ("max", "max"), ("p90", "p90"), ("p90 mean", "p90_mean")]
    return [_row(f"{label} {name}", duration(stats[key])) for name, key in keys]


def _debug_lines(samples: dict[int, Any]) -> list[str]:
    if not samples:
        return []
    lines = ["", "Sample responses by status code:"]
    for status, sample in samples.items():
        lines += ["", "NETWORK ERROR:" if status == 0 else f"Status {status}:"]
        if status == 0:
            lines.append(f"Error: {sample.error or '<no error message>'}")
        lines.append("Request headers:")
        lines += [f"  {name}: {value}" for name, value in sample.request_headers.items()]
        if sample.request_body:
            lines.append(f"Request body: {sample.request_body}")
        if status:
            lines.append("Response headers:")
            lines += [f"  {_canonical(name)}: {value}" for name, value in sample.headers]
            lines.append(f"Response body: {sample.body or '<empty body>'}")
    return lines


def _canonical(name: str) -> str:
    """Header names as Go prints them (X-Proxy-Cache): servers may send them in any case (HTTP/1.1 lowercases)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _as_json(summary: dict[str, Any], samples: dict[int, Any]) -> dict[str, Any]:
    data = {key: value for key, value in summary.items() if key != "saw_cache_header"}
    data["status_counts"] = {("network_error" if s == 0 else str(s)): n for s, n in summary["status_counts"].items()}
    for key in ("latency", "upstream_latency", "proxy_latency"):  # seconds, like duration_seconds
        data[key] = {k: v / 1e9 for k, v in summary[key].items()} if summary[key] else None
    if samples:
        data["samples"] = {
            ("network_error" if s == 0 else str(s)): {
                "error": r.error,
                "request_headers": r.request_headers,
                "request_body": r.request_body,
                "response_headers": {_canonical(name): value for name, value in r.headers},
                "response_body": r.body,
            }
            for s, r in samples.items()
        }
    return data
