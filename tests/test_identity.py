"""The identity rules (app/sansio/identity.py), as pure functions and as properties over any input."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sansio.identity import (
    IdentityError,
    clean_email,
    clean_password,
    clean_username,
    common_passwords,
    username_key,
)

# A shared CI machine's pauses are not this code's speed.
UNTIMED = settings(deadline=None)

ALLOWED = set(string.ascii_letters + string.digits + "._-")

# The finding's names: markup, a NUL, a Cyrillic o, a zero-width space; and other invisibles.
HOSTILE_NAMES = ["<script>", "b\x00ob", "b\u043eb", "bob\u200b", "bo\u00adb", "bob\u202e", "a b", "b\nob"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_with_a_message(name):
    with pytest.raises(IdentityError, match="letters a-z and A-Z, digits") as caught:
        clean_username(name)
    assert caught.value.field == "username"


def test_compatibility_forms_become_their_ascii_name():
    assert clean_username("\uff42\uff4f\uff42") == "bob"  # full-width
    assert username_key("Bob") == username_key("bob") == username_key("\uff22\uff4f\uff42")


@pytest.mark.parametrize(
    "address",
    [
        'relay@ex.com, ext1@victim.example, "CEO" <ext3@victim.example>',
        '"CEO" <ext3@victim.example>',
        "a@b.example\r\nBcc: c@d.example",
        "nope",
        "a@localhost",
    ],
)
def test_an_email_is_exactly_one_address(address):
    with pytest.raises(IdentityError, match="email is not a valid address"):
        clean_email(address)


def test_email_is_stored_lower_case():
    assert clean_email("  Alice@Example.COM ") == "alice@example.com"


@pytest.mark.parametrize("password", ["password", "Password", "12345678", "qwertyuiop", "short", ""])
def test_weak_passwords_are_refused(password):
    with pytest.raises(IdentityError, match="password"):
        clean_password(password)


def test_the_shipped_list_is_the_common_passwords():
    common = common_passwords()
    assert len(common) > 19_000 and {"password", "123456", "qwerty"} <= common
    assert clean_password("correct horse") == "correct horse"


@UNTIMED
@given(st.text(max_size=80))
def test_every_accepted_name_is_normalised_ascii_and_keyed_by_case(raw):
    try:
        name = clean_username(raw)
    except IdentityError as exc:
        assert str(exc)
        return
    assert set(name) <= ALLOWED and 1 <= len(name) <= 64
    assert name == unicodedata.normalize("NFKC", name)
    # Cleaning is idempotent, and a name's key is its lower-case form: one name per spelling.
    assert clean_username(name) == name
    assert username_key(name) == name.lower()


@UNTIMED
@given(st.text(alphabet=st.sampled_from(sorted(ALLOWED)), min_size=1, max_size=64))
def test_every_name_of_the_documented_set_is_accepted(name):
    assert clean_username(name) == name
    assert clean_username(name.upper()) != name or name == name.upper()
    assert username_key(name.upper()) == username_key(name)


@UNTIMED
@given(st.text(max_size=40), st.sampled_from(["\u200b", "\x00", "\u043e", "<", "\u202e", "\ufeff"]))
def test_no_name_with_an_invisible_or_foreign_character_is_accepted(raw, bad):
    with pytest.raises(IdentityError):
        clean_username(raw + bad)
