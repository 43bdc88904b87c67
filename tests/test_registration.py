"""One identity rule set on both doors: POST /api/users and the register form refuse the same input.

Each case here was accepted by the API (or gave a 500) before the rules were shared.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import accounts
from app.extensions import db
from app.models import User
from tests.test_identity import HOSTILE_NAMES

MULTI_ADDRESS = 'relay@ex.com, ext1@victim.example, "CEO" <ext3@victim.example>'


def api_register(client, username="alice", email=None, password="correct horse"):
    return client.post(
        "/api/users",
        json={"username": username, "email": email or "alice@example.com", "password": password},
    )


def usernames(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(User.username)))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_usernames_are_refused_by_the_api(client, app, name):
    response = api_register(client, name)
    assert response.status_code == 400
    # A NUL is refused at the door, before the identity rules (app/input_guard.py).
    expected = "must not contain NUL" if "\x00" in name else "username may use only letters"
    assert expected in response.json["error"]
    assert usernames(app) == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_usernames_are_refused_by_the_form(auth, app, name):
    page = auth.register(name, email="alice@example.com")
    if "\x00" in name:
        # Refused at the door, with a message on the page (app/input_guard.py).
        assert page.status_code == 400
        assert b"NUL" in page.data
    else:
        assert page.status_code == 200
        assert b"Username may use only letters" in page.data
    assert usernames(app) == []


@pytest.mark.parametrize("variant", ["Bob", "BOB", "\uff42\uff4f\uff42"])
def test_a_case_or_width_variant_of_a_taken_name_is_a_conflict(client, auth, app, variant):
    assert api_register(client, "bob", "bob@example.com").status_code == 201
    response = api_register(client, variant, "other@example.com")
    assert response.status_code == 409
    assert response.json == {"error": "username is already registered"}
    page = auth.register(variant, email="other2@example.com")
    assert b"That username is taken." in page.data
    assert usernames(app) == ["bob"]


@pytest.mark.parametrize(
    ("password", "message"),
    [("password", "too common"), ("Password1", "too common"), ("short", "at least 8 characters")],
)
def test_weak_passwords_are_refused_on_both(client, auth, app, password, message):
    response = api_register(client, password=password)
    assert response.status_code == 400 and message in response.json["error"]
    page = auth.register("alice", password=password)
    assert page.status_code == 200 and message.encode() in page.data
    assert usernames(app) == []


def test_a_list_of_addresses_is_refused_on_both(client, auth, app):
    response = api_register(client, email=MULTI_ADDRESS)
    assert response.status_code == 400
    assert response.json["error"].startswith("email is not a valid address")
    page = auth.register("alice", email=MULTI_ADDRESS)
    assert page.status_code == 200 and b"Email is not a valid address" in page.data
    assert usernames(app) == []


def test_an_upper_case_copy_of_an_email_is_refused_on_both(client, auth, app):
    assert api_register(client, "alice", "alice@example.com").status_code == 201
    response = api_register(client, "alice2", "ALICE@Example.com")
    assert response.status_code == 409
    assert response.json == {"error": "email is already registered"}
    page = auth.register("alice3", email="Alice@EXAMPLE.com")
    assert page.status_code == 200 and b"That email is already registered." in page.data
    with app.app_context():
        assert list(db.session.scalars(select(User.email))) == ["alice@example.com"]


def test_the_address_is_stored_lower_case(client, app):
    assert api_register(client, "Alice", "Alice@Example.COM").status_code == 201
    with app.app_context():
        user = db.session.scalar(select(User))
        assert (user.username, user.email) == ("Alice", "alice@example.com")


@pytest.fixture
def check_misses_once(monkeypatch):
    """What a concurrent registration does: the other row is committed after this request's
    check found nothing. The check is made to miss once, so the commit meets the unique index;
    the returned list holds what each check answered."""

    def install() -> list[str | None]:
        real = accounts.taken
        calls: list[str | None] = []

        def taken_after_the_check(*args: str) -> str | None:
            calls.append(real(*args) if calls else None)
            return calls[-1]

        monkeypatch.setattr(accounts, "taken", taken_after_the_check)
        return calls

    return install


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [("Carol", "c2@example.com", "username"), ("c2", "CAROL@example.com", "email")],
)
def test_a_duplicate_that_slips_past_the_check_is_a_conflict_not_a_500(
    client, app, check_misses_once, username, email, field
):
    assert api_register(client, "carol", "carol@example.com").status_code == 201
    calls = check_misses_once()
    response = api_register(client, username, email)
    assert response.status_code == 409
    assert response.json == {"error": f"{field} is already registered"}
    assert usernames(app) == ["carol"]
    assert calls == [None, field], "the commit, not the check, found the duplicate"


def test_a_duplicate_that_slips_past_the_form_check_is_a_form_error(
    client, auth, app, monkeypatch, check_misses_once
):
    from app.auth import forms

    assert api_register(client, "carol", "carol@example.com").status_code == 201
    # Both checks miss, as they do for a registration committed between the check and the commit.
    monkeypatch.setattr(forms, "username_taken", lambda _name: False)
    calls = check_misses_once()
    page = auth.register("CAROL", email="c2@example.com")
    assert page.status_code == 200 and b"That username is taken." in page.data
    assert usernames(app) == ["carol"]
    assert calls == [None, "username"]
