"""The compose stack and Dockerfile, checked by a real compose implementation and against the code."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

import config as settings
from app.file_limit import files_wanted
from tests.support import ROOT, require_tool

SECRETS = {"SECRET_KEY": "s" * 64, "POSTGRES_PASSWORD": "pg-secret", "REDIS_PASSWORD": "redis-secret"}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = require_tool("docker-compose", "apt-get install docker-compose")
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    out = compose_config(SECRETS)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_every_secret_is_required(missing):
    out = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    assert out.returncode != 0
    assert f"set {missing}" in out.stderr


def test_the_stack_has_its_services(compose):
    assert set(compose["services"]) == {"migrate", "web", "worker", "proxy", "redis", "db"}


def test_long_running_services_have_health_checks_and_wait_for_health(compose):
    services = compose["services"]
    for name in ("web", "worker", "proxy", "redis", "db"):
        assert "healthcheck" in services[name], name
    assert services["web"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_app_services_run_in_production_against_postgres_and_a_password_protected_redis(compose):
    for name in ("migrate", "web", "worker"):
        env = compose["services"][name]["environment"]
        assert env["APP_ENV"] == "production"
        assert env["SECRET_KEY"] == SECRETS["SECRET_KEY"]
        assert env["DATABASE_URL"].startswith("postgresql://microblog:pg-secret@db:5432/")
        assert env["REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    redis = compose["services"]["redis"]
    assert "--requirepass" in command_of(redis)
    assert "ports" not in redis and "ports" not in compose["services"]["db"]
    assert compose["services"]["db"]["image"].startswith("postgres:16")
    assert any("pgdata" in str(v) for v in compose["services"]["db"]["volumes"])


def test_web_nodes_may_open_a_file_per_socket(compose):
    nofile = compose["services"]["web"]["ulimits"]["nofile"]
    soft = nofile["soft"] if isinstance(nofile, dict) else nofile
    assert int(soft) >= files_wanted(settings.from_env({})["MAX_CONNECTIONS"])


def test_migrations_run_once_before_the_app(compose):
    assert command_of(compose["services"]["migrate"]) == "flask db upgrade"
    assert (ROOT / "migrations" / "versions").is_dir()


def test_commands_start_modules_that_exist(compose):
    for name in ("web", "worker"):
        service = compose["services"][name]
        text = command_of(service) + " " + " ".join(service["healthcheck"]["test"])
        for module in re.findall(r"-m ([\w.]+)", text):
            path = ROOT.joinpath(*module.split("."))
            assert (path / "__main__.py").exists() or path.with_suffix(".py").exists(), module
        for script in re.findall(r"python (\S+\.py)", text):
            assert (ROOT / script).exists(), script


def test_the_proxy_is_sticky_and_upgrades_websockets(compose):
    proxy = compose["services"]["proxy"]
    mount = next(v for v in proxy["volumes"] if "nginx.conf" in str(v))
    assert "deploy/nginx.conf" in str(mount)
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"upstream web \{[^}]*ip_hash;[^}]*server web:5000;", conf, re.S)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "proxy_http_version 1.1;" in conf


def test_dockerfile_copies_what_exists_and_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", text, re.M), "base image pinned to a full version"
    assert re.search(r"^USER app$", text, re.M)
    assert "FLASK_APP=app" in text


def test_the_env_example_names_every_required_secret():
    example = (ROOT / ".env.example").read_text()
    for name in SECRETS:
        assert re.search(rf"^{name}=$", example, re.M), name
