"""The browser's defences on every response (issue 16, finding 8); the page itself is in tests/e2e/test_browser.py."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from tests.conftest import make_user

PATHS = ["/auth/login", "/auth/register", "/static/js/progress.js", "/healthz", "/api/nope", "/nope"]


def directives(policy: str) -> dict[str, str]:
    return {name: value for name, _, value in (d.strip().partition(" ") for d in policy.split(";"))}


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_headers(client, path):
    with client.get(path) as response:
        headers = response.headers
    policy = directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert "ws://localhost" in policy["connect-src"].split()
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers


def test_errors_and_refusals_carry_them_too(client):
    for response in (client.get("/api/tasks/a%00b"), client.post("/api/tasks", data="x" * 2_000_000)):
        assert response.status_code in (400, 413)
        assert response.headers["X-Frame-Options"] == "DENY"


def test_production_adds_hsts(make_app):
    app = make_app(APP_ENV="production")
    response = app.test_client().get("/auth/login", base_url="https://example.com")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "wss://example.com" in response.headers["Content-Security-Policy"]


def test_a_hostile_host_header_adds_nothing_to_the_policy(client):
    response = client.get("/healthz", headers={"Host": "evil; script-src *"})
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"


INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")|\sstyle=|<style|\son[a-z]+=", re.I
)


def test_no_page_has_inline_script_style_or_handler(client, auth, app):
    auth.register()
    with app.app_context():
        user = make_user("root")
        user.is_admin = True
        db.session.commit()
    pages = {}
    for path in ("/auth/login", "/auth/register"):
        pages[path] = client.get(path).get_data(as_text=True)
    auth.login("root")
    for path in ("/", "/tasks", "/search?q=x", "/admin/"):
        response = client.get(path)
        assert response.status_code == 200, path
        pages[path] = response.get_data(as_text=True)
    for path, html in pages.items():
        assert not INLINE.search(html), (path, INLINE.search(html))
