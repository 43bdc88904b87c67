"""A hostile user and the site's mail, with real web and worker processes and a real SMTP server (aiosmtpd).

Addresses are confirmed the way a user confirms one, by following the link in the mail the
mail_sink received, or with the operator's `flask confirm-email`.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests
from sqlalchemy import create_engine, insert

from app.confirmation import SUBJECT
from app.models import User
from app.sansio.mailing import MAIL_PER_HOUR, OTHERS_REFUSED, OVER_VOLUME
from app.tasks.emails import BAD_ADDRESS, NOT_CONFIRMED
from tests.support import ROOT, MailSink, wait_for

pytestmark = pytest.mark.e2e

LINK = re.compile(r"http://\S+/auth/confirm/\S+")


@pytest.fixture
def live_stack_env(mail_sink: MailSink) -> dict[str, str]:
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(mail_sink.port)}


def mails_to(mail_sink: MailSink, address: str, subject: str) -> list:
    return [
        r.message for r in mail_sink.received if address in r.rcpt_tos and r.message["Subject"] == subject
    ]


def register(stack, mail_sink: MailSink, username: str, *, confirm: bool = True) -> str:
    """A new account over the API; its address confirmed by following the mailed link unless told not to."""
    token = stack.create_user(username)
    address = f"{username}@example.com"
    [mail] = wait_for(
        lambda: mails_to(mail_sink, address, SUBJECT), 30, f"the confirmation mail to {address}"
    )
    if confirm:
        [link] = LINK.findall(mail.get_body(("plain",)).get_content())
        page = requests.get(link, timeout=10)
        assert "Your e-mail address is confirmed." in page.text
    return token


def start(stack, token: str, **params: object) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/api/tasks",
        json={"name": "send_batch_emails", "params": {"days": 1, **params}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def finished(stack, token: str, task_id: str) -> dict:
    def ended() -> dict | None:
        task = requests.get(
            f"{stack.base_url}/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        return task if task["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, 30, f"task {task_id} to finish")


def digests(mail_sink: MailSink) -> list[str]:
    return [
        to
        for r in mail_sink.received
        if r.message["Subject"].startswith("Microblog digest")
        for to in r.rcpt_tos
    ]


def flask(stack, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=ROOT, env=stack.env, check=True, capture_output=True
    )


def test_the_mailed_link_confirms_the_address_and_only_then_the_digest_goes_to_it(live_stack, mail_sink):
    token = register(live_stack, mail_sink, "alice", confirm=False)
    task = finished(live_stack, token, start(live_stack, token).json()["id"])
    assert task["result"]["failed"] == [{"recipient": "alice", "error": NOT_CONFIRMED}]
    assert digests(mail_sink) == []

    [mail] = mails_to(mail_sink, "alice@example.com", SUBJECT)
    [link] = LINK.findall(mail.get_body(("plain",)).get_content())
    assert "Your e-mail address is confirmed." in requests.get(link, timeout=10).text
    task = finished(live_stack, token, start(live_stack, token).json()["id"])
    assert (task["status"], task["result"]["sent"], task["result"]["failed"]) == ("succeeded", 1, [])
    assert digests(mail_sink) == ["alice@example.com"]

    forged = link.replace("/confirm/", "/confirm/x")
    assert "This confirmation link is not valid." in requests.get(forged, timeout=10).text


def test_a_user_cannot_mail_another_user_or_everyone(live_stack, mail_sink):
    register(live_stack, mail_sink, "bob")
    mallory = register(live_stack, mail_sink, "mallory")

    refused = start(live_stack, mallory, recipients=["bob"])
    assert (refused.status_code, refused.json()) == (403, {"error": OTHERS_REFUSED})
    refused = start(live_stack, mallory, recipients=["mallory", "bob"])
    assert refused.status_code == 403

    # No names means "me" for anyone but an operator.
    task = finished(live_stack, mallory, start(live_stack, mallory).json()["id"])
    assert (task["status"], task["result"]["sent"]) == ("succeeded", 1), live_stack.logs()
    assert digests(mail_sink) == ["mallory@example.com"]


def test_an_address_nobody_confirmed_gets_no_digest_even_from_an_operator(live_stack, mail_sink):
    # An outside address: whoever registered it cannot follow the link mailed to it.
    register(live_stack, mail_sink, "outsider", confirm=False)
    olga = register(live_stack, mail_sink, "olga")
    flask(live_stack, "make-admin", "olga")

    task = finished(live_stack, olga, start(live_stack, olga, recipients=["outsider", "olga"]).json()["id"])
    assert task["result"]["failed"] == [{"recipient": "outsider", "error": NOT_CONFIRMED}]
    task = finished(live_stack, olga, start(live_stack, olga).json()["id"])
    assert task["result"] == {"sent": 1, "failed": [], "posts": 0}
    assert digests(mail_sink) == ["olga@example.com", "olga@example.com"]


def test_a_user_hitting_the_mail_volume_limit_gets_429(live_stack, mail_sink):
    mallory = register(live_stack, mail_sink, "mallory")
    for _ in range(MAIL_PER_HOUR):
        r = start(live_stack, mallory)
        assert r.status_code == 202, r.text
        assert finished(live_stack, mallory, r.json()["id"])["status"] == "succeeded"

    over = start(live_stack, mallory)
    assert (over.status_code, over.json()) == (429, {"error": OVER_VOLUME})
    assert digests(mail_sink) == ["mallory@example.com"] * MAIL_PER_HOUR


def test_a_stored_address_with_a_header_in_it_fails_only_itself(live_stack, mail_sink, database_url):
    olga = register(live_stack, mail_sink, "olga")
    register(live_stack, mail_sink, "bob")
    # Stored before registration validated addresses.
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            insert(User.__table__).values(
                username="eve",
                username_key="eve",
                email="eve@example.com\r\nBcc: victim@elsewhere.example",
                password_hash="!",
            )
        )
    engine.dispose()
    flask(live_stack, "make-admin", "olga")
    flask(live_stack, "confirm-email", "eve")

    task = finished(live_stack, olga, start(live_stack, olga).json()["id"])
    assert (task["status"], task["error"]) == ("succeeded", None), live_stack.logs()
    assert task["result"] == {"sent": 2, "failed": [{"recipient": "eve", "error": BAD_ADDRESS}], "posts": 0}
    assert sorted(digests(mail_sink)) == ["bob@example.com", "olga@example.com"]
    assert not any("victim" in to for to in mail_sink.recipients())
