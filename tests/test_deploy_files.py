"""The compose file and Dockerfile are checked against a real compose implementation and the code."""

import re
import subprocess

import pytest
import yaml

from tests.support import ROOT, require_tool


@pytest.fixture(scope="module")
def compose() -> dict:
    binary = require_tool("docker-compose", "apt-get install docker-compose")
    out = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_has_web_worker_and_redis(compose):
    services = compose["services"]
    assert {"web", "worker", "redis"} <= set(services)
    for name in ("web", "worker", "redis"):
        assert "healthcheck" in services[name] or name == "worker"
    assert services["worker"]["command"] in ("python -m worker", ["python", "-m", "worker"])
    assert services["web"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Redis is reached by service name only, never published on the host.
    assert "ports" not in services["redis"]


def test_compose_commands_start_modules_that_exist(compose):
    for service in ("web", "worker"):
        command = compose["services"][service]["command"]
        command = command if isinstance(command, str) else " ".join(command)
        for module in re.findall(r"python -m (\S+)", command):
            assert (ROOT / module / "__main__.py").exists(), module
        for script in re.findall(r"python (\S+\.py)", command):
            assert (ROOT / script).exists(), script


def test_dockerfile_copies_what_exists_and_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", text, re.M), "base image pinned to a full version"
    assert re.search(r"^USER app$", text, re.M)
    assert '"run.py"' in text
