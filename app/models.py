from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, bindparam, false, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, validates
from sqlalchemy.types import DateTime, TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from app import blocking
from app.extensions import db
from app.sansio.identity import username_key
from app.sansio.status import TaskStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend; SQLite would otherwise hand back naive datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # The username's identity (app/sansio/identity.py): "Bob", "bob" and a full-width "bob" are one name.
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(120), unique=True, index=True)
    # No mail goes to an address before its owner proved it is theirs.
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str] = mapped_column(String(256))
    # The last notification sequence number handed out; bumped atomically per event.
    last_seq: Mapped[int] = mapped_column(default=0)
    # Operators see every user's tasks, queues and workers on /admin.
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())

    posts: Mapped[list[Post]] = relationship(back_populates="author", cascade="all, delete-orphan")
    tasks: Mapped[list[Task]] = relationship(back_populates="user", cascade="all, delete-orphan")
    tokens: Mapped[list[Token]] = relationship(back_populates="user", cascade="all, delete-orphan")
    logins: Mapped[list[Login]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @validates("username")
    def _keep_key(self, _field: str, value: str) -> str:
        self.username_key = username_key(value)
        return value

    # Hashing is slow on purpose; on a web node it runs beside the other sockets, not before them.
    def set_password(self, password: str) -> None:
        self.password_hash = blocking.compute(generate_password_hash, password)

    def check_password(self, password: str) -> bool:
        return blocking.compute(check_password_hash, self.password_hash, password)

    def issue_token(self, ttl: int) -> tuple[str, Token]:
        """A new bearer token (each login gets its own, revoked on its own)."""
        raw = secrets.token_urlsafe(32)
        token = Token(user=self, token_hash=hash_token(raw), expires_at=utcnow() + timedelta(seconds=ttl))
        db.session.add(token)
        return raw, token

    @staticmethod
    def from_token(raw: str) -> User | None:
        token = Token.find(raw)
        return token.user if token is not None else None

    def unfinished_tasks(self) -> list[Task]:
        return list(
            db.session.scalars(
                select(Task)
                .where(Task.user_id == self.id, Task.status.in_(TaskStatus.unfinished()))
                .order_by(Task.created_at)
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username}


class Token(db.Model):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Only a hash is stored: a leaked database yields no usable token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="tokens")

    @staticmethod
    def find(raw: str) -> Token | None:
        """The live token for ``raw``, its user loaded with it: expired and revoked tokens are not found."""
        # Every caller goes on to the user (each API request, each socket connect): one query, not two.
        return db.session.scalar(
            select(Token)
            .options(joinedload(Token.user))
            .where(Token.token_hash == hash_token(raw), Token.expires_at > utcnow())
        )


class Login(db.Model):
    """One signed-in browser: its session and its remember-me cookie carry the key, ending it ends both."""

    __tablename__ = "logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Only a hash is stored, as for tokens.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="logins")


class Post(db.Model):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(280))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    author: Mapped[User] = relationship(back_populates="posts")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "author": self.user_id,
        }


class Task(db.Model):
    """A background job as the user sees it; the primary key is the RQ job id."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED, index=True)
    progress: Mapped[int] = mapped_column(default=0)
    step: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(String(256), default="")
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # Kept for the owner and the operator; never pushed to a browser.
    traceback: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    max_attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A downloadable result, relative to RESULTS_DIR; cleared when it expires.
    result_file: Mapped[str | None] = mapped_column(String(256))
    result_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The seq of the last notification about this task, so a snapshot can be ordered against live events.
    seq: Mapped[int] = mapped_column(default=0)
    reported_at: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tasks")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "params": self.params,
            "status": self.status,
            "progress": self.progress,
            "step": self.step,
            "total": self.total,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "seq": self.seq,
            "duration": self.duration,
            "has_result_file": self.result_file is not None,
            "result_expires_at": self.result_expires_at.isoformat() if self.result_expires_at else None,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or utcnow()) - self.started_at).total_seconds()


class TaskItem(db.Model):
    """What a task with side effects did to one item (a digest's recipient), kept across attempts.

    A retry reads these and skips every item an earlier attempt acted on, or may have; the
    primary key lets exactly one run claim an item. States are in app.tasks.ledger.
    """

    __tablename__ = "task_items"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    item: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    # What the item's outcome was, when it was not plain success (a refusal's reply).
    detail: Mapped[str | None] = mapped_column(Text)
    # The attempt that claimed the item.
    attempt: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("user_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    seq: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def next_seq(user_id: int) -> int:
    """Hand out the user's next sequence number inside the caller's transaction.

    A single UPDATE ... RETURNING is atomic on SQLite and PostgreSQL alike, so two workers
    reporting for one user never get the same number.
    """
    return db.session.execute(NEXT_SEQ, {"b_user_id": user_id}).scalar_one()


# Built once (a statement built per call costs more than executing it).
_USERS = User.__table__
NEXT_SEQ = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("b_user_id"))
    .values(last_seq=_USERS.c.last_seq + 1)
    .returning(_USERS.c.last_seq)
)
