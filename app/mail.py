"""Sending e-mail over SMTP: one connection for a whole batch of messages."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from app.sansio.mailing import single_address

# Long enough for a slow server to greet, short enough that a silent one fails the attempt.
TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class MailSettings:
    server: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None
    sender: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        return cls(
            server=config["MAIL_SERVER"],
            port=config["MAIL_PORT"],
            use_tls=config["MAIL_USE_TLS"],
            username=config["MAIL_USERNAME"],
            password=config["MAIL_PASSWORD"],
            sender=config["MAIL_SENDER"],
        )

    @property
    def address(self) -> str:
        return f"{self.server}:{self.port}"


class MailServerUnavailable(Exception):
    """No usable connection: connecting, STARTTLS or login failed, or a reconnect did."""


class BadAddress(ValueError):
    """The recipient is not one bare address (a list, a display name, a CR/LF): nothing is built for it."""


def build_message(sender: str, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    """Raise ``BadAddress`` unless ``to`` is exactly one address."""
    if not single_address(to):
        raise BadAddress("not a single e-mail address")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _connection_lost(exc: OSError) -> bool:
    # smtplib subclasses OSError for protocol errors too; only these mean the connection is gone.
    # 421 is the server announcing that it is closing the connection (smtplib closes its side).
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code == 421
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in exc.recipients.values())
    return not isinstance(exc, smtplib.SMTPException)


class Mailer:
    """An open SMTP connection; ``send`` reconnects once when the server dropped it."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def open(self) -> None:
        s = self.settings
        smtp = smtplib.SMTP(timeout=TIMEOUT)
        try:
            smtp.connect(s.server, s.port)
            if s.use_tls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username:
                smtp.login(s.username, s.password or "")
        except OSError as exc:
            smtp.close()
            raise MailServerUnavailable(f"{s.address}: {exc}") from exc
        self._smtp = smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        # Everything was sent or given up on by now; a server that hangs up on QUIT changes nothing.
        with contextlib.suppress(OSError):
            smtp.quit()
        smtp.close()

    def send(self, message: EmailMessage) -> None:
        """Raise ``SMTPRecipientsRefused`` or ``SMTPDataError`` when the server refuses this message,
        ``MailServerUnavailable`` when the connection is lost and cannot be reopened."""
        try:
            self._send(message)
        except OSError as exc:
            if not _connection_lost(exc):
                raise
            self.close()
            self.open()
            try:
                self._send(message)
            except OSError as again:
                if _connection_lost(again):
                    raise MailServerUnavailable(f"{self.settings.address}: {again}") from again
                raise

    def _send(self, message: EmailMessage) -> None:
        if self._smtp is None:
            raise smtplib.SMTPServerDisconnected("not connected")
        self._smtp.send_message(message)
