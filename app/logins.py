"""Server-side browser logins: what the session and the remember-me cookie carry, and how they end.

Each login is a ``Login`` row with a random key; Flask-Login stores that key as the user id
(its "alternative token", ``User.get_id``), in the session and in the remember-me cookie
alike. The user loader finds the live login by the key's hash, so ending the row (logout,
a password change, its lifetime) ends both cookies, whoever holds a copy, and its sockets.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask_login import login_user
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.channel import end_session
from app.extensions import broker, db
from app.models import Login, Token, User, hash_token, utcnow
from app.sansio.protocol import LOGGED_OUT, PASSWORD_CHANGED

# How long a login lasts: the remember-me cookie lives exactly as long as its login. A login
# without "remember me" ends with the browser session, and on the server after a day at most.
REMEMBERED_LOGIN_LIFETIME = timedelta(days=30)
LOGIN_LIFETIME = timedelta(days=1)


def begin_login(user: User, *, remember: bool) -> Login:
    """A new login for ``user``, signed in to this request with its own key."""
    key = secrets.token_urlsafe(32)
    lifetime = REMEMBERED_LOGIN_LIFETIME if remember else LOGIN_LIFETIME
    login = Login(user=user, key_hash=hash_token(key), remember=remember, expires_at=utcnow() + lifetime)
    db.session.add(login)
    db.session.commit()
    user.signed_in(login, key)
    login_user(user, remember=remember, duration=lifetime)
    return login


def load_user(key: str) -> User | None:
    """Flask-Login's user loader: the user of the live login named by ``key``, in one query."""
    login = db.session.scalar(
        select(Login)
        .options(joinedload(Login.user))
        .where(Login.key_hash == hash_token(key), Login.ended_at.is_(None), Login.expires_at > utcnow())
    )
    if login is None:
        return None
    login.user.signed_in(login, key)
    return login.user


def end_login(login: Login) -> None:
    """Logout: the login's session, its remember-me cookie and its sockets end."""
    login.ended_at = utcnow()
    db.session.commit()
    _end_sockets(login.user_id, [login.key_hash], LOGGED_OUT)


def end_other_credentials(user: User, keep: Login) -> None:
    """After a password change: every other login and every API token of ``user`` ends, with their sockets."""
    ended = db.session.scalars(
        update(Login)
        .where(Login.user_id == user.id, Login.ended_at.is_(None), Login.id != keep.id)
        .values(ended_at=utcnow())
        .returning(Login.key_hash)
    ).all()
    tokens = db.session.scalars(select(Token).where(Token.user_id == user.id)).all()
    for token in tokens:
        db.session.delete(token)
    db.session.commit()
    _end_sockets(user.id, [*ended, *(token.token_hash for token in tokens)], PASSWORD_CHANGED)


def _end_sockets(user_id: int, auth_ids: list[str], reason: str) -> None:
    for auth_id in auth_ids:
        end_session(broker.redis, broker.keys.channel, user_id, auth_id, reason)
