"""The compose stack's proxy, ``deploy/nginx.conf``, run by Debian's nginx in front of two web
nodes: only the addresses differ from the file compose mounts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from app.file_limit import RESERVED_FILES, fit_file_limit
from tests.e2e.test_engineio_sockets import RawSocket
from tests.e2e.test_resume import Recorder
from tests.support import ROOT, Process, free_port, require_tool, wait_for

pytestmark = pytest.mark.e2e

# More WebSockets than nginx's stock configuration (1,024 connections per worker process, two
# per proxied WebSocket) lets through on two cores.
PROXIED_SOCKETS = 1_100


def proxy_config(conf: str, nodes: list[int], port: int, work_dir: Path) -> str:
    """``deploy/nginx.conf`` with the nodes' and the proxy's loopback addresses, and its files in ``work_dir``."""
    replacements = {
        "server web:5000;": " ".join(f"server 127.0.0.1:{node};" for node in nodes),
        "listen 80;": f"listen 127.0.0.1:{port};",
        # Where the image's nginx writes its logs and buffers, a developer may not.
        "http {": f"http {{\n    access_log off;\n    client_body_temp_path {work_dir}/body;\n"
        f"    proxy_temp_path {work_dir}/proxy;",
    }
    for old, new in replacements.items():
        assert conf.count(old) == 1, old
        conf = conf.replace(old, new)
    return conf


@pytest.fixture
def proxy(live_stack, tmp_path: Path) -> Iterator[str]:
    nginx = require_tool(shutil.which("nginx") or "/usr/sbin/nginx", "apt-get install nginx-light")
    port_b = free_port()
    live_stack.start_web("web-b", port=port_b)
    port = free_port()
    work_dir = tmp_path / "nginx"
    work_dir.mkdir()
    conf = proxy_config(
        (ROOT / "deploy" / "nginx.conf").read_text(),
        [urlsplit(live_stack.base_url).port, port_b],
        port,
        work_dir,
    )
    (work_dir / "nginx.conf").write_text(conf)
    directives = f"daemon off; pid {work_dir}/nginx.pid; error_log stderr;"
    proc = Process(
        "nginx",
        [nginx, "-p", str(work_dir), "-c", str(work_dir / "nginx.conf"), "-g", directives],
        dict(os.environ),
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or not proc.alive(), 15, "nginx to proxy /healthz")
        assert proc.alive(), proc.log()
        yield url
    finally:
        proc.stop()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_through_the_proxy_a_user_starts_a_task_and_sees_it_to_the_end(live_stack, proxy, transport):
    token = live_stack.create_user("alice")
    client = Recorder(proxy, {"token": token}, transports=[transport])
    try:
        assert client.sio.transport() == transport
        r = requests.post(
            f"{proxy}/api/tasks",
            json={"name": "example_long_task", "params": {"steps": 3, "delay": 0.05}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        got = client.until(lambda name, data: name == "task_progress" and data["status"] == "succeeded")
    finally:
        client.sio.disconnect()
    stored = [data for name, data in got if name == "task_progress" and not data["volatile"]]
    statuses = [d["status"] for d in stored]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded", statuses
    seqs = [d["seq"] for d in stored]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "every stored event once, in order"


def test_the_proxy_holds_more_websockets_than_nginx_stock_limit(live_stack, proxy):
    if fit_file_limit(PROXIED_SOCKETS + RESERVED_FILES) < PROXIED_SOCKETS + RESERVED_FILES:
        pytest.skip(f"this process may not open {PROXIED_SOCKETS} sockets (ulimit -Hn)")
    token = live_stack.create_user("alice")
    sockets: list[RawSocket] = []
    try:
        # One user with many tabs: each socket is opened, authenticated and welcomed.
        for _ in range(PROXIED_SOCKETS):
            sockets.append(RawSocket(proxy, token))
        live_stack.start_task(token, "example_long_task", steps=1, delay=0)
        # Every socket still open gets the task's events: the last one opened, the first.
        for raw in (sockets[-1], sockets[0]):
            wait_for(lambda raw=raw: _heard_success(raw), 30, "the task's final event on a proxied socket")
    finally:
        for raw in sockets:
            raw.close()


def _heard_success(raw: RawSocket) -> bool:
    raw.listen(0.2, answer_pings=True)
    return any('"status":"succeeded"' in p.replace(" ", "") for p in raw.packets)
