"""``microblog-tasks``: log in, start tasks and watch their progress live."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from cli import credentials as store
from cli.api import Api, ApiError, Unreachable
from cli.credentials import Credentials
from cli.errors import INTERRUPTED, OK, UNAVAILABLE, USAGE, CliError
from cli.params import parse_value, split_assignments
from cli.render import clean, format_duration, table
from cli.watch import Watcher, make_output

DEFAULT_URL = "http://127.0.0.1:5000"
PASSWORD_ENV = "MICROBLOG_PASSWORD"  # noqa: S105 -- the variable's name, not a password
EXIT_CODES = """\
exit codes:
  0  done; the watched task succeeded; Ctrl+C on `watch` without a task id
  1  the watched task failed
  2  usage error, or the server refused the request (400, 404, 409, 429)
  3  the watched task was cancelled
  4  cannot connect, not logged in, token rejected, session ended, server error (5xx)
  130  interrupted (Ctrl+C) while waiting for one task
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"microblog-tasks: {exc.message}", file=sys.stderr)
        return exc.code
    except Unreachable as exc:
        print(f"microblog-tasks: {exc}; is the server running?", file=sys.stderr)
        return UNAVAILABLE
    except ApiError as exc:
        return _refused(exc)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microblog-tasks",
        description="Start background tasks and watch their progress live.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_options(url=None, json=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        # Given after the command too; SUPPRESS keeps a value given before it.
        sub = commands.add_parser(name, help=help, description=help, parents=[_options()])
        sub.set_defaults(handler=handler)
        return sub

    login = command("login", cmd_login, f"get a token (password from ${PASSWORD_ENV}, else prompted)")
    login.add_argument("--username", help="default: the stored login's, else prompted")
    command("logout", cmd_logout, "revoke the token and forget it")
    command("types", cmd_types, "list the task types and their parameters")
    start = command("start", cmd_start, "start a task, print its id")
    start.add_argument("name", help="task type, see `types`")
    start.add_argument("params", nargs="*", metavar="key=value", help="a parameter (JSON value, or text)")
    start.add_argument("--watch", action="store_true", help="then watch it until it ends")
    command("tasks", cmd_tasks, "list your recent tasks")
    watch = command("watch", cmd_watch, "show live progress; with TASK_ID, until that task ends")
    watch.add_argument("task_id", nargs="?", metavar="TASK_ID")
    return parser


def cmd_login(args: argparse.Namespace) -> int:
    path = store.credentials_path()
    stored = store.load(path)
    url = args.url or (stored.url if stored else DEFAULT_URL)
    known = stored.username if stored and stored.url == url else None
    username = args.username or _ask_username(known)
    password = os.environ.get(PASSWORD_ENV) or _ask_password()
    try:
        answer = Api(url).request("POST", "/api/tokens", basic=(username, password))
    except ApiError as exc:
        if exc.status == 401:
            raise CliError(UNAVAILABLE, f"login refused: wrong username or password for {url}") from None
        raise
    credentials = Credentials(url, username, answer["token"], answer["expires_at"])
    store.save(path, credentials)
    if args.json:
        _print_json({"url": url, "username": username, "expires_at": credentials.expires_at})
    else:
        print(f"Logged in to {url} as {username}; the token expires at {clean(credentials.expires_at)}.")
    return OK


def cmd_logout(args: argparse.Namespace) -> int:
    path = store.credentials_path()
    if store.load(path) is None:
        print("Not logged in.", file=sys.stderr)
        return OK
    api = _api(args)
    try:
        api.delete("/api/tokens")
    except ApiError as exc:
        if exc.status != 401:  # 401: the token no longer works anyway
            raise
    except Unreachable as exc:
        raise CliError(UNAVAILABLE, f"{exc}; the token was not revoked and is kept: try again") from None
    store.delete(path)
    print("Logged out.", file=sys.stderr)
    return OK


def cmd_types(args: argparse.Namespace) -> int:
    types = _api(args).get("/api/task-types")
    if args.json:
        _print_json(types)
        return OK
    for kind in types:
        print(f"{clean(kind['name'])}: {clean(kind.get('description') or kind.get('title', ''))}")
        rows = [
            [
                f"  {p['name']}",
                p["type"],
                f"{p['minimum']}..{p['maximum']}" + (" items" if p["type"] == "array" else ""),
                f"default {json.dumps(p['default'])}",
                p.get("help", ""),
            ]
            for p in kind.get("params", [])
        ]
        for line in table(rows) or ["  (no parameters)"]:
            print(line)
    return OK


def cmd_start(args: argparse.Namespace) -> int:
    try:
        pairs = split_assignments(args.params)
    except ValueError as exc:
        raise CliError(USAGE, str(exc)) from None
    api = _api(args)
    kinds: dict[str, str] = {}
    if pairs:
        # The parameter types say which values are lists ("a,b" is a list of names there).
        for kind in api.get("/api/task-types"):
            if kind.get("name") == args.name:
                kinds = {p["name"]: p["type"] for p in kind.get("params", [])}
    params = {key: parse_value(raw, kinds.get(key)) for key, raw in pairs}
    task = api.post("/api/tasks", {"name": args.name, "params": params})
    if args.watch:
        # With --json, stdout carries only the event stream.
        print(clean(task["id"]), file=sys.stderr if args.json else sys.stdout, flush=True)
        return _watch(args, api, task["id"], task.get("seq"))
    if args.json:
        _print_json(task)
    else:
        print(clean(task["id"]))
    return OK


def cmd_tasks(args: argparse.Namespace) -> int:
    tasks = _api(args).get("/api/tasks")
    if args.json:
        _print_json(tasks)
        return OK
    rows = [["ID", "NAME", "STATUS", "PROGRESS", "DURATION", "CREATED", "MESSAGE"]]
    for t in tasks:
        message = t.get("error") if t.get("status") == "failed" and t.get("error") else t.get("message")
        rows.append(
            [
                t["id"],
                t["name"],
                t["status"],
                f"{t.get('progress', 0)}%",
                format_duration(t.get("duration")),
                (t.get("created_at") or "")[:19].replace("T", " "),
                message or "",
            ]
        )
    for line in table(rows) if tasks else ["No tasks yet."]:
        print(line)
    return OK


def cmd_watch(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.task_id is None:
        return _watch(args, api, None, None)
    try:
        task = api.get(f"/api/tasks/{quote(args.task_id, safe='')}")
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(USAGE, f"no task {args.task_id!r}") from None
        raise
    return _watch(args, api, task["id"], task.get("seq"))


def _watch(args: argparse.Namespace, api: Api, task_id: str | None, task_seq: Any) -> int:
    # Resuming just before the task's latest event replays that event first: the current state, or
    # the outcome of a task that has already ended, with no window in which it could end unseen.
    last_seq = task_seq - 1 if isinstance(task_seq, int) and task_seq > 0 else None
    watcher = Watcher(api, make_output(args.json), task_id=task_id, last_seq=last_seq)
    try:
        code = watcher.run()
    except KeyboardInterrupt:
        return OK if task_id is None else INTERRUPTED
    final = watcher.final
    if final is not None and not args.json:
        if final["status"] == "succeeded" and final.get("result") is not None:
            print(f"result: {json.dumps(final['result'])}")
        elif final["status"] == "failed":
            print(f"task failed: {clean(final.get('error') or final.get('message') or '')}", file=sys.stderr)
        elif final["status"] == "cancelled":
            print("task cancelled", file=sys.stderr)
    return code


def _options(**defaults: Any) -> argparse.ArgumentParser:
    # A new parser each time: parents share their actions, and a default set on one would change all.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--url",
        type=_url,
        default=defaults.get("url", argparse.SUPPRESS),
        help=f"server (default: the login's, else {DEFAULT_URL})",
    )
    options.add_argument(
        "--json",
        action="store_true",
        default=defaults.get("json", argparse.SUPPRESS),
        help="machine-readable output",
    )
    return options


def _api(args: argparse.Namespace) -> Api:
    """The API as the stored login; refuses to send its token anywhere but where it was issued."""
    credentials = store.load(store.credentials_path())
    if credentials is None:
        raise CliError(UNAVAILABLE, "not logged in; run `microblog-tasks login`")
    if args.url and args.url != credentials.url:
        raise CliError(
            UNAVAILABLE,
            f"logged in to {credentials.url}, not {args.url}; run `microblog-tasks login --url {args.url}`",
        )
    if credentials.expired():
        raise CliError(
            UNAVAILABLE, f"the login expired at {credentials.expires_at}; run `microblog-tasks login`"
        )
    return Api(credentials.url, credentials.token)


def _refused(exc: ApiError) -> int:
    if exc.status == 401:
        print(f"microblog-tasks: {exc.message}; run `microblog-tasks login`", file=sys.stderr)
        return UNAVAILABLE
    detail = ""
    if isinstance(exc.body, dict) and exc.body.get("running_task_id"):
        detail = f" (running: {clean(exc.body['running_task_id'])})"
    print(f"microblog-tasks: {clean(exc.message)}{detail}", file=sys.stderr)
    return UNAVAILABLE if exc.status >= 500 else USAGE


def _ask_username(default: str | None) -> str:
    if not sys.stdin.isatty():
        if default:
            return default
        raise CliError(USAGE, "--username is required when not in a terminal")
    answer = input(f"Username [{default}]: " if default else "Username: ").strip() or default
    if not answer:
        raise CliError(USAGE, "a username is required")
    return answer


def _ask_password() -> str:
    if not sys.stdin.isatty():
        raise CliError(USAGE, f"no password: set {PASSWORD_ENV} or run in a terminal")
    password = getpass.getpass("Password: ")
    if not password:
        raise CliError(USAGE, "a password is required")
    return password


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
