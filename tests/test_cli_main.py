"""The command line without a server: arguments, the stored login's guards, exit codes."""

from __future__ import annotations

import pytest

from cli import credentials as store
from cli.credentials import Credentials
from cli.main import build_parser, main
from tests.support import free_port


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("MICROBLOG_PASSWORD", raising=False)
    return tmp_path


@pytest.fixture
def logged_in(config_home):
    # Nothing listens there: a command that reaches the network says so (exit 4).
    url = f"http://127.0.0.1:{free_port()}"
    store.save(store.credentials_path(), Credentials(url, "alice", "tok", "2099-01-01T00:00:00+00:00"))
    return url


def test_json_and_url_go_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--json", "tasks"]).json is True
    assert parser.parse_args(["tasks", "--json"]).json is True
    args = parser.parse_args(["tasks"])
    assert args.json is False and args.url is None
    assert parser.parse_args(["--url", "http://h:1/", "tasks"]).url == "http://h:1"
    assert parser.parse_args(["tasks", "--url", "https://h"]).url == "https://h"
    args = parser.parse_args(["start", "example_long_task", "steps=5", "delay=0.1", "--watch", "--json"])
    assert (args.name, args.params, args.watch, args.json) == (
        "example_long_task",
        ["steps=5", "delay=0.1"],
        True,
        True,
    )


@pytest.mark.parametrize("argv", [["--url", "ftp://h", "tasks"], ["--url", "h:5000", "tasks"], [], ["nope"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_commands_need_a_login(config_home, capsys):
    assert main(["tasks"]) == 4
    assert "not logged in" in capsys.readouterr().err


def test_logout_without_a_login_is_done(config_home, capsys):
    assert main(["logout"]) == 0


def test_the_token_is_only_sent_where_it_was_issued(logged_in, capsys):
    assert main(["--url", "http://elsewhere.example:5000", "tasks"]) == 4
    err = capsys.readouterr().err
    assert f"logged in to {logged_in}" in err and "elsewhere" in err


def test_an_expired_login_is_refused_before_asking(config_home, capsys):
    store.save(
        store.credentials_path(), Credentials("http://h:1", "alice", "tok", "2000-01-01T00:00:00+00:00")
    )
    assert main(["types"]) == 4
    assert "expired" in capsys.readouterr().err


def test_a_server_that_does_not_answer_is_exit_4(logged_in, capsys):
    assert main(["tasks"]) == 4
    assert "cannot reach" in capsys.readouterr().err


def test_malformed_params_are_refused_before_the_network(logged_in, capsys):
    assert main(["start", "example_long_task", "steps"]) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_login_without_a_terminal_needs_the_password_variable(config_home, capsys):
    assert main(["login", "--username", "alice"]) == 2
    assert "MICROBLOG_PASSWORD" in capsys.readouterr().err
