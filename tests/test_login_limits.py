"""Password guessing is bounded and tells nothing: rate limits per account and per address, in Redis,
on the login form and /api/tokens; the same hashing work for a name that does not exist.

Before these, 200 wrong passwords drew no refusal, and an unknown name answered without a hash.
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from app import blocking
from app.extensions import db
from app.models import User
from app.ratelimits import (
    LOGINS_PER_ACCOUNT,
    LOGINS_PER_ADDRESS,
    REGISTRATIONS_PER_ADDRESS,
    TASK_STARTS_PER_USER,
)
from tests.conftest import AuthActions, csrf_token, make_user
from tests.support import free_port


def per_minute(limit: str) -> int:
    count, _, period = limit.partition(" per ")
    assert period == "minute"
    return int(count)


ACCOUNT = per_minute(LOGINS_PER_ACCOUNT)
ADDRESS = per_minute(LOGINS_PER_ADDRESS)
STARTS = per_minute(TASK_STARTS_PER_USER)


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def from_address(address: str) -> dict[str, str]:
    return {"REMOTE_ADDR": address}


@pytest.fixture
def alice(app):
    with app.app_context():
        make_user("alice")


def api_login(client, username: str, password: str, address: str = "198.51.100.1"):
    return client.post("/api/tokens", headers=basic(username, password), environ_base=from_address(address))


def form_login(client, username: str, password: str, address: str = "198.51.100.1"):
    page = client.get("/auth/login").get_data(as_text=True)
    return client.post(
        "/auth/login",
        data={"csrf_token": csrf_token(page), "username": username, "password": password},
        environ_base=from_address(address),
    )


def test_api_guesses_on_one_account_are_refused_from_any_address(client, alice, redis, app):
    for n in range(ACCOUNT):
        assert api_login(client, "alice", f"guess {n}", address=f"203.0.113.{n}").status_code == 401
    # Another address, another spelling of the name, and even the right password: the account waits.
    response = api_login(client, "ALICE", "correct horse", address="192.0.2.99")
    assert response.status_code == 429
    assert response.json == {"error": "Too many login attempts; try again in a minute."}
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # Counted in the deployment's Redis, under its namespace.
    assert redis.keys(f"*{app.config['TASK_QUEUE']}:login-account:*")


def test_form_and_api_share_the_account_count(client, alice):
    for n in range(ACCOUNT // 2):
        assert api_login(client, "alice", f"guess {n}", address=f"203.0.113.{n}").status_code == 401
    for n in range(ACCOUNT - ACCOUNT // 2):
        response = form_login(client, "alice", f"guess {n}", address=f"203.0.114.{n}")
        assert response.status_code == 302
    response = form_login(client, "alice", "correct horse", address="192.0.2.98")
    assert response.status_code == 429
    assert b"Too many login attempts; try again in a minute." in response.data
    assert "Retry-After" in response.headers


def test_one_address_guessing_many_accounts_is_refused(client, app):
    for n in range(ADDRESS):
        assert api_login(client, f"user{n}", "guess").status_code == 401
    response = api_login(client, "someone-else", "guess")
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    # Another client is not held up.
    assert api_login(client, "user0", "guess", address="192.0.2.7").status_code == 401


def test_the_form_limits_one_address_too(client):
    for n in range(ADDRESS):
        assert form_login(client, f"user{n}", "guess").status_code == 302
    response = form_login(client, "someone-else", "guess")
    assert response.status_code == 429
    assert b"Too many login attempts" in response.data


def test_a_real_user_is_not_limited(client, alice, auth):
    for _ in range(3):
        assert api_login(client, "alice", "correct horse").status_code == 201
    assert AuthActions(client).login("alice").status_code == 302


def test_two_deployments_on_one_redis_count_apart(make_app, redis_url):
    # One database for both is enough here: the counters are what must stay apart.
    first, second = make_app(TASK_QUEUE="deployment-a"), make_app(TASK_QUEUE="deployment-b")
    with first.app_context():
        db.create_all()
        make_user("alice")
    one, other = first.test_client(), second.test_client()
    for n in range(ACCOUNT):
        assert api_login(one, "alice", f"guess {n}", address=f"203.0.113.{n}").status_code == 401
    assert api_login(one, "alice", "correct horse").status_code == 429
    assert api_login(other, "alice", "correct horse").status_code == 201


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """The password checks the app makes, by the hash each one was against (the work still runs)."""
    checked: list[str] = []
    compute = blocking.compute

    def counting(fn, *args, **kwargs):
        if fn is check_password_hash:
            checked.append(args[0])
        return compute(fn, *args, **kwargs)

    monkeypatch.setattr(blocking, "compute", counting)
    return checked


@pytest.mark.parametrize("login", [api_login, form_login])
def test_an_unknown_name_costs_the_same_hash_as_a_wrong_password(client, alice, hashes, app, login):
    login(client, "alice", "wrong horse")
    login(client, "nobody", "wrong horse")
    # A name no account can have (a zero-width space) is looked for and hashed like any other.
    login(client, "b\u200bob", "wrong horse")
    assert len(hashes) == 3, "each attempt checks one password hash"
    # NUL is refused at the door for every name alike, before any look-up: it tells nothing either.
    assert login(client, "b\x00ob", "wrong horse").status_code == 400
    assert len(hashes) == 3
    with app.app_context():
        from app.models import User

        real = db.session.get(User, 1).password_hash
    # The stand-in has the method and cost of a real hash: the same work, not just a call.
    method = real.split("$", 1)[0]
    assert hashes[0] == real and all(h.split("$", 1)[0] == method for h in hashes[1:])


def test_task_starts_are_limited_per_user(client, auth, app):
    auth.register("alice")
    auth.login("alice")
    token = csrf_token(client.get("/").get_data(as_text=True))
    statuses = []
    for _ in range(STARTS):
        response = client.post(
            "/tasks",
            data={"csrf_token": token, "name": "example_long_task", "steps": "1", "delay": "0"},
            headers={"Accept": "application/json"},
        )
        statuses.append(response.status_code)
    # The cap on active tasks refuses some of these (409); every start counts toward the rate.
    assert set(statuses) <= {202, 409} and 202 in statuses
    response = client.post(
        "/tasks",
        data={"csrf_token": token, "name": "example_long_task", "steps": "1", "delay": "0"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 429
    assert response.json == {"error": "You are starting tasks too fast; wait a minute and try again."}
    assert "Retry-After" in response.headers
    # The API shares the user's count.
    login = client.post("/api/tokens", headers=basic("alice", "correct horse"))
    api = client.post(
        "/api/tasks",
        json={"name": "example_long_task", "params": {"steps": 1, "delay": 0}},
        headers={"Authorization": f"Bearer {login.json['token']}"},
    )
    assert api.status_code == 429
    assert api.json == {"error": "You are starting tasks too fast; wait a minute and try again."}
    # Another user is not held up.
    other = client.post(
        "/api/users", json={"username": "bob", "email": "bob@example.com", "password": "correct horse"}
    )
    assert other.status_code == 201
    bob = client.post("/api/tokens", headers=basic("bob", "correct horse")).json["token"]
    started = client.post(
        "/api/tasks",
        json={"name": "example_long_task", "params": {"steps": 1, "delay": 0}},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert started.status_code == 202


def test_behind_a_trusted_proxy_each_client_counts_apart(make_app):
    app = make_app(TRUSTED_PROXIES=1)
    with app.app_context():
        db.create_all()
    client = app.test_client()

    def via_proxy(client_address: str, username: str):
        # Every request comes from the proxy's address; the proxy names the client.
        return client.post(
            "/api/tokens",
            headers={**basic(username, "guess"), "X-Forwarded-For": client_address},
            environ_base=from_address("10.0.0.2"),
        )

    for n in range(ADDRESS):
        assert via_proxy("203.0.113.5", f"user{n}").status_code == 401
    assert via_proxy("203.0.113.5", "someone-else").status_code == 429
    assert via_proxy("203.0.113.6", "someone-else").status_code == 401


# Last in the file: the process's limiter counts in memory until it sees Redis again.
def test_registrations_from_one_address_are_bounded_on_the_form_and_the_api_together(client, app):
    # Each registration mails a link to the address given: unbounded, any inbox could be flooded.
    count, _, period = REGISTRATIONS_PER_ADDRESS.partition(" per ")
    assert period == "hour"
    address = from_address("198.51.100.7")
    for n in range(int(count)):
        body = {"username": f"user{n}", "email": f"user{n}@example.com", "password": "correct horse"}
        assert client.post("/api/users", json=body, environ_base=address).status_code == 201
    response = client.post(
        "/api/users",
        json={"username": "one-more", "email": "victim@example.com", "password": "correct horse"},
        environ_base=address,
    )
    assert response.status_code == 429
    assert response.json == {
        "error": "Too many accounts were created from your address; try again in an hour."
    }
    page = client.get("/auth/register").get_data(as_text=True)
    response = client.post(
        "/auth/register",
        data={
            "csrf_token": csrf_token(page),
            "username": "form-one",
            "email": "victim2@example.com",
            "password": "correct horse",
            "password2": "correct horse",
        },
        environ_base=address,
    )
    assert response.status_code == 429
    assert b"Too many accounts were created from your address" in response.data
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == int(count)
    # Another address is not held back.
    other = {"username": "elsewhere", "email": "elsewhere@example.com", "password": "correct horse"}
    assert client.post("/api/users", json=other, environ_base=from_address("198.51.100.8")).status_code == 201


# Last in the file: the process's limiter counts in memory after it has seen Redis away.
def test_logins_go_on_and_stay_limited_while_redis_is_away(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        db.create_all()
        make_user("alice")
    client = app.test_client()
    assert api_login(client, "alice", "correct horse").status_code == 201
    for n in range(ACCOUNT - 1):
        assert api_login(client, "alice", f"guess {n}").status_code == 401
    assert api_login(client, "alice", "correct horse").status_code == 429
