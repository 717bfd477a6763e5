"""docker/docker-compose.yml, checked offline (no Docker engine here): the Compose schema, and every service's
command, environment, profile, healthcheck and mount against what the project really reads and ships."""

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.urls import resolve

from dispatch.backends import BACKENDS
from tests.deploy.conftest import DOCKER, ROOT, container_env

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

COMPOSE_FILE = DOCKER / "docker-compose.yml"
APP_SERVICES = {"migrate", "web", "worker", "beat"}
ENTRYPOINT_COMMANDS = {"web", "worker", "beat", "migrate"}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
SETTINGS_READ = re.compile(r"\benv(?:_bool|_int|_duration|_list|_choice|_networks)?\(\s*\"([A-Z0-9_]+)\"")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def documented_variables() -> set[str]:
    """Every NAME in .env.example, set (`NAME=`) or shown with its default (`# NAME=`)."""
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M)
    return set(names)


def settings_variables() -> set[str]:
    return set(SETTINGS_READ.findall((ROOT / "llmproxy" / "settings.py").read_text()))


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set, as `--env-file .env.example` would leave it."""
    return INTERPOLATION.sub(lambda m: m.group(0).split(":-", 1)[1][:-1] if ":-" in m.group(0) else "", value)


def test_the_compose_file_is_valid_against_the_compose_specification(compose):
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_it_has_web_worker_beat_redis_postgres_nginx_and_optional_monitoring(services):
    assert set(services) == APP_SERVICES | {"nginx", "redis", "postgres", "prometheus", "grafana"}
    for name, service in services.items():
        expected = ["monitoring"] if name in ("prometheus", "grafana") else None
        assert service.get("profiles") == expected, name


def test_app_services_run_the_image_through_the_entrypoint_commands(services):
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert service["command"][0] in ENTRYPOINT_COMMANDS, name
        assert f"  {service['command'][0]})" in entrypoint or service["command"][0] == "migrate"
        assert "app-data:/app/data" in service["volumes"], name
    assert services["migrate"]["restart"] == "no"


def test_every_variable_the_compose_file_uses_is_documented_in_env_example():
    documented = documented_variables()
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    assert used and used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_app_environment_names_only_variables_the_project_reads(services):
    known = settings_variables() | {"LOG_LEVEL", "DATA_DIR"}
    documented = documented_variables()
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert set(env) <= known, f"{name}: not read by the project: {sorted(set(env) - known)}"
        assert set(env) <= documented, f"{name}: not in .env.example: {sorted(set(env) - documented)}"


def test_env_example_documents_every_variable_the_settings_read():
    missing = settings_variables() - documented_variables()
    assert not missing, f"add to .env.example: {sorted(missing)}"


PROBE = """
import importlib, json, os, sys
envs = json.loads(sys.stdin.read())
import llmproxy.settings as s
found = {}
for name, env in envs.items():
    os.environ.clear()
    os.environ.update(env)
    importlib.reload(s)  # settings.py reads os.environ at import: a reload is a fresh start-up
    found[name] = [s.LLM_PROXY_EVENT_BUS, s.DATABASES["default"]["ENGINE"], s.REDIS_URL, s.DISPATCH_SERVICES,
                   s.WEB_CONCURRENCY, s.MIGRATE_ON_START, s.ALLOWED_HOSTS, s.CELERY_BROKER_URL]
print(json.dumps(found))
"""


def test_the_settings_accept_each_app_services_environment(services, tmp_path):
    """Run the real settings module with each service's environment (interpolated with the defaults): values
    parse, the bus and broker are the compose Redis, and every DISPATCH_SERVICES name is a registered backend."""
    envs = {}
    for name in APP_SERVICES:
        env = container_env(tmp_path, SECRET_KEY="x" * 50, ENCRYPTION_KEY="A" * 43 + "=")
        env.update({key: interpolate(str(value)) for key, value in services[name]["environment"].items()})
        envs[name] = env
    out = subprocess.run(
        ["python", "-c", PROBE],
        input=json.dumps(envs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=envs["web"],
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    for name, (bus, engine, redis_url, dispatch, _workers, migrate, hosts, broker) in found.items():
        assert bus == "redis-streams" and engine.endswith("postgresql"), name
        assert redis_url == broker == "redis://redis:6379/0", name
        assert set(dispatch) <= set(BACKENDS), f"{name}: unknown dispatch service in {dispatch}"
        assert migrate is False and {"127.0.0.1", "web"} <= set(hosts), name
    assert found["web"][4] == 2
    assert found["worker"][3] == found["beat"][3] == ["file", "usage"]


def test_healthchecks_cover_every_dependency_that_waits_for_health(services):
    web_check = services["web"]["healthcheck"]["test"]
    assert web_check[-1] == "/app/docker/healthcheck.py" and "/ready" in (DOCKER / "healthcheck.py").read_text()
    assert "inspect ping" in services["worker"]["healthcheck"]["test"][1]
    assert services["beat"]["healthcheck"] == {"disable": True}
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            target = services[dependency]
            if rule["condition"] == "service_healthy":
                assert not target.get("healthcheck", {}).get("disable") and target["healthcheck"]["test"], dependency
            if rule["condition"] == "service_completed_successfully":
                assert dependency == "migrate"
            assert not target.get("profiles") or target.get("profiles") == service.get("profiles"), name


def test_redis_keeps_the_stream_with_append_only_persistence(services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in services["redis"]["volumes"]


def test_volumes_and_bind_mounts_exist(compose, services):
    declared = set(compose["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_prometheus_scrapes_the_web_service_at_the_metrics_path(settings):
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["web:8080"]
    assert job["metrics_path"] == settings.METRICS_PATH + "/prometheus"
    assert resolve(job["metrics_path"])  # a URL the application serves


def test_grafana_is_provisioned_with_the_prometheus_source_and_the_dashboard(services):
    datasources = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    providers = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/llm-proxy.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert f"./grafana/llm-proxy.json:{path}/llm-proxy.json:ro" in services["grafana"]["volumes"]
    dashboard = json.loads((DOCKER / "grafana/llm-proxy.json").read_text())
    assert dashboard["panels"], "the dashboard has no panels"
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in [panel, *panel.get("targets", [])]
        if isinstance(target.get("datasource"), dict) and "uid" in target["datasource"]
    }
    assert uids <= {source["uid"], "${datasource}"}, uids
    if "${datasource}" in uids:  # a data-source variable: Grafana picks the default Prometheus, provisioned above
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus" and source["isDefault"]


def test_clients_reach_the_web_service_only_through_nginx(services):
    assert "ports" not in services["web"]  # whichever WEB_SERVER runs, it is not published directly
    nginx = services["nginx"]
    assert nginx["ports"] == ["${LLM_PROXY_PORT:-8080}:8080"]
    assert nginx["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert "./nginx.conf.template:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    assert (DOCKER / "nginx.conf.template").is_file()


def test_nginx_bounds_bodies_with_max_request_size_and_streams_answers(services, settings):
    template = (DOCKER / "nginx.conf.template").read_text()
    assert re.search(r"^\s*client_max_body_size \$\{MAX_REQUEST_SIZE\};", template, flags=re.M)
    # The image's envsubst replaces only variables set in the container: MAX_REQUEST_SIZE, with the setting's default.
    assert set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", template)) == {"MAX_REQUEST_SIZE"}
    assert interpolate(services["nginx"]["environment"]["MAX_REQUEST_SIZE"]) == str(settings.MAX_REQUEST_SIZE)
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "keepalive 32;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout 3600s;",
        "server web:8080;",
    ):
        assert directive in template, directive
