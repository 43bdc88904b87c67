"""export_posts in a real RQ work horse against real Redis: the zip, its download, its expiry, a cancel."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import current_app
from rq import Queue
from sqlalchemy import select

from app.broker import SERIALIZER
from app.extensions import broker, db, socketio
from app.models import Notification, Post, Task, User, utcnow
from app.tasks import catalogue, export
from app.tasks.launcher import start_task
from app.tasks.lifecycle import request_cancel
from app.tasks.runtime import result_dir
from app.watchdog import Watchdog
from tests.conftest import make_user
from worker.app_worker import AppWorker

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TRICKY = [
    "plain",
    "a comma, and more",
    'she said "hi", twice ""',
    "line one\nline two",
    "carriage\r\nreturn",
    "ünïcödé ✓ 🎉 中文",
]


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "RESULTS_DIR": str(tmp_path / "results")}


@pytest.fixture
def results(app) -> Path:
    return Path(app.config["RESULTS_DIR"])


def run_worker(app, redis):
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    AppWorker([queue], connection=redis, serializer=SERIALIZER, app=app).work(burst=True)


def add_posts(user_id: int, bodies: list[str], minutes: list[int]) -> list[dict]:
    posts = [
        Post(user_id=user_id, body=body, created_at=T0 + timedelta(minutes=m))
        for body, m in zip(bodies, minutes, strict=True)
    ]
    db.session.add_all(posts)
    db.session.commit()
    return [
        {"id": p.id, "body": p.body, "created_at": p.created_at.isoformat()}
        for p in sorted(posts, key=lambda p: (p.created_at, p.id))
    ]


def export_for(app, username: str, bodies: list[str], minutes: list[int]) -> tuple[str, int, list[dict]]:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username)) or make_user(username)
        expected = add_posts(user.id, bodies, minutes)
        return start_task(user, "export_posts", {}).id, user.id, expected


def history(app, user_id: int) -> list[dict]:
    with app.app_context():
        return [
            n.payload
            for n in db.session.scalars(
                select(Notification).where(Notification.user_id == user_id).order_by(Notification.seq)
            )
        ]


def get_task(app, task_id: str) -> Task:
    with app.app_context():
        task = db.session.get(Task, task_id)
        db.session.expunge(task)
        return task


def read_export(data: bytes) -> tuple[list[dict], list[dict], str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["posts.csv", "posts.json"]
        from_json = json.loads(archive.read("posts.json").decode("utf-8"))
        csv_text = archive.read("posts.csv").decode("utf-8")
    from_csv = [
        {"id": int(row["id"]), "body": row["body"], "created_at": row["created_at"]}
        for row in csv.DictReader(io.StringIO(csv_text, newline=""))
    ]
    return from_json, from_csv, csv_text


def test_export_holds_exactly_the_owners_posts_oldest_first_and_reports_each(
    app, redis, results, monkeypatch
):
    # Several batches, each read across progress commits (which would break a session's cursor).
    monkeypatch.setattr(export, "BATCH", 2)
    # Out of insertion order, with a tie on created_at that the id must break.
    task_id, alice_id, expected = export_for(app, "alice", TRICKY, [5, 1, 3, 3, 0, 9])
    with app.app_context():
        bob = make_user("bob")
        add_posts(bob.id, ["bob's secret, do not export", "another of bob's"], [2, 4])
    run_worker(app, redis)

    task = get_task(app, task_id)
    assert task.status == "succeeded", task.traceback
    zip_path = results / task_id / "posts-export.zip"
    assert task.result_file == f"{task_id}/posts-export.zip"
    assert task.result == {"posts": 6, "file": "posts-export.zip", "bytes": zip_path.stat().st_size}
    assert task.result_expires_at > utcnow()
    assert [p.name for p in (results / task_id).iterdir()] == ["posts-export.zip"], "no scratch files left"

    from_json, from_csv, csv_text = read_export(zip_path.read_bytes())
    assert [p["body"] for p in expected][:2] == ["carriage\r\nreturn", "a comma, and more"]
    assert from_json == expected
    assert from_csv == expected
    assert csv_text.startswith("id,body,created_at\r\n")
    assert "bob" not in csv_text

    events = [(e["status"], e["step"], e["total"], e["message"]) for e in history(app, alice_id)]
    assert events == [
        ("queued", 0, 0, "Queued"),
        ("running", 0, 0, "Started"),
        ("running", 0, 6, "Exporting 6 posts"),
        *[("running", i, 6, f"Exported {i} of 6 posts") for i in range(1, 7)],
        ("succeeded", 6, 6, "Done"),
    ]


def test_a_user_without_posts_gets_an_empty_export(app, redis, results):
    with app.app_context():
        add_posts(make_user("bob").id, ["not alice's"], [0])
    task_id, alice_id, _ = export_for(app, "alice", [], [])
    run_worker(app, redis)

    task = get_task(app, task_id)
    assert (task.status, task.result["posts"]) == ("succeeded", 0)
    from_json, from_csv, csv_text = read_export((results / task_id / "posts-export.zip").read_bytes())
    assert (from_json, from_csv, csv_text) == ([], [], "id,body,created_at\r\n")
    running = [(e["step"], e["total"]) for e in history(app, alice_id) if e["status"] == "running"]
    assert running == [(0, 0), (0, 0)]


def test_download_is_the_owners_alone_and_needs_a_file(app, redis, client, token_for, results):
    alice_id, alice = token_for("alice")
    _, bob = token_for("bob")
    task_id, _, _ = export_for(app, "alice", ["hello, world"], [0])
    with app.app_context():
        no_file_id = start_task(
            db.session.get(User, alice_id), "example_long_task", {"steps": 1, "delay": 0}
        ).id
    run_worker(app, redis)

    with client.get(f"/api/tasks/{task_id}/result", headers={"Authorization": f"Bearer {alice}"}) as r:
        assert r.status_code == 200
        assert r.headers["Content-Disposition"] == "attachment; filename=posts-export.zip"
        assert r.get_data() == (results / task_id / "posts-export.zip").read_bytes()

    with client.get(f"/api/tasks/{task_id}/result", headers={"Authorization": f"Bearer {bob}"}) as r:
        assert (r.status_code, r.get_json()) == (404, {"error": "task not found"})

    assert get_task(app, no_file_id).status == "succeeded"
    with client.get(f"/api/tasks/{no_file_id}/result", headers={"Authorization": f"Bearer {alice}"}) as r:
        assert (r.status_code, r.get_json()) == (404, {"error": "this task has no result file"})


def test_the_page_serves_the_export_to_its_logged_in_owner(app, redis, client, auth):
    auth.register("carol")
    task_id, _, expected = export_for(app, "carol", ["from the page"], [0])
    run_worker(app, redis)

    auth.login("carol")
    with client.get(f"/tasks/{task_id}/result") as r:
        assert r.status_code == 200
        assert r.headers["Content-Disposition"] == "attachment; filename=posts-export.zip"
        assert read_export(r.get_data())[0] == expected

    auth.logout()
    auth.register("dave")
    auth.login("dave")
    with client.get(f"/tasks/{task_id}/result") as r:
        assert r.status_code == 404


def test_an_expired_export_is_deleted_by_the_watchdog_and_answers_410(app, redis, client, token_for, results):
    _, alice = token_for("alice")
    task_id, _, _ = export_for(app, "alice", ["soon gone"], [0])
    run_worker(app, redis)
    assert (results / task_id / "posts-export.zip").is_file()

    with app.app_context():
        db.session.get(Task, task_id).result_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        Watchdog(app, socketio).tick()

    assert not (results / task_id).exists()
    assert get_task(app, task_id).result_file is None
    with client.get(f"/api/tasks/{task_id}/result", headers={"Authorization": f"Bearer {alice}"}) as r:
        assert (r.status_code, r.get_json()) == (410, {"error": "the result has expired and was deleted"})


CANCEL_AT = 3


def _export_cancelled_by_its_owner_at_step(ctx, **params):
    # The owner presses cancel once CANCEL_AT posts are written: the real request, from the horse.
    report = ctx.report

    def report_then_cancel(step, total, message=""):
        report(step, total, message)
        if step == CANCEL_AT:
            directory = result_dir(Path(current_app.config["RESULTS_DIR"]), ctx.task.id)
            written = sorted(p.name for p in directory.rglob("*") if p.is_file())
            broker.redis.set(f"{ctx.task.id}:files-at-cancel", json.dumps(written))
            request_cancel(ctx.task)

    ctx.report = report_then_cancel
    return export.export_posts(ctx, **params)


@pytest.fixture
def cancelled_export(monkeypatch):
    real = catalogue.CATALOGUE["export_posts"]
    monkeypatch.setitem(
        catalogue.CATALOGUE,
        "export_posts",
        dataclasses.replace(real, func=_export_cancelled_by_its_owner_at_step),
    )


@pytest.mark.usefixtures("cancelled_export")
def test_cancel_mid_export_leaves_nothing_behind(app, redis, results):
    task_id, alice_id, _ = export_for(app, "alice", [f"post {i}" for i in range(20)], list(range(20)))
    run_worker(app, redis)

    # The cancel came while partial files existed, so their removal below is the runtime's doing.
    assert json.loads(redis.get(f"{task_id}:files-at-cancel")) == ["posts.csv", "posts.json"]
    task = get_task(app, task_id)
    assert (task.status, task.result_file, task.result) == ("cancelled", None, None)
    assert not (results / task_id).exists()
    steps = [e["step"] for e in history(app, alice_id) if e["status"] == "running"]
    assert steps[-1] == CANCEL_AT


def test_cancel_before_the_first_post_leaves_nothing_behind(app, redis, results):
    task_id, _, _ = export_for(app, "alice", [f"post {i}" for i in range(20)], list(range(20)))
    with app.app_context():
        redis.set(broker.keys.cancel(task_id), "1")
    run_worker(app, redis)

    task = get_task(app, task_id)
    assert (task.status, task.result_file) == ("cancelled", None)
    assert not (results / task_id).exists()
