import httpx


def test_proxy_server_serves_the_project_on_a_real_socket(proxy_server):
    response = httpx.get(proxy_server.url + "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
