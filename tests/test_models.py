from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Notification, Task, User, next_seq, utcnow
from tests.conftest import make_user


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def test_password_is_hashed(ctx):
    user = make_user("ann", "s3cret-pass")
    assert user.password_hash != "s3cret-pass"
    assert user.check_password("s3cret-pass")
    assert not user.check_password("S3cret-pass")


def test_token_is_stored_hashed_and_expires(ctx):
    user = make_user("ann")
    raw, token = user.issue_token(60)
    db.session.commit()
    assert raw not in token.token_hash
    assert User.from_token(raw) == user
    assert User.from_token(raw + "x") is None
    assert token.expires_at > utcnow()
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert User.from_token(raw) is None


def test_each_login_gets_its_own_token_revoked_on_its_own(ctx):
    user = make_user("ann")
    first, first_row = user.issue_token(60)
    second, _ = user.issue_token(60)
    db.session.commit()
    db.session.delete(first_row)
    db.session.commit()
    assert User.from_token(first) is None
    assert User.from_token(second) == user


def test_sequence_numbers_increase_per_user(ctx):
    ann, bob = make_user("ann"), make_user("bob")
    assert [next_seq(ann.id) for _ in range(3)] == [1, 2, 3]
    assert next_seq(bob.id) == 1
    db.session.commit()
    assert db.session.get(User, ann.id).last_seq == 3


def test_a_sequence_number_is_never_reused(ctx):
    ann = make_user("ann")
    db.session.add(Notification(user_id=ann.id, seq=1, name="task_progress", payload={}))
    db.session.add(Notification(user_id=ann.id, seq=1, name="task_progress", payload={}))
    with pytest.raises(IntegrityError):
        db.session.commit()


def test_unfinished_tasks_are_the_users_queued_and_running(ctx):
    ann, bob = make_user("ann"), make_user("bob")
    for i, status in enumerate(["queued", "running", "succeeded", "failed", "cancelled"]):
        db.session.add(Task(id=f"a{i}", name="example_long_task", user_id=ann.id, status=status))
    db.session.add(Task(id="b0", name="example_long_task", user_id=bob.id, status="running"))
    db.session.commit()
    assert [t.id for t in ann.unfinished_tasks()] == ["a0", "a1"]


def test_timestamps_come_back_timezone_aware(ctx):
    ann = make_user("ann")
    db.session.add(Task(id="t", name="example_long_task", user_id=ann.id))
    db.session.commit()
    db.session.expire_all()
    task = db.session.scalar(select(Task))
    assert task.created_at.tzinfo is not None
    assert task.to_dict()["status"] == "queued"
