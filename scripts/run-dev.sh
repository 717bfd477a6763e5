#!/usr/bin/env bash
# `make run`: the embedded default on 127.0.0.1:8080, nothing but Python needed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
export LLM_PROXY_EVENT_BUS=${LLM_PROXY_EVENT_BUS:-in-memory}
export FILE_EVENT_LOG=${FILE_EVENT_LOG:-data/events.jsonl}
export DJANGO_DEBUG=${DJANGO_DEBUG:-true}
.venv/bin/python manage.py migrate --noinput >/dev/null
# Creates data/management_token and the development admin login when missing, and prints them.
.venv/bin/python manage.py bootstrap_dev
export MANAGEMENT_TOKEN=${MANAGEMENT_TOKEN:-$(cat data/management_token)}
addr=${LISTEN_ADDR:-127.0.0.1:8080}
exec .venv/bin/daphne -b "${addr%:*}" -p "${addr##*:}" llmproxy.asgi:application
