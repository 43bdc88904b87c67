"""The stored login: where it lives, and that only its owner can read it."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli import credentials as store
from cli.credentials import Credentials
from cli.errors import UNAVAILABLE, CliError

LOGIN = Credentials("http://127.0.0.1:5000", "alice", "secret-token", "2099-01-01T00:00:00+00:00")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_the_path_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.credentials_path({"XDG_CONFIG_HOME": "/x/conf"}) == Path(
        "/x/conf/microblog-tasks/credentials.json"
    )
    default = tmp_path / "home" / ".config" / "microblog-tasks" / "credentials.json"
    assert store.credentials_path({}) == default
    assert store.credentials_path({"XDG_CONFIG_HOME": "relative/conf"}) == default, (
        "the spec ignores relative"
    )
    assert store.credentials_path({"XDG_CONFIG_HOME": ""}) == default


def test_saved_with_owner_only_modes_whatever_the_umask(tmp_path, permissive_umask):
    path = tmp_path / "conf" / "microblog-tasks" / "credentials.json"
    store.save(path, LOGIN)
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
    assert store.load(path) == LOGIN
    assert json.loads(path.read_text()) == {
        "url": LOGIN.url,
        "username": "alice",
        "token": "secret-token",
        "expires_at": LOGIN.expires_at,
    }


def test_an_existing_open_directory_is_closed_and_a_new_login_replaces_the_old(tmp_path, permissive_umask):
    path = tmp_path / "microblog-tasks" / "credentials.json"
    path.parent.mkdir(mode=0o755)
    path.write_text("{}")
    path.chmod(0o644)
    store.save(path, LOGIN)
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"], "no temporary file left behind"


def test_load_and_delete(tmp_path):
    path = tmp_path / "credentials.json"
    assert store.load(path) is None
    store.delete(path)
    path.write_text("not json")
    with pytest.raises(CliError) as info:
        store.load(path)
    assert info.value.code == UNAVAILABLE
    path.write_text(json.dumps({"url": "x", "token": 5}))
    with pytest.raises(CliError):
        store.load(path)
    store.delete(path)
    assert not path.exists()


def test_expiry():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert Credentials("u", "a", "t", (now - timedelta(seconds=1)).isoformat()).expired(now)
    assert not Credentials("u", "a", "t", (now + timedelta(hours=1)).isoformat()).expired(now)
    assert Credentials("u", "a", "t", "2029-12-31T23:00:00").expired(now), "naive times are UTC"
    assert not Credentials("u", "a", "t", "someday").expired(now), "the server decides"
