"""Confirming that an e-mail address belongs to its user, before any digest goes to it.

The link carries a signed, expiring token bound to the user id and the address: a changed
address needs a new confirmation. The web node never talks to SMTP: it puts a job on the
task queue and the worker, which has the mail settings, sends the message. Redis or the mail
server being down never fails a registration nor retries on its own: the user asks for
the mail again.
"""

from __future__ import annotations

import enum
import logging
import smtplib
from typing import Any

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from redis.exceptions import RedisError

from app.extensions import broker, db
from app.mail import BadAddress, Mailer, MailServerUnavailable, MailSettings, build_message
from app.models import User, utcnow

log = logging.getLogger(__name__)

# Long enough for a mail that waited in a queue, short enough that an old inbox is no key.
CONFIRM_MAX_AGE = 3 * 24 * 60 * 60
# One confirmation mail per user per this many seconds, however often they ask.
RESEND_INTERVAL = 60
DELIVER = "app.confirmation.deliver"
SUBJECT = "Confirm your e-mail address"


class Requested(enum.Enum):
    QUEUED = "queued"
    TOO_SOON = "too soon"
    UNAVAILABLE = "unavailable"


class ConfirmationInvalid(Exception):
    """The link is forged, expired, or for an address the user no longer has; the message says which."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="email-confirmation")


def confirmation_link(user: User) -> str:
    token = _serializer().dumps({"user": user.id, "email": user.email})
    return url_for("auth.confirm_email", token=token, _external=True)


def confirm_address(token: str) -> User:
    """Mark the address in ``token`` confirmed; raise ``ConfirmationInvalid``."""
    try:
        data = _serializer().loads(token, max_age=CONFIRM_MAX_AGE)
    except SignatureExpired:
        raise ConfirmationInvalid(
            "This confirmation link has expired; log in and ask for a new one."
        ) from None
    except BadSignature:
        raise ConfirmationInvalid("This confirmation link is not valid.") from None
    user_id, email = (data.get("user"), data.get("email")) if isinstance(data, dict) else (None, None)
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.email != email:
        raise ConfirmationInvalid(
            "This confirmation link is for an address that is no longer on the account; "
            "log in and ask for a new one."
        )
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        db.session.commit()
    return user


def request_confirmation(user: User) -> Requested:
    """Queue the confirmation mail for ``user``'s address, at most once per RESEND_INTERVAL."""
    key = f"{broker.keys.namespace}:confirmation-sent:{user.id}"
    try:
        if not broker.redis.set(key, 1, nx=True, ex=RESEND_INTERVAL):
            return Requested.TOO_SOON
        broker.queue.enqueue(
            DELIVER,
            user.id,
            user.email,
            confirmation_link(user),
            description=f"confirmation mail for user {user.id}",
        )
    except RedisError as exc:
        log.warning("confirmation mail for user %s not queued: %s", user.id, exc)
        return Requested.UNAVAILABLE
    return Requested.QUEUED


def message_text(username: str, link: str) -> str:
    return (
        f"Hi {username},\n\nPlease confirm that this is your e-mail address by opening this link "
        f"(valid for {CONFIRM_MAX_AGE // 3600} hours):\n\n{link}\n\n"
        "If you did not register, ignore this message: nothing is sent to an unconfirmed address."
    )


def deliver(user_id: int, email: str, link: str) -> Any:
    """The worker's side: send the confirmation mail, unless the address changed or is confirmed already."""
    user = db.session.get(User, user_id)
    if user is None or user.email != email or user.email_confirmed_at is not None:
        return "not needed"
    settings = MailSettings.from_config(current_app.config)
    try:
        message = build_message(settings.sender, email, SUBJECT, message_text(user.username, link))
    except BadAddress:
        log.warning("user %s: the stored address is not a single address; no confirmation sent", user_id)
        return "bad address"
    mailer = Mailer(settings)
    # Not retried: the user asks again (the page says how), and a queue of stale retries
    # would only wait for a server that may be away for long.
    try:
        mailer.open()
        mailer.send(message)
    except MailServerUnavailable as exc:
        log.warning("user %s: no confirmation mail sent, the mail server is unavailable: %s", user_id, exc)
        return "mail server unavailable"
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
        log.warning("user %s: the mail server refused the confirmation mail: %s", user_id, exc)
        return "refused"
    finally:
        mailer.close()
    return "sent"
