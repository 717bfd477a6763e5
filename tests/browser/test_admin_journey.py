"""An operator's day in the admin, in a real browser: a project, a token shown once, the proxy, revocation,
the audit log. Screenshots of each step: test-artifacts/browser/<test>/."""

import re
import time

import openai
import pytest
from playwright.sync_api import expect

from audit.services import AuditContext
from projects.services import project_create
from tests.browser.conftest import admin_login
from tests.support.waiting import wait_until
from tokens.services import token_create, token_revoke

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
UPSTREAM_KEY = "sk-upstream-browser-key-0123456789"


def chat(base_url: str, token: str) -> str:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=token, max_retries=0, timeout=10)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    return reply.choices[0].message.content


def wait_for_text(page, selector: str, text: str, timeout: float = 10.0) -> None:
    """Reload until `text` shows up in `selector` (for numbers the server writes a moment later)."""

    def shown() -> bool:
        if text in page.inner_text(selector):
            return True
        page.reload()
        return False

    wait_until(shown, timeout=timeout, interval=0.2, message=f"{text!r} to appear in {selector}")


def test_project_token_once_proxy_then_revoke_is_refused(page, steps, proxy_server, admin_user):
    admin_login(page)
    steps.shot("admin-index")

    # A project, with its upstream key (a password field: the key is never rendered back).
    page.goto("/admin/projects/project/add/")
    page.fill("#id_name", "Browser Project")
    page.fill("#id_api_key", UPSTREAM_KEY)
    steps.shot("project-form")
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text("Browser Project")
    expect(page.locator("#result_list")).to_contain_text("Browser Project")
    assert UPSTREAM_KEY not in page.content()
    steps.shot("project-created")

    # A token: its secret is on the page after creation, once.
    page.goto("/admin/tokens/token/add/")
    page.select_option("#id_project", label="Browser Project")
    page.select_option("#id_duration", value="60")
    steps.shot("token-form")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/tokens/token/[0-9a-f-]+/created/$"))
    secret = page.input_value("#token-secret")
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{22}", secret)
    expect(page.locator("#example-python")).to_contain_text(secret)
    steps.shot("token-shown-once")
    created_url = page.url
    token_id = created_url.rstrip("/").split("/")[-2]

    page.reload()
    expect(page.locator("#token-gone")).to_be_visible()
    assert secret not in page.content()
    page.goto("/admin/tokens/token/")
    assert secret not in page.content()
    steps.shot("token-never-again")

    # The token works through the proxy (fake upstream behind it, the project's key swapped in).
    assert chat(proxy_server.url, secret) == "Hello from upstream"
    assert proxy_server.upstream.requests[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    page.goto("/admin/tokens/token/")
    wait_for_text(page, "#result_list", "used 1 / unlimited")  # unlimited tokens are counted in batches
    steps.shot("token-used-through-the-proxy")

    # Revoke it in the admin: the proxy refuses it at once.
    page.goto("/admin/tokens/token/")
    page.check(f"input.action-select[value='{token_id}']")
    page.select_option("select[name=action]", value="revoke")
    steps.shot("revoke-action")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("Revoked 1 token")
    expect(page.locator("#result_list")).to_contain_text("Revoked")
    steps.shot("token-revoked")
    started = time.monotonic()
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(proxy_server.url, secret)
    assert refused.value.status_code == 401 and time.monotonic() - started < 1.0


def test_audit_log_is_browsed_and_filtered(page, steps, proxy_server, admin_user):
    ctx = AuditContext(actor="admin:admin", client_ip="203.0.113.7", method="POST", path="/admin/")
    acme = project_create(name="Audit Acme", api_key=UPSTREAM_KEY, ctx=ctx)
    other = project_create(name="Audit Other", api_key=UPSTREAM_KEY, ctx=ctx)
    token, _secret = token_create(project=acme, duration_minutes=60, ctx=ctx)
    token_create(project=other, duration_minutes=60, ctx=ctx)
    token_revoke(token=token, ctx=ctx)

    admin_login(page)
    page.goto("/admin/audit/auditevent/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    steps.shot("audit-log")

    # Filter by action in the sidebar.
    page.locator("#changelist-filter").get_by_role("link", name="token.create", exact=True).click()
    expect(rows).to_have_count(2)
    for text in rows.all_inner_texts():
        assert "token.create" in text
    steps.shot("filtered-by-action")

    # ...and by project as well: only Acme's token.
    page.locator("#changelist-filter").get_by_role("link", name="Audit Acme", exact=True).click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Audit Acme")
    steps.shot("filtered-by-action-and-project")

    # Search, then open one event: its details are read-only.
    page.goto("/admin/audit/auditevent/")
    page.fill("#searchbar", "token.revoke")
    page.press("#searchbar", "Enter")
    expect(rows).to_have_count(1)
    rows.first.locator("th a, td a").first.click()
    expect(page.locator("#content")).to_contain_text("token.revoke")
    expect(page.locator("#content")).to_contain_text("203.0.113.7")
    assert page.locator("input[name=_save]").count() == 0
    steps.shot("audit-event-detail")
