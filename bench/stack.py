"""The system under test: a private Redis, a fresh database, and web and worker processes.

Web nodes are ``python run.py`` and workers ``python -m worker``, started exactly as the
end-to-end tests and the deployment start them, only on free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from app.broker import Keys
from bench.support import PYTHON, ROOT, Child, start_redis
from tests.support import free_port, fresh_database, wait_for

ASYNC_MODES = ("eventlet", "gevent", "threading")
# Every benchmark user's password (bench0, bench1, ...).
PASSWORD = "bench password"  # noqa: S105 -- a throwaway database's users


@dataclass
class Web:
    child: Child
    url: str
    mode: str

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass
class Stack:
    """Everything a run starts, stopped by PID in ``close`` whatever happened."""

    work_dir: Path
    database_url: str
    redis_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    # user_id -> raw API token, for every benchmark user created so far (ids ascending).
    tokens: dict[int, str] = field(default_factory=dict)
    _app: Any = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, database_url: str | None) -> Iterator[Stack]:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            work_dir = Path(tmp)
            stack = cls(work_dir, fresh_database(database_url, work_dir))
            try:
                stack._start()
                yield stack
            finally:
                stack.close()

    def _start(self) -> None:
        redis, self.redis_url = start_redis(self.work_dir)
        self.children.append(redis)
        unique = f"bench-{uuid.uuid4().hex[:10]}"
        self.env = {
            **os.environ,
            "APP_ENV": "development",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TASK_QUEUE": unique,
            "SECRET_KEY": "bench-" + unique,
            "PYTHONUNBUFFERED": "1",
            "FLASK_APP": "app",
            "RESULTS_DIR": str(self.work_dir / "results"),
            "PYTHONWARNINGS": "ignore",
        }
        subprocess.run(
            [PYTHON, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=self.env, check=True, capture_output=True
        )

    @property
    def channel(self) -> str:
        return Keys.of(self.env).channel

    @property
    def queue(self) -> str:
        return self.env["TASK_QUEUE"]

    def child(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        commands: bool = False,
    ) -> Child:
        proc = Child(name, args, {**self.env, **(env or {})}, self.work_dir, commands=commands)
        self.children.append(proc)
        return proc

    def stop(self, proc: Child | Web) -> None:
        child = proc.child if isinstance(proc, Web) else proc
        child.stop()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    def start_web(
        self,
        mode: str = "eventlet",
        *,
        script: str = "run.py",
        name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Web:
        port = free_port()
        env = {**(env or {}), "ASYNC_MODE": mode, "HOST": "127.0.0.1", "PORT": str(port)}
        proc = self.child(name or f"web-{mode}-{port}", [PYTHON, script], env=env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(url) or not proc.alive(), 60, f"{proc.name} to answer /healthz")
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log()}")
        return Web(proc, url, mode)

    def start_workers(self, count: int, queue: str | None = None) -> list[Child]:
        from redis import Redis
        from rq import Worker

        queue = queue or self.queue
        redis = Redis.from_url(self.redis_url)
        before = {w.name for w in Worker.all(connection=redis)}
        procs = [
            self.child(f"worker-{queue}-{i}", [PYTHON, "-m", "worker"], env={"TASK_QUEUE": queue})
            for i in range(count)
        ]

        def registered() -> bool:
            mine = [w for w in Worker.all(connection=redis) if w.name not in before]
            if any(not p.alive() for p in procs):
                raise RuntimeError("a worker exited:\n" + "\n".join(p.log() for p in procs))
            return len([w for w in mine if queue in w.queue_names()]) >= count

        wait_for(registered, 60, f"{count} workers on {queue}")
        redis.close()
        return procs

    # The database side, from this process: users and tokens straight into the tables.
    def app(self) -> Any:
        if self._app is None:
            import config as settings
            from app import create_app

            # The threading mode keeps eventlet out of this orchestrating process.
            self._app = create_app(settings.from_env({**self.env, "ASYNC_MODE": "threading"}))
        return self._app

    def ensure_users(self, count: int) -> list[tuple[int, str]]:
        """At least ``count`` users with a live API token each; the first ``count`` are returned."""
        missing = count - len(self.tokens)
        if missing > 0:
            self._create_users(missing)
        return list(self.tokens.items())[:count]

    def _create_users(self, count: int) -> None:
        from werkzeug.security import generate_password_hash

        from app.extensions import db
        from app.models import User

        # One real hash shared by all: hashing is deliberately slow and no section logs in.
        password_hash = generate_password_hash(PASSWORD)
        start = len(self.tokens)
        with self.app().app_context():
            for chunk in range(start, start + count, 2000):
                users = [
                    User(username=f"bench{i}", email=f"bench{i}@example.com", password_hash=password_hash)
                    for i in range(chunk, min(chunk + 2000, start + count))
                ]
                db.session.add_all(users)
                db.session.flush()
                raws = [user.issue_token(3600)[0] for user in users]
                db.session.commit()
                self.tokens.update((user.id, raw) for user, raw in zip(users, raws, strict=True))

    def max_db_connections(self) -> int | None:
        """PostgreSQL's connection limit (each running job holds a connection); None for SQLite."""
        if not self.database_url.startswith("postgresql"):
            return None
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SHOW max_connections")).scalar_one())
        finally:
            engine.dispose()

    def last_seqs(self, user_ids: Sequence[int]) -> dict[int, int]:
        """Each user's newest seq: events pushed to them must come after it."""
        from app.extensions import db
        from app.models import User

        with self.app().app_context():
            rows = db.session.execute(sa.select(User.id, User.last_seq).where(User.id.in_(list(user_ids))))
            seqs = {uid: seq for uid, seq in rows}
            db.session.remove()
        return seqs

    def close(self) -> None:
        # Children first (web and workers hold Redis and the database), Redis last.
        for proc in reversed(self.children):
            proc.stop()
        self.children.clear()
        if self._app is not None:
            from app import stop_background_services
            from app.extensions import db

            stop_background_services(self._app)
            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False
