"""Who may be mailed and how an address gets confirmed: a real RQ worker delivering to a real SMTP server."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue

from app.broker import SERIALIZER
from app.confirmation import RESEND_INTERVAL, SUBJECT
from app.extensions import db
from app.models import Task, TaskItem, User, utcnow
from app.sansio.mailing import (
    MAIL_PER_HOUR,
    OTHERS_REFUSED,
    OVER_VOLUME,
    allowed_recipients,
    single_address,
)
from app.tasks.emails import BAD_ADDRESS
from app.tasks.errors import NotPermitted, OverLimit
from app.tasks.launcher import enqueue, start_task
from tests.conftest import AuthActions, csrf_token, make_user
from tests.support import MailSink, free_port
from tests.test_task_emails import confirmed
from tests.test_worker import run_worker

LINK = re.compile(r"http://localhost/auth/confirm/\S+")


@pytest.fixture
def app_config(app_config: dict[str, Any], mail_sink: MailSink) -> dict[str, Any]:
    app_config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port, MAIL_SENDER="site@microblog.test")
    return app_config


def confirmation_links(sink: MailSink, address: str) -> list[str]:
    return [
        link
        for r in sink.received
        if r.rcpt_tos == [address] and r.message["Subject"] == SUBJECT
        for link in LINK.findall(r.message.get_body(("plain",)).get_content())
    ]


def test_registering_on_the_page_mails_a_link_that_confirms_the_address(app, client, redis, mail_sink):
    AuthActions(client).register("carol")
    assert mail_sink.received == [], "the web node does not talk to SMTP"
    run_worker(app, redis)
    [link] = confirmation_links(mail_sink, "carol@example.com")

    page = client.get(link, follow_redirects=True).get_data(as_text=True)
    assert "Your e-mail address is confirmed." in page
    with app.app_context():
        assert db.session.scalar(db.select(User.email_confirmed_at).where(User.username == "carol"))


def test_a_link_is_for_one_address_a_changed_address_needs_a_new_one(app, client, redis, mail_sink):
    AuthActions(client).register("carol")
    run_worker(app, redis)
    [link] = confirmation_links(mail_sink, "carol@example.com")
    with app.app_context():
        carol = db.session.scalar(db.select(User).where(User.username == "carol"))
        carol.email = "carol@elsewhere.example"
        db.session.commit()

    page = client.get(link, follow_redirects=True).get_data(as_text=True)
    assert "no longer on the account" in page
    with app.app_context():
        assert db.session.scalar(db.select(User.email_confirmed_at).where(User.username == "carol")) is None


def test_an_unconfirmed_user_can_ask_again_but_not_more_than_once_a_minute(app, client, redis, mail_sink):
    auth = AuthActions(client)
    auth.register("carol")
    auth.login("carol")
    index = client.get("/").get_data(as_text=True)
    assert "Send the confirmation e-mail again" in index

    page = client.post("/auth/confirm", data={"csrf_token": csrf_token(index)}, follow_redirects=True)
    assert f"less than {RESEND_INTERVAL} seconds ago" in page.get_data(as_text=True)
    redis.flushdb()  # as if the interval had passed (nothing else of this test lives in Redis)
    page = client.post("/auth/confirm", data={"csrf_token": csrf_token(index)}, follow_redirects=True)
    assert "We sent you an e-mail" in page.get_data(as_text=True)
    run_worker(app, redis)
    assert len(confirmation_links(mail_sink, "carol@example.com")) == 1


def test_registration_succeeds_while_redis_is_down_and_says_to_ask_again(make_app, mail_sink):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    r = client.post(
        "/api/users", json={"username": "dora", "email": "dora@example.com", "password": "correct horse"}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert AuthActions(client).register("erin").status_code == 302
    assert "could not be sent right now" in client.get("/auth/login").get_data(as_text=True)
    with app.app_context():
        assert {u.username for u in db.session.scalars(db.select(User))} == {"dora", "erin"}


def test_a_stored_job_naming_others_is_refused_by_the_worker(app, redis, mail_sink):
    with app.app_context():
        mallory, _ = confirmed("mallory"), confirmed("bob")
        # Written past start_task's check, as a forged or stale job would be.
        task = Task(
            id=str(uuid.uuid4()),
            name="send_batch_emails",
            user_id=mallory.id,
            params={"recipients": ["bob"], "days": 1},
        )
        db.session.add(task)
        db.session.commit()
        enqueue(task)
        task_id = task.id
    run_worker(app, redis)
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.error) == ("failed", OTHERS_REFUSED)
    assert mail_sink.received == []


def test_the_start_refuses_others_and_counts_only_the_last_hour(app, redis):
    def mailed(task_id: str, count: int, ago: timedelta) -> None:
        db.session.add_all(
            TaskItem(task_id=task_id, item=f"{ago}-{n}", state="done", attempt=1, updated_at=utcnow() - ago)
            for n in range(count)
        )
        db.session.commit()

    with app.app_context():
        mallory = confirmed("mallory")
        confirmed("bob")
        with pytest.raises(NotPermitted, match=re.escape(OTHERS_REFUSED)):
            start_task(mallory, "send_batch_emails", {"recipients": ["bob"]})
        db.session.rollback()

        earlier = start_task(mallory, "send_batch_emails", {})
        earlier.status = "succeeded"
        mailed(earlier.id, MAIL_PER_HOUR, timedelta(hours=2))
        later = start_task(mallory, "send_batch_emails", {})
        later.status = "succeeded"
        mailed(later.id, MAIL_PER_HOUR, timedelta(minutes=5))
        with pytest.raises(OverLimit, match=re.escape(OVER_VOLUME)):
            start_task(mallory, "send_batch_emails", {})


def test_a_bad_stored_address_fails_only_itself(app, redis, mail_sink):
    with app.app_context():
        olga = confirmed("olga", is_admin=True)
        confirmed("eve", email="eve@example.com\r\nBcc: victim@elsewhere.example")
        confirmed("bob")
        task_id = start_task(olga, "send_batch_emails", {}).id
    run_worker(app, redis)
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.result == {"sent": 2, "failed": [{"recipient": "eve", "error": BAD_ADDRESS}], "posts": 0}
    assert mail_sink.recipients() == ["olga@example.com", "bob@example.com"]


def test_operators_confirm_addresses_they_vouch_for_from_the_command_line(app):
    with app.app_context():
        make_user("olga")
        make_user("bob")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["confirm-email"]).exit_code != 0
    assert "no user named 'ghost'" in runner.invoke(args=["confirm-email", "ghost"]).output
    assert runner.invoke(args=["confirm-email", "olga"]).output == "confirmed 1 address\n"
    assert runner.invoke(args=["confirm-email", "--all"]).output == "confirmed 1 address\n"
    with app.app_context():
        assert all(u.email_confirmed_at for u in db.session.scalars(db.select(User)))


@pytest.mark.parametrize(
    ("named", "admin", "allowed"),
    [
        ([], False, ["me"]),
        (["me"], False, ["me"]),
        (["me", "bob"], False, None),
        (["bob"], False, None),
        ([], True, []),
        (["bob"], True, ["bob"]),
    ],
)
def test_who_may_be_mailed(named, admin, allowed):
    assert allowed_recipients("me", admin, named) == allowed


@pytest.mark.parametrize(
    ("address", "single"),
    [
        ("a.b+c@example.org", True),
        ("jörg@bücher.example", True),
        ("relay@ex.com, ext1@victim.example", False),
        ('"CEO" <ext3@victim.example>', False),
        ("eve@example.com\r\nBcc: victim@elsewhere.example", False),
        ("eve@example.com\n", False),
        ("a\x00@example.com", False),
        ("no-at-sign", False),
    ],
)
def test_only_a_single_bare_address_is_written_into_a_header(address, single):
    assert single_address(address) is single


def test_registering_over_the_api_mails_the_link_too_and_the_api_can_ask_again(app, client, redis, mail_sink):
    r = client.post(
        "/api/users", json={"username": "dora", "email": "dora@example.com", "password": "correct horse"}
    )
    assert r.status_code == 201
    token = client.post("/api/tokens", auth=("dora", "correct horse")).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    again = client.post("/api/confirmation", headers=headers)
    assert again.status_code == 429 and "less than" in again.get_json()["error"]
    redis.delete(*redis.keys("*confirmation-sent*"))
    assert client.post("/api/confirmation", headers=headers).status_code == 202
    run_worker(app, redis)
    _, second = confirmation_links(mail_sink, "dora@example.com")
    assert "Your e-mail address is confirmed." in client.get(second, follow_redirects=True).get_data(
        as_text=True
    )
    assert client.post("/api/confirmation", headers=headers).status_code == 409


def test_a_mail_server_away_at_registration_fails_nothing_and_the_user_asks_again(make_app, redis):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())
    with app.app_context():
        db.create_all()
    client = app.test_client()
    assert AuthActions(client).register("carol").status_code == 302
    run_worker(app, redis)

    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    assert queue.failed_job_registry.count == 0, "no failed job, no traceback, no retry left waiting"
    [job_id] = queue.finished_job_registry.get_job_ids()
    assert queue.fetch_job(job_id).return_value() == "mail server unavailable"
    with app.app_context():
        assert db.session.scalar(db.select(User.username)) == "carol"
