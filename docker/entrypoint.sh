#!/bin/sh
# Container entry point: wait for the database, migrate once, then exec the process it is given.
#
#   web [daphne options]      WEB_CONCURRENCY Daphne processes on LISTEN_ADDR (default)
#   worker [celery options]   Celery worker draining the event stream (DISPATCH_SERVICES)
#   beat [celery options]     Celery beat, scheduling the drain cycles
#   migrate                   wait for the database, apply migrations, exit (the compose file's one-shot service)
#   anything else             run as given, e.g. `python manage.py dispatcher --service file`
#
# Migrations run under a lock (PostgreSQL advisory lock, or a file lock for SQLite), so replicas that
# start together migrate one after another; MIGRATE_ON_START=false skips them.
set -eu
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ]; then
  set -- web
fi

case "$1" in
  migrate)
    exec python docker/launch.py migrate
    ;;
  web)
    # One interpreter less at start-up: the launcher waits and migrates itself, then starts Daphne.
    shift
    exec python docker/launch.py web "$@"
    ;;
esac

python docker/launch.py prepare

case "$1" in
  worker)
    shift
    exec celery -A llmproxy worker --loglevel "${LOG_LEVEL:-info}" "$@"
    ;;
  beat)
    shift
    exec celery -A llmproxy beat --loglevel "${LOG_LEVEL:-info}" --schedule "${DATA_DIR:-data}/celerybeat-schedule" "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
