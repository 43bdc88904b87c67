"""Accounts in the database: registering one and checking a password, for the form and the API alike.

The rules for what an identity may be are ``app/sansio/identity.py``; this module adds what needs
the database (is the name or address taken) and the password hash.
"""

from __future__ import annotations

import functools
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import blocking
from app.extensions import db
from app.models import User
from app.sansio.identity import IdentityError, clean_email, clean_password, clean_username, username_key


class AccountTaken(Exception):
    """The username or e-mail address belongs to another account; ``field`` says which."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is already registered")
        self.field = field


def taken(username: str, email: str) -> str | None:
    """``"username"`` or ``"email"`` when that (already cleaned) value belongs to an account, else None."""
    if username_taken(username):
        return "username"
    if email_taken(email):
        return "email"
    return None


def username_taken(username: str) -> bool:
    return db.session.scalar(select(User.id).where(User.username_key == username_key(username))) is not None


def email_taken(email: str) -> bool:
    # Stored lower-case already; lower() on both sides keeps rows from before that rule one address too.
    return db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())) is not None


def register(username: str, email: str, password: str) -> User:
    """A new account from raw input: ``IdentityError`` for a value the rules refuse, ``AccountTaken``."""
    username, email, password = clean_username(username), clean_email(email), clean_password(password)
    field = taken(username, email)
    if field is not None:
        raise AccountTaken(field)
    user = User(username=username, email=email)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request registered the same name or address between the check and the commit.
        db.session.rollback()
        raise AccountTaken(taken(username, email) or "username") from None
    return user


def find_user(name: str) -> User | None:
    """The account whose username is ``name`` in any case or compatibility form; None for no such name."""
    try:
        name = clean_username(name)
    except IdentityError:
        # Not a name any account can have (a NUL, markup, another script): no query to send.
        return None
    return db.session.scalar(select(User).where(User.username_key == username_key(name)))


def authenticate(name: str, password: str) -> User | None:
    """The account when the password is its own, else None, after the same hashing work either way.

    An unknown name is checked against a hash of a random password: the answer takes as long as a
    wrong password for a real account, so its timing tells nobody which names exist.
    """
    user = find_user(name)
    if user is None:
        blocking.compute(check_password_hash, _dummy_hash(), password)
        return None
    return user if user.check_password(password) else None


@functools.cache
def _dummy_hash() -> str:
    # The same method and cost as User.set_password's hashes, made once per process.
    return blocking.compute(generate_password_hash, secrets.token_urlsafe(16))
