#!/usr/bin/env bash
# Response cache: cost of a hit against a miss, one web process, against the fixed-answer nginx upstream of
# bench/ (started as bench/run.sh does) with its wrk script (POST /v1/chat/completions).
#   miss: the plain request (no client opt-in: goes upstream every time)
#   hit:  the same request with `Cache-Control: public, max-age=60` (stored once, then served from the cache)
# Prints one line per measurement: wrk's RESULT plus the proxy process's CPU milliseconds per request
# (utime+stime from /proc), which stays meaningful on a busy machine where throughput does not.
# Usage: scripts/bench-cache.sh   Env: BENCH_DIR (bench) SECS (8) C ("1 16") BACKEND (in-memory|redis)
#        SERVER (default: .venv/bin/daphne -b 127.0.0.1 -p 18080; the app path is appended)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${BENCH_DIR:-bench}" && pwd) T=${BENCH_TMP:-/tmp/llmproxy-bench-cache}
SECS=${SECS:-8} CONCS=${C:-"1 16"} BACKEND=${BACKEND:-in-memory}
mkdir -p "$T"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
nginx -c "$B/upstream.nginx.conf" -p "$T/" 2>/dev/null
printf 'default_api: openai\napis:\n  openai:\n    base_url: http://127.0.0.1:18081\n    allowed_endpoints: ["/v1/chat/completions", "/v1/models"]\n    allowed_methods: ["GET", "POST", "OPTIONS"]\n' >"$T/api_providers.yaml"
rm -f "$T/bench.sqlite3"
export MANAGEMENT_TOKEN=bench-management-token-0123456789abcdef DATABASE_URL="sqlite:///$T/bench.sqlite3" API_CONFIG_PATH="$T/api_providers.yaml" \
  LLM_PROXY_EVENT_BUS=in-memory DJANGO_DEBUG=False SECRET_KEY=bench-secret-key-not-for-production-0123456789abcdef \
  ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= ALLOWED_HOSTS=127.0.0.1,localhost \
  HTTP_CACHE_BACKEND="$BACKEND" REDIS_CACHE_KEY_PREFIX="bench:cache:$$:"
.venv/bin/python manage.py migrate --noinput >"$T/migrate.log" 2>&1
${SERVER:-.venv/bin/daphne -b 127.0.0.1 -p 18080} llmproxy.asgi:application >"$T/project.log" 2>&1 & pids+=($!)
server=$!
for _ in $(seq 1 120); do curl -s -o /dev/null http://127.0.0.1:18080/health && break; sleep 0.5; done
auth="Authorization: Bearer $MANAGEMENT_TOKEN"
project=$(curl -sf -XPOST http://127.0.0.1:18080/manage/projects -H "$auth" -d '{"name":"bench","api_key":"sk-upstream-bench-key-1234567890"}' \
  | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export TOKEN=$(curl -sf -XPOST http://127.0.0.1:18080/manage/tokens -H "$auth" -d "{\"project_id\":\"$project\",\"duration_minutes\":600}" \
  | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
url=http://127.0.0.1:18080/v1/chat/completions
cpu() { awk '{print $14+$15}' "/proc/$server/stat"; }
measure() {  # label, EXTRA_HEADERS for post.lua
  local before after out rps
  EXTRA_HEADERS="$2" wrk -t1 -c"$c" -d2s -s "$B/post.lua" "$url" >/dev/null 2>&1 || true  # warm-up (and the one store)
  before=$(cpu); out=$(EXTRA_HEADERS="$2" wrk -t1 -c"$c" -d"${SECS}s" -s "$B/post.lua" "$url" | grep RESULT); after=$(cpu)
  rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$out")
  echo "$1 backend=$BACKEND c=$c ${out#RESULT } cpu_ms_per_req=$(awk -v a="$before" -v b="$after" -v r="$rps" -v s="$SECS" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.3f", (b-a)*1000/hz/(r*s)}')"
}
for c in $CONCS; do
  for round in 1 2; do  # interleaved, so that drift on a shared machine hits both alike
    measure miss ""
    measure hit "Cache-Control=public, max-age=60"
  done
done
