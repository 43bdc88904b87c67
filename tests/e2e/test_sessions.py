"""Sessions that really end, against a real node: browser logins, remember-me cookies, tokens, their sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests
import socketio

from tests.conftest import csrf_token
from tests.e2e.test_resume import Recorder
from tests.support import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse"


class Browser:
    """A browser as the server sees one: a cookie jar, the login and logout forms, a socket with its cookies."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def login(self, username: str, password: str = PASSWORD, *, remember: bool = False) -> requests.Response:
        page = self.http.get(f"{self.base_url}/auth/login", timeout=10).text
        data = {"csrf_token": csrf_token(page), "username": username, "password": password}
        if remember:
            data["remember_me"] = "y"
        return self.http.post(f"{self.base_url}/auth/login", data=data, allow_redirects=False, timeout=10)

    def logout(self) -> None:
        page = self.http.get(f"{self.base_url}/", timeout=10).text
        r = self.http.post(
            f"{self.base_url}/auth/logout",
            data={"csrf_token": csrf_token(page)},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 302, r.text

    def opens_index(self) -> bool:
        r = self.http.get(f"{self.base_url}/", allow_redirects=False, timeout=10)
        assert r.status_code == 200 or r.headers["Location"].startswith("/auth/login"), r.status_code
        return r.status_code == 200

    def socket(self) -> Recorder:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        client = Recorder(self.base_url, {}, headers={"Cookie": cookies})
        client.until(lambda name, data: name == "welcome")
        return client

    @classmethod
    def with_cookie(cls, base_url: str, name: str, value: str) -> Browser:
        """Another browser that holds only a copy of one cookie (a stolen one, or one restored from disk)."""
        browser = cls(base_url)
        browser.http.cookies.set(name, value)
        return browser


def signed_in(live_stack, username: str, *, remember: bool = False) -> tuple[Browser, requests.Response]:
    browser = Browser(live_stack.base_url)
    response = browser.login(username, remember=remember)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text
    return browser, response


def ended(client: Recorder, reason: str) -> None:
    got = client.until(lambda name, data: name == "session_ended")
    assert got[-1] == ("session_ended", {"reason": reason})
    wait_for(lambda: not client.sio.connected, 10, "the server to disconnect the socket")


def test_logging_out_a_session_restored_from_remember_me_ends_its_socket(live_stack):
    live_stack.create_user("alice")
    first, _ = signed_in(live_stack, "alice", remember=True)
    # The browser was closed: only the remember-me cookie is left, and it signs the user in again.
    restored = Browser.with_cookie(
        live_stack.base_url, "remember_token", first.http.cookies["remember_token"]
    )
    assert restored.opens_index()
    client = restored.socket()
    try:
        restored.logout()
        ended(client, "logged_out")
    finally:
        client.sio.disconnect()
    assert not restored.opens_index()


def test_a_session_cookie_copied_before_logout_opens_neither_the_page_nor_a_socket(live_stack):
    live_stack.create_user("alice")
    browser, _ = signed_in(live_stack, "alice")
    thief = Browser.with_cookie(live_stack.base_url, "session", browser.http.cookies["session"])
    assert thief.opens_index()
    browser.logout()

    assert not thief.opens_index()
    with pytest.raises(socketio.exceptions.ConnectionError):
        thief.socket()


def test_remember_me_cookies_differ_per_login_carry_samesite_and_die_at_logout(live_stack):
    live_stack.create_user("alice")
    first, first_response = signed_in(live_stack, "alice", remember=True)
    second, second_response = signed_in(live_stack, "alice", remember=True)
    one, two = first.http.cookies["remember_token"], second.http.cookies["remember_token"]
    assert one != two

    for response in (first_response, second_response):
        header = next(
            h for h in response.raw.headers.getlist("Set-Cookie") if h.startswith("remember_token=")
        )
        attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")[1:]}
        assert attributes["samesite"].strip().lower() == "samesite=lax"
        assert "httponly" in attributes
        expires = parsedate_to_datetime(attributes["expires"].split("=", 1)[1])
        assert datetime.now(UTC) + timedelta(days=29) < expires < datetime.now(UTC) + timedelta(days=31)

    first.logout()
    assert not Browser.with_cookie(live_stack.base_url, "remember_token", one).opens_index()
    assert Browser.with_cookie(live_stack.base_url, "remember_token", two).opens_index()


@pytest.mark.parametrize("live_stack_env", [{"TOKEN_TTL": "3"}])
def test_a_token_socket_is_closed_when_its_token_expires(live_stack):
    token = live_stack.create_user("alice")
    client = Recorder(live_stack.base_url, {"token": token})
    try:
        client.until(lambda name, data: name == "welcome")
        ended(client, "expired")
    finally:
        client.sio.disconnect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        Recorder(live_stack.base_url, {"token": token})


def test_a_password_change_ends_every_other_login_token_and_socket_but_not_its_own(live_stack):
    token = live_stack.create_user("alice")
    token_socket = Recorder(live_stack.base_url, {"token": token})
    token_socket.until(lambda name, data: name == "welcome")
    other, _ = signed_in(live_stack, "alice", remember=True)
    other_remember = other.http.cookies["remember_token"]
    other_socket = other.socket()
    me, _ = signed_in(live_stack, "alice")
    my_socket = me.socket()
    try:
        page = me.http.get(f"{live_stack.base_url}/auth/password", timeout=10).text
        r = me.http.post(
            f"{live_stack.base_url}/auth/password",
            data={
                "csrf_token": csrf_token(page),
                "current_password": PASSWORD,
                "password": "a new horse battery",
                "password2": "a new horse battery",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 302 and r.headers["Location"] == "/", r.text

        ended(other_socket, "password_changed")
        ended(token_socket, "password_changed")
        assert not other.opens_index()
        assert not Browser.with_cookie(live_stack.base_url, "remember_token", other_remember).opens_index()
        api = requests.get(
            f"{live_stack.base_url}/api/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert api.status_code == 401

        # This login carries on, its socket included: the next thing it hears is its own logout.
        assert me.opens_index()
        me.logout()
        ended(my_socket, "logged_out")
    finally:
        for client in (token_socket, other_socket, my_socket):
            client.sio.disconnect()

    assert Browser(live_stack.base_url).login("alice").headers["Location"].startswith("/auth/login")
    assert Browser(live_stack.base_url).login("alice", "a new horse battery").headers["Location"] == "/"
