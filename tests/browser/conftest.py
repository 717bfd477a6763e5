"""Playwright (Python, sync API) driving Debian's Chromium against the real ASGI app on a real socket.

Playwright's own browser download does not work on these machines: `make test` installs Debian's chromium
(scripts/ensure-chromium.sh) and the tests launch /usr/bin/chromium. Screenshots of every step go to
test-artifacts/browser/<test>/ (git-ignored).
"""

import os
import re
import uuid
from pathlib import Path

import pytest
import redis
from django.db import connections
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ADMIN_PASSWORD = "admin-password-123"  # the admin_user fixture's


@pytest.fixture(scope="module")
def browser(django_db_setup):
    """Chromium for one test module. Playwright's sync API keeps an event loop on this thread while it runs, which
    Django's ORM guard takes for async code: the test database is set up before, the guard is relaxed only while
    the browser lives (the tests' own ORM calls are plain synchronous calls), and the loop is gone after."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make services` (scripts/ensure-chromium.sh) to install it")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
            forget_loop_connections()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def forget_loop_connections() -> None:
    """Drop the connections the tests opened while Playwright's loop ran on this thread.

    With a running loop, Django keeps a thread's connections in a context variable instead of the thread's
    storage; left there, they would surface in every later async test of the session (copies of this context).
    Closing is a no-op for SQLite's in-memory test database, which the thread's own connection keeps alive.
    """
    for connection in connections.all(initialized_only=True):
        connection.close()
        del connections[connection.alias]


@pytest.fixture(autouse=True)
def _browser_test_settings(settings, monkeypatch):
    # PBKDF2's many iterations cost ~0.5 s per login here; password hashing is not under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The server's worker threads end each admin request by closing their connection, so none is left open
    # (PostgreSQL would refuse to drop the test database with sessions still attached).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


class Steps:
    """Numbered full-page screenshots of one test's steps."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def shot(self, label: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, proxy_server, request):
    context = browser.new_context(base_url=proxy_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def steps(page, request) -> Steps:
    return Steps(page, request.node.name)


def admin_login(page: Page, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


@pytest.fixture
def redis_events(settings):
    """The Redis Streams bus on a stream of this test's own, so a `usage` drain cycle can read the events."""
    from instrumentation.bus import reset_for_tests

    key = f"test-browser-{uuid.uuid4().hex[:12]}"
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_STREAM_KEY = key
    settings.REDIS_CONSUMER_GROUP = ""
    settings.DISPATCHER_FLUSH_INTERVAL = 0.2
    reset_for_tests()
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client, key
    reset_for_tests()
    client.delete(key, f"{key}:dead-letter", *client.scan_iter(f"{key}:*"))
    client.close()
