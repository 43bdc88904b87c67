"""Starting tasks: the per-user limits hold when one user starts several at once."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import Task, User
from app.tasks.launcher import TaskLimit, TooManyTasks, start_task
from tests.conftest import make_user

STARTS = 6


def _start_at_once(app: Flask, user_id: int, names: list[str]) -> list[str]:
    barrier = threading.Barrier(len(names))
    outcomes: list[str] = []

    def start(name: str) -> None:
        with app.app_context():
            user = db.session.get(User, user_id)
            barrier.wait()
            try:
                start_task(user, name, {})
                outcomes.append("started")
            except TaskLimit as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _tasks_of(app: Flask, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Task).where(Task.user_id == user_id))


def test_concurrent_starts_of_one_type_start_it_once(app):
    with app.app_context():
        user_id = make_user("alice").id
    outcomes = _start_at_once(app, user_id, ["export_posts"] * STARTS)
    assert sorted(outcomes) == ["TaskLimit"] * (STARTS - 1) + ["started"]
    assert _tasks_of(app, user_id) == 1


@pytest.mark.parametrize("cap", [2])
def test_concurrent_starts_of_several_types_stop_at_the_cap(make_app, cap):
    app = make_app(MAX_ACTIVE_TASKS_PER_USER=cap)
    with app.app_context():
        db.create_all()
        user_id = make_user("alice").id
    names = ["export_posts", "reindex_search", "send_batch_emails", "example_long_task"]
    outcomes = _start_at_once(app, user_id, names)
    assert sorted(outcomes) == sorted(["started"] * cap + [TooManyTasks.__name__] * (len(names) - cap))
    assert _tasks_of(app, user_id) == cap
