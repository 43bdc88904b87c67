"""Who a user is, as pure functions: one set of rules for the form, the API and the database.

Usernames: NFKC-normalised (full-width letters are ASCII letters), then 1 to 64 of the ASCII letters,
digits, ``.``, ``_`` and ``-``. Nothing else is accepted: no control or zero-width characters, no
markup, no letters of other scripts, so no name can pass for another on the admin page or in
search (``bob`` spelt with a Cyrillic o is refused, not told apart). Two names are one when their
``username_key`` (NFKC + casefold) is one: ``Bob`` cannot register beside ``bob``.

E-mail addresses: exactly one address (no lists, no display names) by ``email-validator``, with no
DNS look-up; ASCII only (the mail path does not speak SMTPUTF8); stored and compared lower-case.

Passwords: 8 to 128 characters, and not one of the common passwords Django ships
(``data/common-passwords.txt.gz``, see ``data/common-passwords.LICENSE``), compared lower-case.

Each ``clean_*`` returns the value to store, or raises ``IdentityError`` with a message for the user.
"""

from __future__ import annotations

import functools
import gzip
import re
import unicodedata
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

USERNAME_MAX = 64
EMAIL_MAX = 120
PASSWORD_MIN = 8
PASSWORD_MAX = 128

_USERNAME = re.compile(r"[A-Za-z0-9._-]+")
_COMMON_PASSWORDS = Path(__file__).parent / "data" / "common-passwords.txt.gz"


class IdentityError(ValueError):
    """A value a user gave that cannot be an identity; ``str()`` is the message to show them."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def username_key(name: str) -> str:
    """The name's identity: two names with one key are one name (case and compatibility forms fold)."""
    return unicodedata.normalize("NFKC", name).casefold()


def clean_username(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw.strip())
    if not name:
        raise IdentityError("username", "username is required")
    if len(name) > USERNAME_MAX:
        raise IdentityError("username", f"username must be at most {USERNAME_MAX} characters")
    if not _USERNAME.fullmatch(name):
        raise IdentityError(
            "username", "username may use only letters a-z and A-Z, digits, dots, dashes and underscores"
        )
    return name


def clean_email(raw: str) -> str:
    address = raw.strip()
    if not address:
        raise IdentityError("email", "email is required")
    if len(address) > EMAIL_MAX:
        raise IdentityError("email", f"email must be at most {EMAIL_MAX} characters")
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise IdentityError("email", f"email is not a valid address: {exc}") from None
    return checked.normalized.lower()


def clean_password(password: str) -> str:
    if not password:
        raise IdentityError("password", "password is required")
    if len(password) < PASSWORD_MIN:
        raise IdentityError("password", f"password must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise IdentityError("password", f"password must be at most {PASSWORD_MAX} characters")
    if password.lower() in common_passwords():
        raise IdentityError("password", "password is too common; choose one that is harder to guess")
    return password


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, read once per process."""
    with gzip.open(_COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines)
