import json
from io import StringIO

from django.core.management import call_command

from dispatch.backends.memory import MemoryBackend
from dispatch.runner import build_drainer
from tests.dispatch.factories import chat_event
from tests.dispatch.test_drain import drainer_for


def dispatch_some(stream, tmp_path):
    """Three events: the file service delivers them; the memory service dead-letters one and is one behind."""
    stream.publish(chat_event(), chat_event())
    build_drainer("file", cli=True, endpoint=str(tmp_path / "s.jsonl")).run(until_idle=True)
    failing = MemoryBackend()
    failing.fail_next(permanent=True)
    drainer_for(failing, batch_size=1).step()
    stream.publish(chat_event())


def test_dispatch_status_shows_lag_pending_consumers_and_dead_letters_per_service(stream, settings, tmp_path):
    settings.DISPATCH_SERVICES = ["file", "lunary"]
    dispatch_some(stream, tmp_path)
    out = StringIO()
    call_command("dispatch_status", "--json", stdout=out)
    rows = {row["service"]: row for row in json.loads(out.getvalue())["services"]}
    assert (rows["file"]["lag"], rows["file"]["pending"], rows["file"]["dead_letter"]) == (1, 0, 0)
    assert len(rows["file"]["consumers"]) == 1
    assert (rows["memory"]["lag"], rows["memory"]["dead_letter"]) == (2, 1)
    assert rows["lunary"] == {
        "service": "lunary",
        "group": "llm-proxy-dispatchers-lunary",
        "lag": 3,
        "pending": 0,
        "consumers": [],
        "dead_letter": 0,
    }
    table = StringIO()
    call_command("dispatch_status", stdout=table)
    assert "llm-proxy-dispatchers-memory" in table.getvalue()


def test_the_admin_index_shows_the_dispatch_figures(stream, tmp_path, admin_client):
    dispatch_some(stream, tmp_path)
    page = admin_client.get("/admin/").content.decode()
    assert 'id="dispatch-figures"' in page
    assert '<tr id="dispatch-memory"><td>memory</td><td>2</td><td>0</td>' in page


def test_the_admin_index_still_answers_when_redis_is_down(stream, settings, admin_client):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    page = admin_client.get("/admin/").content.decode()
    assert "Redis did not answer" in page
