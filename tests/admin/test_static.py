"""The admin's CSS and JavaScript are served by the ASGI application itself, also with DEBUG off (plain Daphne)."""

import httpx


async def test_admin_static_files_are_served_without_debug(settings):
    settings.DEBUG = False
    from llmproxy.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        css = await client.get("/static/admin/css/base.css")
        missing = await client.get("/static/admin/css/no-such-file.css")

    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
