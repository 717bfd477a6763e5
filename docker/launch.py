"""Start-up steps of a container, called by docker/entrypoint.sh (and by tests, outside Docker).

    python docker/launch.py wait-db   wait until the database answers (DB_WAIT_TIMEOUT)
    python docker/launch.py migrate   wait, then apply migrations under a lock (one replica at a time)
    python docker/launch.py prepare   wait, then migrate when MIGRATE_ON_START is true
    python docker/launch.py web [server options]
                                      prepare, then WEB_CONCURRENCY Daphne processes sharing one listening socket
                                      (WEB_SERVER=uvicorn: uvicorn with WEB_CONCURRENCY workers, about half the CPU
                                      per request, see docs/performance.md)

Daphne is a single process, so several of them accept on a socket bound here and passed by descriptor
(`--fd N`); the kernel spreads connections among them.
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")
MIGRATION_LOCK_ID = 0x4C4C4D50  # "LLMP": the PostgreSQL advisory lock serialising `migrate` across replicas


def say(message: str) -> None:
    print(f"[launch] {message}", file=sys.stderr, flush=True)


def setup_django():
    import django
    from django.conf import settings

    django.setup()
    return settings


def wait_for_db() -> None:
    """Block until the default database accepts a connection, or exit 1 after DB_WAIT_TIMEOUT.

    Only the settings and the database backend are loaded (not the apps): a second less per container start.
    """
    from django.conf import settings
    from django.db import connection
    from django.db.utils import OperationalError

    deadline = time.monotonic() + settings.DB_WAIT_TIMEOUT
    where = _db_description(settings.DATABASES["default"])
    last_report = 0.0
    while True:
        try:
            connection.ensure_connection()
            connection.close()
            say(f"database {where} is answering")
            return
        except OperationalError as exc:
            now = time.monotonic()
            if now >= deadline:
                say(f"database {where} did not answer within DB_WAIT_TIMEOUT={settings.DB_WAIT_TIMEOUT:g}s: {exc}")
                sys.exit(1)
            if now - last_report >= 5:
                say(f"waiting for database {where}: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}")
                last_report = now
            time.sleep(0.5)


def _db_description(db: dict) -> str:
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:{db['NAME']}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]}://{db.get('HOST') or 'localhost'}:{db.get('PORT') or 'default'}"


def migrate() -> None:
    """Apply migrations while holding a lock, so replicas starting together migrate one after another."""
    from django.core.management import call_command
    from django.db import connection

    settings = setup_django()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        try:
            call_command("migrate", interactive=False, verbosity=1)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
        return
    if connection.vendor == "sqlite":
        import fcntl

        lock_path = Path(str(settings.DATABASES["default"]["NAME"]) + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            call_command("migrate", interactive=False, verbosity=1)
        return
    call_command("migrate", interactive=False, verbosity=1)


def prepare() -> None:
    wait_for_db()
    from django.conf import settings

    if settings.MIGRATE_ON_START:
        migrate()
    else:
        say("MIGRATE_ON_START=false: not migrating (the compose file's `migrate` service does it)")


def listening_socket(addr: str) -> socket.socket:
    """A bound, listening, inheritable IPv4 socket for LISTEN_ADDR (`host:port` or `:port`)."""
    host, _, port = addr.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or "0.0.0.0", int(port)))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def web(extra_args: list[str]) -> None:
    """Wait for the database and migrate (as `prepare`), then serve with WEB_CONCURRENCY Daphne processes."""
    from django.db import connections

    prepare()
    connections.close_all()  # the Daphne processes open their own
    from django.conf import settings

    addr, count = settings.LISTEN_ADDR, settings.WEB_CONCURRENCY
    host, _, port = addr.rpartition(":")
    app = "llmproxy.asgi:application"
    if settings.WEB_SERVER == "uvicorn":
        say(f"serving {addr} with {count} uvicorn worker(s)")
        uvicorn = ["uvicorn", app, "--host", host.strip("[]") or "0.0.0.0", "--port", port, "--workers", str(count)]
        fast = ["--loop", "uvloop", "--http", "httptools", "--lifespan", "on", "--no-access-log"]
        grace = ["--timeout-graceful-shutdown", str(int(settings.SHUTDOWN_TIMEOUT))]
        os.execvp("uvicorn", [*uvicorn, *fast, *grace, *extra_args])
    say(f"serving {addr} with {count} Daphne process(es)")
    if count == 1:  # PID 1 becomes Daphne itself, so signals reach it directly
        os.execvp("daphne", ["daphne", "-b", host.strip("[]") or "0.0.0.0", "-p", port, *extra_args, app])
    if ":" in host:
        say(f"WEB_CONCURRENCY={count} shares an IPv4 socket: use an IPv4 LISTEN_ADDR (e.g. 0.0.0.0:{port})")
        sys.exit(2)
    # Daphne's `fd:` endpoint adopts an already-listening IPv4 socket (its `domain` option is not parsed).
    sock = listening_socket(addr)
    sys.exit(supervise(["daphne", "--fd", str(sock.fileno()), *extra_args, app], count, settings.SHUTDOWN_TIMEOUT))


def supervise(argv: list[str], count: int, grace: float) -> int:
    """Run `count` copies of argv; forward SIGTERM/SIGINT; if one dies, stop the rest and exit with its status."""
    children = {os.spawnvp(os.P_NOWAIT, argv[0], argv) for _ in range(count)}
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        if not stopping:
            _kill_after(children, grace)
        stopping = True
        for pid in children:
            _kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        pid, raw = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if not stopping:
            say(f"web process {pid} exited with {code}: stopping the others")
            status = code or 1
            forward(signal.SIGTERM, None)
    return status


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _kill_after(children: set[int], grace: float) -> None:
    def hard_stop(_signum, _frame):
        for pid in children:
            _kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(max(1, int(grace) + 5))  # Daphne's own grace first, then no stragglers


def main(argv: list[str]) -> None:
    commands = {"wait-db": wait_for_db, "migrate": lambda: (wait_for_db(), migrate()), "prepare": prepare}
    if not argv or argv[0] not in {*commands, "web"}:
        say(f"usage: launch.py {{{'|'.join([*commands, 'web'])}}} [options]")
        sys.exit(2)
    if argv[0] == "web":
        web(argv[1:])
    else:
        commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
