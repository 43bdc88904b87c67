from datetime import timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.logins import LOGIN_LIFETIME, REMEMBERED_LOGIN_LIFETIME
from app.models import Login, User, utcnow
from tests.conftest import csrf_token


def test_register_login_logout(client, auth, app):
    response = auth.register("alice", "correct horse")
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/login")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        assert user is not None and user.check_password("correct horse")

    assert auth.login("alice", "correct horse").status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and b"alice" in page.data and b"Start" in page.data

    assert auth.logout().status_code == 302
    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_pages_require_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_wrong_password_shows_a_message(client, auth):
    auth.register("alice", "correct horse")
    response = auth.login("alice", "wrong horse")
    assert client.get(response.headers["Location"]).data.count(b"Invalid username or password") == 1


def test_registration_errors_are_shown(client, auth):
    auth.register("alice")
    page = auth.register("alice", email="other@example.com")
    assert page.status_code == 200 and b"That username is taken." in page.data
    page = auth.register("bob", password="short")
    assert b"at least 8 characters" in page.data


def test_forms_require_csrf_token(client, auth):
    assert client.post("/auth/register", data={"username": "x"}).status_code == 400
    auth.register("alice")
    auth.login("alice")
    assert client.post("/tasks", data={"name": "example_long_task"}).status_code == 400
    assert client.post("/auth/logout").status_code == 400


def test_logout_is_post_only(client, auth):
    auth.register("alice")
    auth.login("alice")
    assert client.get("/auth/logout").status_code == 405


def test_login_redirect_stays_on_site(client, auth):
    auth.register("alice")
    page = client.get("/auth/login").get_data(as_text=True)
    from tests.conftest import csrf_token

    for target, expected in (("/?x=1", "/?x=1"), ("//evil.example/", "/"), ("https://evil.example/", "/")):
        client.get("/")  # keep a fresh session per attempt
        response = client.post(
            f"/auth/login?next={target}",
            data={"csrf_token": csrf_token(page), "username": "alice", "password": "correct horse"},
        )
        assert response.headers["Location"] == expected
        auth.logout()
        page = client.get("/auth/login").get_data(as_text=True)


def change_password(client, current="correct horse", new="a new horse battery", repeat=None):
    page = client.get("/auth/password").get_data(as_text=True)
    return client.post(
        "/auth/password",
        data={
            "csrf_token": csrf_token(page),
            "current_password": current,
            "password": new,
            "password2": repeat or new,
        },
    )


def test_password_change_asks_for_the_current_password_and_applies_the_registration_rules(app, client, auth):
    assert client.get("/auth/password").headers["Location"].startswith("/auth/login")
    auth.register("alice")
    auth.login("alice")
    assert client.post("/auth/password", data={"current_password": "correct horse"}).status_code == 400

    assert b"That is not your current password." in change_password(client, current="wrong horse").data
    assert b"at least 8 characters" in change_password(client, new="short").data
    assert change_password(client, repeat="another horse").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(User)).check_password("correct horse")

    response = change_password(client)
    assert response.status_code == 302 and client.get("/").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(User)).check_password("a new horse battery")


def test_a_login_ends_on_the_server_when_its_lifetime_is_over(app, client, auth):
    auth.register("alice")
    auth.login("alice")
    with app.app_context():
        login = db.session.scalar(select(Login))
        assert not login.remember
        assert abs(login.expires_at - utcnow() - LOGIN_LIFETIME) < timedelta(minutes=1)
        assert REMEMBERED_LOGIN_LIFETIME > LOGIN_LIFETIME
        db.session.execute(update(Login).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_a_login_is_stored_as_a_hash_and_ended_at_logout(app, client, auth):
    auth.register("alice")
    auth.login("alice")
    with app.app_context():
        login = db.session.scalar(select(Login))
        assert login.ended_at is None
    cookie = client.get_cookie("session").value
    assert login.key_hash not in cookie
    auth.logout()
    with app.app_context():
        assert db.session.scalar(select(Login)).ended_at is not None
