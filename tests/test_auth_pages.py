from sqlalchemy import select

from app.extensions import db
from app.models import User


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
