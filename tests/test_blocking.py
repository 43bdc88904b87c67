"""app/blocking.py in a monkey-patched process: the hub keeps running while a call waits.

Each case runs a short script in a fresh ``python`` that monkey patches first, as ``run.py``
does (patching cannot be undone inside the test process). A green thread ticks every 10 ms
while the script's main green thread waits: on a slow password hash, on the lock another
process holds for a second; the longest gap between ticks is what the hub was held. The same script
checks that the dialect still works through the wrapper (the connect-time pragmas, AUTOCOMMIT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT

HOLDER = textwrap.dedent(
    """
    import sys, time
    url = sys.argv[1]
    if url.startswith("sqlite"):
        import sqlite3
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        conn.execute("SELECT id FROM users FOR UPDATE")
    print("locked", flush=True)
    time.sleep(1.0)
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    mode, url, holder_script = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "eventlet":
        import eventlet
        eventlet.monkey_patch()
        spawn, sleep = eventlet.spawn, eventlet.sleep
    else:
        from gevent import monkey
        monkey.patch_all()
        import gevent
        spawn, sleep = gevent.spawn, gevent.sleep

    import subprocess
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash
    import config as settings
    from app import blocking, create_app
    from app.extensions import db
    from app.models import User

    app = create_app({**settings.from_env({"DATABASE_URL": url, "ASYNC_MODE": mode}), "TESTING": True})
    ticks = []
    def ticker():
        while True:
            ticks.append(time.monotonic())
            sleep(0.01)

    def longest_gap(start, end):
        inside = [start] + [t for t in ticks if start <= t <= end] + [end]
        return max(b - a for a, b in zip(inside, inside[1:]))

    out = {"mode": blocking.mode()}
    with app.app_context():
        db.create_all()
        user = User(username="u", email="u@example.com")
        user.set_password("secret")
        db.session.add(user)
        db.session.commit()
        out["password_ok"] = user.check_password("secret") and not user.check_password("wrong")
        raw = db.session.connection().connection.dbapi_connection
        out["dbapi"] = type(raw).__name__
        if db.engine.dialect.name == "sqlite":
            out["journal_mode"] = db.session.execute(sa.text("PRAGMA journal_mode")).scalar()
            out["foreign_keys"] = db.session.execute(sa.text("PRAGMA foreign_keys")).scalar()
        db.session.rollback()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("UPDATE users SET last_seq = 7"))
        with db.engine.connect() as conn:
            out["autocommitted"] = conn.execute(sa.text("SELECT last_seq FROM users")).scalar()

        # A hash that takes about a second (the default one takes a tenth: too close to a busy
        # machine's scheduling gaps), checked with a wrong password while the ticker runs.
        user.password_hash = generate_password_hash("slow", method="pbkdf2:sha256:4000000")
        spawn(ticker)
        sleep(0.05)
        start = time.monotonic()
        out["slow_hash_refused"] = not user.check_password("wrong")
        out["hash_seconds"] = time.monotonic() - start
        out["hash_gap"] = longest_gap(start, time.monotonic())

        # Another process holds the lock its database has for a second, then exits.
        holder = subprocess.Popen([sys.executable, holder_script, url], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        db.session.execute(sa.text("UPDATE users SET last_seq = last_seq + 1 WHERE id = :id"), {"id": user.id})
        db.session.commit()
        out["waited"] = time.monotonic() - start
        out["lock_gap"] = longest_gap(start, time.monotonic())
        holder.wait()
    print(json.dumps(out))
    """
)


def _run(mode: str, database_url: str, tmp_path: Path) -> dict:
    script, holder = tmp_path / "probe.py", tmp_path / "holder.py"
    script.write_text(SCRIPT)
    holder.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), mode, database_url, str(holder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_the_hub_keeps_running_while_a_hash_or_a_database_lock_is_waited_for(mode, database_url, tmp_path):
    out = _run(mode, database_url, tmp_path)

    assert out["mode"] == mode
    # Idle, the ticker misses nothing; a hub held by the wait misses all of it.
    assert out["hash_seconds"] >= 0.5, f"the slow hash was slow enough to tell: {out}"
    assert out["hash_gap"] < out["hash_seconds"] / 2, out
    assert out["waited"] >= 0.9, f"the update waited for the other process's lock: {out}"
    assert out["lock_gap"] < 0.5, out

    assert out["password_ok"] is True and out["slow_hash_refused"] is True
    assert out["autocommitted"] == 7, "AUTOCOMMIT goes through the wrapped connection"
    if database_url.startswith("sqlite"):
        assert out["dbapi"] == "ThreadedConnection"
        assert (out["journal_mode"], out["foreign_keys"]) == ("wal", 1), "the connect-time pragmas ran"


def test_a_process_that_is_not_monkey_patched_calls_directly(make_app):
    from app import blocking
    from app.extensions import db

    app = make_app()
    with app.app_context():
        raw = db.session.connection().connection.dbapi_connection
        assert blocking.mode() == "threading"
        assert type(raw).__module__ in ("sqlite3", "psycopg"), type(raw)
        assert blocking.call(lambda: os.getpid()) == os.getpid()
        db.session.rollback()
