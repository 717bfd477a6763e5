"""docker/nginx.conf.template run by a real nginx in front of the real application (skipped only when this
machine has no nginx binary). The template is rendered as the nginx image's envsubst step does; the address
of the `web` service, which only Docker's DNS knows, becomes the test server's."""

import os
import re
import shutil
import socket
import subprocess

import httpx
import pytest

from tests.deploy.conftest import DOCKER, free_port
from tests.proxy.test_body_limits import send_chunked
from tests.support.waiting import wait_until

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="no nginx binary on this machine")
LIMIT = 1024 * 1024


def render(port: int, upstream_port: int) -> str:
    text = (DOCKER / "nginx.conf.template").read_text()
    text = text.replace("${MAX_REQUEST_SIZE}", str(LIMIT))  # envsubst, with MAX_REQUEST_SIZE=1048576 set
    text = text.replace("server web:8080;", f"server 127.0.0.1:{upstream_port};")
    return re.sub(r"listen 8080;", f"listen 127.0.0.1:{port};", text)


def main_config(tmp_path, site) -> str:
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temporary folders under tmp_path
    return (
        f"{user} worker_processes 1; daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; {temp} include {site}; }}\n"
    )


@pytest.fixture
def nginx(tmp_path, proxy_server):
    port = free_port()
    site = tmp_path / "default.conf"
    site.write_text(render(port, int(proxy_server.url.rsplit(":", 1)[1])))
    config = tmp_path / "nginx.conf"
    config.write_text(main_config(tmp_path, site))
    checked = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(config)], stderr=subprocess.PIPE)
    try:

        def listening() -> bool:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_until(listening, interval=0.05, ignoring=(OSError,), message=f"nginx to listen on port {port}")
        yield port
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()


def test_nginx_refuses_a_chunked_body_past_max_request_size_as_json_before_the_application(nginx, proxy_server):
    answer, sent = send_chunked(nginx, "/manage/projects", 50 * LIMIT)
    if answer:  # nginx may also reset the connection before the answer is read
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert answer.endswith(b'{"error":"Request body too large","code":"request_too_large"}\n')
        assert b"application/json" in answer
    assert sent < 25 * LIMIT


def test_nginx_passes_requests_under_the_limit_and_streams_answers(nginx, proxy_server, token_pair):
    url = f"http://127.0.0.1:{nginx}"
    under = httpx.post(url + "/v1/chat/completions", content=b"x" * (LIMIT - 1024), timeout=10)
    assert under.status_code == 401 and under.json()["code"] == "invalid_token"  # the application answered
    auth = {"Authorization": f"Bearer {token_pair[1]}"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=chat, headers=auth, timeout=10) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        assert "data: [DONE]" in response.read().decode()
