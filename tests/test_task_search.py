"""reindex_search in a real RQ work horse against real Redis and the run's database."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from app import search
from app.extensions import db
from app.models import Post, Task, User
from app.search import BATCH_SIZE, BUILD_TABLE, IndexMissing
from app.tasks import catalogue
from app.tasks.launcher import start_task
from app.tasks.lifecycle import request_cancel
from app.tasks.search import rebuild_lock, reindex_search
from tests.conftest import make_user
from tests.test_worker import history, run_worker

# Three batches, the last one short.
N = 2 * BATCH_SIZE + 100


def add_posts(user_id: int, n: int, topic: str = "the weather") -> None:
    # One post in a hundred is about sourdough.
    rows = [
        {"user_id": user_id, "body": f"Post {i} about {'sourdough' if i % 100 == 0 else topic}"}
        for i in range(n)
    ]
    if rows:
        db.session.execute(sa.insert(Post), rows)
        db.session.commit()


def count(query: str) -> int:
    return len(search.search(query, limit=10_000))


def start_reindex(app, username: str = "alice", posts: int = N) -> tuple[str, int]:
    with app.app_context():
        user = make_user(username)
        add_posts(user.id, posts)
        return start_task(user, "reindex_search", {}).id, user.id


def running_messages(events: list[dict]) -> list[tuple[str, int, int, int]]:
    return [
        (e["message"], e["step"], e["total"], e["progress"])
        for e in events
        if e["status"] == "running" and e["message"].startswith("Indexed")
    ]


def test_reindex_reports_posts_indexed_in_order_and_succeeds(app, redis):
    task_id, user_id = start_reindex(app)
    run_worker(app, redis)

    events = history(app, user_id)
    assert running_messages(events) == [
        ("Indexed 0 of 1100 posts", 0, N, 0),
        ("Indexed 500 of 1100 posts", 500, N, 45),
        ("Indexed 1000 of 1100 posts", 1000, N, 90),
        ("Indexed 1100 of 1100 posts", 1100, N, 100),
    ]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert (events[-1]["status"], events[-1]["result"]) == ("succeeded", {"posts": N})
    with app.app_context():
        assert db.session.get(Task, task_id).status == "succeeded"
        assert count("sourdough") == N // 100
        assert count("weather") == N - N // 100


def test_reindex_of_no_posts_succeeds_with_an_empty_index(app, redis):
    _, user_id = start_reindex(app, posts=0)
    run_worker(app, redis)

    events = history(app, user_id)
    assert running_messages(events) == [("Indexed 0 of 0 posts", 0, 0, 0)]
    assert (events[-1]["status"], events[-1]["result"]) == ("succeeded", {"posts": 0})
    with app.app_context():
        assert search.search("weather") == []


def test_a_second_rebuild_at_the_same_time_fails_with_a_message(app, redis):
    with app.app_context():
        other = rebuild_lock()
        assert other.acquire()
    _, user_id = start_reindex(app)
    run_worker(app, redis)

    final = history(app, user_id)[-1]
    assert final["status"] == "failed"
    assert (
        final["error"]
        == "The search index is already being rebuilt by another task; try again when it is done."
    )
    with app.app_context():
        with pytest.raises(IndexMissing):
            search.search("weather")
        other.release()


CANCEL_AT = BATCH_SIZE


def _reindex_cancelled_by_its_owner(ctx):
    # The owner presses cancel once CANCEL_AT posts are indexed: the real request, from the horse.
    real_report = ctx.report

    def report_then_cancel(step, total, message=""):
        real_report(step, total, message)
        if step == CANCEL_AT:
            request_cancel(ctx.task)

    ctx.report = report_then_cancel
    return reindex_search(ctx)


@pytest.fixture
def cancelled_reindex(monkeypatch):
    real = catalogue.CATALOGUE["reindex_search"]
    monkeypatch.setitem(
        catalogue.CATALOGUE, "reindex_search", dataclasses.replace(real, func=_reindex_cancelled_by_its_owner)
    )
    return real


def test_a_cancelled_rebuild_keeps_the_old_index_and_releases_the_lock(
    app, redis, cancelled_reindex, monkeypatch
):
    with app.app_context():
        user = make_user("alice")
        user_id = user.id
        add_posts(user_id, 10, topic="rain")
        search.rebuild(lambda done, total: None)
        add_posts(user_id, N)
        task_id = start_task(user, "reindex_search", {}).id
    run_worker(app, redis)

    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.step, task.result) == ("cancelled", CANCEL_AT, None)
        assert (count("rain"), count("weather")) == (9, 0)
        db.session.rollback()
        assert BUILD_TABLE not in sa.inspect(db.engine).get_table_names()

    monkeypatch.setitem(catalogue.CATALOGUE, "reindex_search", cancelled_reindex)
    with app.app_context():
        task_id = start_task(db.session.get(User, user_id), "reindex_search", {}).id
    run_worker(app, redis)
    with app.app_context():
        assert db.session.get(Task, task_id).status == "succeeded"
        assert (count("rain"), count("weather")) == (9, N - N // 100)
