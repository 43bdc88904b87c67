"""The search page (login session) and GET /api/search (bearer token)."""

from __future__ import annotations

import pytest
from flask import Flask

from app import search
from app.extensions import db
from app.models import User
from app.posts import write_post
from app.search_views.routes import PER_PAGE
from tests.conftest import make_user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_and_index(app: Flask, bodies: dict[str, list[str]], build: bool = True) -> None:
    with app.app_context():
        for username, texts in bodies.items():
            user = db.session.query(User).filter_by(username=username).one_or_none() or make_user(username)
            for text in texts:
                write_post(user, text)
        if build:
            search.rebuild(lambda done, total: None)


@pytest.fixture
def logged_in(client, auth):
    auth.register("alice")
    auth.login("alice")
    return client


# --- the page ---


def test_the_page_needs_a_login(client):
    response = client.get("/search?q=rust")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_the_nav_links_to_search_once_logged_in(client, auth):
    assert 'href="/search"' not in client.get("/auth/login").get_data(as_text=True)
    auth.register("alice")
    auth.login("alice")
    assert 'href="/search"' in client.get("/").get_data(as_text=True)


def test_the_page_explains_a_missing_index(app, logged_in):
    post_and_index(app, {"bob": ["Rust is fun"]}, build=False)
    for url in ("/search", "/search?q=rust"):
        response = logged_in.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "The search index has not been built yet" in html
        assert "Rebuild the search index" in html


def test_the_page_shows_results_with_author_and_date(app, logged_in):
    post_and_index(app, {"bob": ["Rust is fun", "Sourdough all weekend"], "carol": ["rust rust rust"]})
    response = logged_in.get("/search?q=rust")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Sourdough" not in html
    assert html.index("rust rust rust") < html.index("Rust is fun")
    assert "carol," in html and "bob," in html
    with app.app_context():
        created = search.search("fun")[0].created_at
    assert f'<time datetime="{created.isoformat()}">{created.strftime("%Y-%m-%d %H:%M")}</time>' in html
    assert 'value="rust"' in html


def test_the_page_escapes_what_it_echoes(app, logged_in):
    post_and_index(app, {"bob": ["<script>alert(1)</script> claims"]})
    html = logged_in.get("/search?q=claims").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; claims" in html
    html = logged_in.get("/search", query_string={"q": "<script>"}).get_data(as_text=True)
    assert "<script>" not in html
    assert "Results for “&lt;script&gt;”" in html


def test_the_page_says_when_nothing_matches(app, logged_in):
    post_and_index(app, {"bob": ["Rust is fun"]})
    html = logged_in.get("/search?q=python").get_data(as_text=True)
    assert "No posts contain all of those words." in html


@pytest.mark.parametrize("q", ['"', "NEAR(", "*", "rust)", "a" * 3000])
def test_the_page_survives_tricky_queries(app, logged_in, q):
    post_and_index(app, {"bob": ["Rust is fun"]})
    assert logged_in.get("/search", query_string={"q": q}).status_code == 200


def test_a_nul_in_the_query_is_refused_with_a_message(app, logged_in):
    # No database can store it, PostgreSQL cannot even compare with it (app/input_guard.py).
    response = logged_in.get("/search", query_string={"q": "rust\x00"})
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


def test_the_page_is_paginated(app, logged_in):
    post_and_index(app, {"bob": [f"bread number {i}" for i in range(PER_PAGE + 5)]})
    first = logged_in.get("/search?q=bread").get_data(as_text=True)
    assert first.count("bread number") == PER_PAGE
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = logged_in.get("/search?q=bread&page=2").get_data(as_text=True)
    assert second.count("bread number") == 5
    assert 'rel="prev"' in second and 'rel="next"' not in second
    for page in ("0", "-3", "x"):
        html = logged_in.get(f"/search?q=bread&page={page}").get_data(as_text=True)
        assert html.count("bread number") == PER_PAGE
    for page in ("3", "9" * 50):
        assert "No more results." in logged_in.get(f"/search?q=bread&page={page}").get_data(as_text=True)


# --- the API ---


def test_the_api_needs_a_token(client):
    response = client.get("/api/search?q=rust")
    assert response.status_code == 401
    assert response.json == {"error": "a valid bearer token is required"}
    assert client.get("/api/search?q=rust", headers=bearer("nonsense")).status_code == 401


def test_the_api_ignores_the_login_session(app, logged_in):
    post_and_index(app, {"bob": ["Rust is fun"]})
    assert logged_in.get("/api/search?q=rust").status_code == 401


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20%20", "?other=rust"])
def test_the_api_needs_a_query(client, token_for, query):
    _, token = token_for("alice")
    response = client.get(f"/api/search{query}", headers=bearer(token))
    assert response.status_code == 400
    assert response.json == {"error": "q is required"}


def test_the_api_says_when_the_index_is_missing(app, client, token_for):
    _, token = token_for("alice")
    post_and_index(app, {"bob": ["Rust is fun"]}, build=False)
    response = client.get("/api/search?q=rust", headers=bearer(token))
    assert response.status_code == 503
    assert response.json == {"error": "the search index has not been built yet; run the reindex_search task"}


def test_the_api_returns_ranked_posts_with_their_author(app, client, token_for):
    _, token = token_for("alice")
    post_and_index(app, {"bob": ["Rust is fun", "Sourdough all weekend"], "carol": ["rust rust rust"]})
    response = client.get("/api/search?q=rust", headers=bearer(token))
    assert response.status_code == 200
    body = response.json
    assert (body["query"], body["limit"], body["offset"]) == ("rust", 20, 0)
    assert [(r["body"], r["username"]) for r in body["results"]] == [
        ("rust rust rust", "carol"),
        ("Rust is fun", "bob"),
    ]
    assert set(body["results"][0]) == {"id", "body", "created_at", "author", "username"}

    page = client.get("/api/search?q=rust&limit=1&offset=1", headers=bearer(token)).json
    assert [r["body"] for r in page["results"]] == ["Rust is fun"]
    assert client.get("/api/search?q=%22NEAR(*", headers=bearer(token)).json["results"] == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("limit=0", "limit must be between 1 and 100"),
        ("limit=101", "limit must be between 1 and 100"),
        ("limit=ten", "limit must be an integer"),
        ("offset=-1", "offset must be between 0 and 1000"),
        ("offset=" + "9" * 50, "offset must be between 0 and 1000"),
    ],
)
def test_the_api_checks_paging(app, client, token_for, query, error):
    _, token = token_for("alice")
    post_and_index(app, {"bob": ["Rust is fun"]})
    response = client.get(f"/api/search?q=rust&{query}", headers=bearer(token))
    assert response.status_code == 400
    assert response.json == {"error": error}
