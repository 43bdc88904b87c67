"""send_batch_emails in a real RQ work horse, delivering to a real SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.extensions import db
from app.models import Post, Task, User, utcnow
from app.tasks.emails import MAX_POSTS, UNCONFIRMED, build_digest
from app.tasks.launcher import start_task
from app.tasks.ledger import Ledger
from tests.conftest import make_user
from tests.support import MailSink
from tests.test_worker import history, run_worker


@pytest.fixture
def app_config(app_config: dict[str, Any], mail_sink: MailSink) -> dict[str, Any]:
    app_config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_sink.port, MAIL_SENDER="digest@microblog.test")
    return app_config


def confirmed(username: str, **fields: Any) -> User:
    user = make_user(username)
    for name, value in {"email_confirmed_at": utcnow(), **fields}.items():
        setattr(user, name, value)
    db.session.commit()
    return user


@pytest.fixture
def people(app) -> int:
    """alice (an operator, who starts the task), bob and bounce, all confirmed, with two recent posts
    and one too old for a week's digest."""
    with app.app_context():
        alice, bob, _ = confirmed("alice", is_admin=True), confirmed("bob"), confirmed("bounce")
        now = utcnow()
        db.session.add_all(
            [
                Post(body="bob's ancient post", user_id=bob.id, created_at=now - timedelta(days=10)),
                Post(body="alice says hello", user_id=alice.id, created_at=now - timedelta(days=2)),
                Post(body="bob replies", user_id=bob.id, created_at=now - timedelta(hours=1)),
            ]
        )
        db.session.commit()
        return alice.id


def send(app, redis, user_id: int, **params: Any) -> tuple[Task, list[dict]]:
    with app.app_context():
        task_id = start_task(db.session.get(User, user_id), "send_batch_emails", params).id
    run_worker(app, redis)
    with app.app_context():
        task = db.session.get(Task, task_id)
        db.session.expunge(task)
    return task, history(app, user_id)


BOUNCE = {"recipient": "bounce", "error": "550 5.1.1 No such mailbox here"}


@pytest.mark.parametrize(
    ("recipients", "delivered", "failed"),
    [
        ([], ["alice@example.com", "bob@example.com"], [BOUNCE]),
        (
            ["bob", "ghost", "bounce"],
            ["bob@example.com"],
            [{"recipient": "ghost", "error": "no such user"}, BOUNCE],
        ),
    ],
    ids=["everyone", "named"],
)
def test_the_digest_reaches_each_recipient_and_refusals_are_reported(
    app, redis, mail_sink, people, recipients, delivered, failed
):
    task, events = send(app, redis, people, recipients=recipients, days=7)

    assert (task.status, task.error) == ("succeeded", None)
    assert task.result == {"sent": len(delivered), "failed": failed, "posts": 2}
    assert mail_sink.recipients() == delivered
    for received in mail_sink.received:
        message = received.message
        assert message["Subject"] == "Microblog digest: 2 new posts"
        assert message["From"] == "digest@microblog.test"
        assert message["To"] == received.rcpt_tos[0]
        text = message.get_body(("plain",)).get_content()
        assert text.startswith(f"Hi {received.rcpt_tos[0].split('@')[0]},")
        assert text.index("bob replies") < text.index("alice says hello"), "newest first"
        assert "ancient" not in text
        assert "bob replies" in message.get_body(("html",)).get_content()

    total = len(delivered) + sum(f["recipient"] == "bounce" for f in failed)
    assert [(e["status"], e["step"], e["total"], e["message"]) for e in events] == [
        ("queued", 0, 0, "Queued"),
        ("running", 0, 0, "Started"),
        *[("running", i, total, f"Sent {i} of {total}") for i in range(total + 1)],
        ("succeeded", total, total, "Done"),
    ]


def test_a_later_attempt_mails_nobody_an_earlier_one_mailed_or_may_have(app, redis, mail_sink, people):
    with app.app_context():
        user = db.session.get(User, people)
        task_id = start_task(
            user, "send_batch_emails", {"recipients": ["alice", "bob", "bounce"], "days": 7}
        ).id
        # An earlier attempt mailed alice, and was killed while bob's message was with the server.
        earlier = Ledger(task_id, attempt=1)
        assert earlier.claim("alice")
        earlier.finish("alice")
        assert earlier.claim("bob")
    run_worker(app, redis)

    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.error) == ("succeeded", None)
        assert task.result == {
            "sent": 1,
            "failed": [{"recipient": "bob", "error": UNCONFIRMED}, BOUNCE],
            "posts": 2,
        }
        assert not Ledger(task_id, attempt=2).claim("bounce"), "each recipient is claimed once"
    assert mail_sink.received == []


def test_only_unknown_names_sends_nothing_and_succeeds(app, redis, mail_sink, people):
    task, _ = send(app, redis, people, recipients=["ghost"], days=7)
    assert (task.status, task.result) == (
        "succeeded",
        {"sent": 0, "failed": [{"recipient": "ghost", "error": "no such user"}], "posts": 2},
    )
    assert mail_sink.received == []


@pytest.fixture
def flaky_sink(mail_sink: MailSink, request: pytest.FixtureRequest) -> MailSink:
    mail_sink.hang_up_on = frozenset(request.param)
    return mail_sink


@pytest.mark.parametrize("flaky_sink", [{2}], indirect=True)
def test_a_connection_lost_mid_batch_is_reopened_and_the_message_sent_again(app, redis, flaky_sink, people):
    task, _ = send(app, redis, people, recipients=["alice", "bob"], days=7)
    assert (task.status, task.result) == ("succeeded", {"sent": 2, "failed": [], "posts": 2})
    assert flaky_sink.recipients() == ["alice@example.com", "bob@example.com"]


@pytest.mark.parametrize("flaky_sink", [{2, 3}], indirect=True)
def test_a_connection_lost_again_after_reopening_fails_without_a_retry(app, redis, flaky_sink, people):
    # A retry would send the digest again to those who already have it.
    task, _ = send(app, redis, people, recipients=["alice", "bob"], days=7)
    port = flaky_sink.port
    assert (task.status, task.attempt) == ("failed", 1)
    assert task.error == (
        f"The connection to the mail server at 127.0.0.1:{port} was lost after 1 of 2 messages were sent."
    )
    assert "SMTPServerDisconnected" in task.traceback
    assert flaky_sink.recipients() == ["alice@example.com"]


def test_the_digest_holds_the_newest_posts_up_to_the_cap(app):
    with app.app_context():
        carol = make_user("carol")
        now = utcnow()
        db.session.add_all(
            Post(body=f"post {n}", user_id=carol.id, created_at=now - timedelta(minutes=n))
            for n in range(MAX_POSTS + 5)
        )
        db.session.commit()
        digest = build_digest(days=1)
        assert [e.body for e in digest.entries] == [f"post {n}" for n in range(MAX_POSTS)]
        assert digest.more
        assert f"Only the newest {MAX_POSTS} posts are shown." in digest.text("carol")
