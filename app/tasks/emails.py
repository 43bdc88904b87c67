"""The digest e-mail: recent posts by everyone, one message per recipient over one SMTP connection.

Nobody gets the digest twice from one task, whatever stops an attempt: each recipient is
claimed in the task's ledger (app/tasks/ledger.py), committed, before the message goes to
the mail server, and marked done right after it was accepted; a retry skips every
recipient an earlier attempt claimed. The price is at most one missed digest per killed
attempt, never a duplicate: a worker killed between the claim and the mail server's answer
leaves that recipient claimed but not done, and since nothing can tell whether the server
took the message, the next attempt does not send it again and lists the recipient under
``failed`` as not confirmed. Recording after the send would turn that one miss into a
duplicate instead. (Within one attempt, a connection lost during a message is reopened and
the message sent again; a server that accepted it but hung up before answering gets it
twice: SMTP cannot say.)

Who may be mailed (app/sansio/mailing.py) is checked twice: when the task is started, and
here again with the owner's rights at run time, so a stored or forged job cannot widen it.
Only confirmed addresses get mail; a recipient whose address cannot be written into a
header fails on its own, and the digest goes on to the others.
"""

from __future__ import annotations

import html
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.mail import BadAddress, Mailer, MailServerUnavailable, MailSettings, build_message
from app.models import Post, Task, TaskItem, User, utcnow
from app.sansio.mailing import MAIL_WINDOW, OTHERS_REFUSED, OVER_VOLUME, allowed_recipients, over_volume
from app.tasks.errors import NotPermitted, OverLimit, RetryableTaskError, TaskError
from app.tasks.ledger import DONE, REFUSED, STARTED, Ledger, Record

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext

# A digest is a glance at what happened, not an archive.
MAX_POSTS = 50
UNKNOWN_USER = "no such user"
NOT_CONFIRMED = (
    "the address is not confirmed yet: nothing is sent to it until its owner follows the confirmation link"
)
BAD_ADDRESS = "the stored address is not a single valid e-mail address"
UNCONFIRMED = (
    "not confirmed: the worker stopped while sending it, so it may or may not have arrived; "
    "not sent again to avoid a duplicate"
)


@dataclass(frozen=True, slots=True)
class Entry:
    author: str
    written: str
    body: str


@dataclass(frozen=True, slots=True)
class Recipient:
    username: str
    email: str


# Plain values, not ORM objects: every progress report commits, which would expire them and
# reload each post once per message.
@dataclass(frozen=True, slots=True)
class Digest:
    subject: str
    entries: list[Entry]
    more: bool
    days: int

    def message(self, sender: str, to: Recipient) -> EmailMessage:
        return build_message(sender, to.email, self.subject, self.text(to.username), self.html(to.username))

    def text(self, username: str) -> str:
        lines = [f"Hi {username},", "", self._summary(), ""]
        for e in self.entries:
            lines += [f"{e.author} at {e.written}:", e.body, ""]
        if self.more:
            lines.append(f"Only the newest {MAX_POSTS} posts are shown.")
        return "\n".join(lines)

    def html(self, username: str) -> str:
        items = "".join(
            f"<li><strong>{html.escape(e.author)}</strong> <small>{e.written}</small><br>{html.escape(e.body)}</li>"
            for e in self.entries
        )
        more = f"<p>Only the newest {MAX_POSTS} posts are shown.</p>" if self.more else ""
        return (
            f"<p>Hi {html.escape(username)},</p><p>{html.escape(self._summary())}</p>"
            f"{f'<ul>{items}</ul>' if items else ''}{more}"
        )

    def _summary(self) -> str:
        period = "day" if self.days == 1 else f"{self.days} days"
        if not self.entries:
            return f"Nobody posted in the last {period}."
        return f"Posts from the last {period}, newest first:"


def build_digest(days: int) -> Digest:
    posts = list(
        db.session.scalars(
            select(Post)
            .options(joinedload(Post.author))
            .where(Post.created_at >= utcnow() - timedelta(days=days))
            .order_by(Post.created_at.desc(), Post.id.desc())
            .limit(MAX_POSTS + 1)
        )
    )
    entries = [
        Entry(p.author.username, f"{p.created_at:%Y-%m-%d %H:%M} UTC", p.body) for p in posts[:MAX_POSTS]
    ]
    noun = "post" if len(entries) == 1 else "posts"
    return Digest(f"Microblog digest: {len(entries)} new {noun}", entries, len(posts) > MAX_POSTS, days)


def admit_digest(user: User, params: dict[str, Any]) -> None:
    """The start-time check: who may be mailed, and how much this user had mailed lately."""
    recipients = allowed_recipients(user.username, user.is_admin, params["recipients"])
    if recipients is None:
        raise NotPermitted(OTHERS_REFUSED)
    if not user.is_admin and over_volume(mailed_recently(user.id), len(set(recipients))):
        raise OverLimit(OVER_VOLUME)


def mailed_recently(user_id: int) -> int:
    """Messages the user's digests sent, or tried to, within the window: every recipient they claimed."""
    since = utcnow() - timedelta(seconds=MAIL_WINDOW)
    return db.session.scalar(
        select(func.count())
        .select_from(TaskItem)
        .join(Task, Task.id == TaskItem.task_id)
        .where(Task.user_id == user_id, Task.name == "send_batch_emails", TaskItem.updated_at >= since)
    )


def resolve_recipients(usernames: list[str]) -> tuple[list[Recipient], list[dict[str, str]]]:
    """Whom to write to, in the order named (every confirmed user when none are named), and who fails at once.

    ``usernames`` is what ``allowed_recipients`` permitted; failures are reported by username.
    """
    query = select(User.username, User.email, User.email_confirmed_at)
    if not usernames:
        rows = db.session.execute(query.where(User.email_confirmed_at.is_not(None)).order_by(User.id))
        return [Recipient(row.username, row.email) for row in rows], []
    found = {row.username: row for row in db.session.execute(query.where(User.username.in_(usernames)))}
    to, failed = [], []
    for name in usernames:
        row = found.get(name)
        if row is None:
            failed.append({"recipient": name, "error": UNKNOWN_USER})
        elif row.email_confirmed_at is None:
            failed.append({"recipient": name, "error": NOT_CONFIRMED})
        else:
            to.append(Recipient(row.username, row.email))
    return to, failed


def _refusal(exc: smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
    else:
        code, reply = exc.smtp_code, exc.smtp_error
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {text}"


def _earlier(record: Record) -> str | None:
    """What an earlier attempt's record means for the result: None if sent, else the error."""
    if record.state == DONE:
        return None
    if record.state == STARTED:
        return UNCONFIRMED
    return record.detail or record.state


def send_batch_emails(ctx: TaskContext, recipients: list[str], days: int) -> dict[str, Any]:
    settings = MailSettings.from_config(current_app.config)
    owner = db.session.get(User, ctx.user_id)
    permitted = None if owner is None else allowed_recipients(owner.username, owner.is_admin, recipients)
    if permitted is None:
        raise TaskError(OTHERS_REFUSED)
    # Failures are reported by username: the task's owner is not entitled to other users' addresses.
    to, failed = resolve_recipients(permitted)
    digest = build_digest(days)
    total = len(to)
    ledger = Ledger(ctx.task.id, ctx.attempt)
    earlier = ledger.recorded()
    sent = 0
    pending = []
    for recipient in to:
        record = earlier.get(recipient.username)
        if record is None:
            pending.append(recipient)
        elif (error := _earlier(record)) is None:
            sent += 1
        else:
            failed.append({"recipient": recipient.username, "error": error})
    done = total - len(pending)
    ctx.report(done, total, f"Sent {done} of {total}")
    if not pending:
        return {"sent": sent, "failed": failed, "posts": len(digest.entries)}

    mailer = Mailer(settings)
    try:
        mailer.open()
    except MailServerUnavailable as exc:
        # Nothing was sent by this attempt, and the ledger skips what earlier ones sent.
        raise RetryableTaskError(f"The mail server at {settings.address} could not be reached.") from exc
    try:
        for i, recipient in enumerate(pending, start=done + 1):
            if ledger.claim(recipient.username):
                try:
                    message = digest.message(settings.sender, recipient)
                except BadAddress:
                    ledger.finish(recipient.username, REFUSED, BAD_ADDRESS)
                    failed.append({"recipient": recipient.username, "error": BAD_ADDRESS})
                    ctx.report(i, total, f"Sent {i} of {total}")
                    continue
                try:
                    mailer.send(message)
                except smtplib.SMTPSenderRefused:
                    # Refused before the message was given: it certainly did not go.
                    ledger.release(recipient.username)
                    raise
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
                    refusal = _refusal(exc)
                    ledger.finish(recipient.username, REFUSED, refusal)
                    failed.append({"recipient": recipient.username, "error": refusal})
                else:
                    ledger.finish(recipient.username)
                    sent += 1
            ctx.report(i, total, f"Sent {i} of {total}")
    except MailServerUnavailable as exc:
        raise TaskError(
            f"The connection to the mail server at {settings.address} was lost "
            f"after {sent} of {total} messages were sent."
        ) from exc
    except smtplib.SMTPSenderRefused as exc:
        raise TaskError(
            f"The mail server at {settings.address} refused the sender {settings.sender}."
        ) from exc
    finally:
        mailer.close()
    return {"sent": sent, "failed": failed, "posts": len(digest.entries)}
