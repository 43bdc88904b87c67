"""Bad input is refused at the door with a 400 (JSON on /api) instead of a 500 deep in a query.

Every request's path, query, form fields, headers, cookies and HTTP Basic credentials are
checked for text no database can store (``app.sansio.inputs``); JSON bodies are parsed with
a depth bound by the app's JSON provider; bodies are capped by ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

from app.sansio.inputs import InputRefused, check_text, load_json

# The largest body any form or API call needs is a post or a task's parameters (a few KiB);
# anything bigger is answered 413 before it is read.
MAX_REQUEST_BYTES = 1024 * 1024


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with bodies refused (400) when too deep or holding text no database stores."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return load_json(s, **kwargs)
        except InputRefused as exc:
            # Not a ValueError once here: ``get_json(silent=True)`` must not turn it into None.
            raise BadRequest(str(exc)) from None


def init_app(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = app.config.get("MAX_CONTENT_LENGTH") or MAX_REQUEST_BYTES
    # First of all before-request functions: nothing may reach the database before this ran.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unstorable_text)


def _request_text() -> Iterator[tuple[str, str]]:
    yield "the URL path", request.path
    for where, pairs in (("a query parameter", request.args), ("a form field", request.form)):
        for key, value in pairs.items(multi=True):
            yield where, key
            yield where, value
    for key, value in request.headers.items():
        yield "a header", key
        yield "a header", value
    for key, value in request.cookies.items(multi=True):
        yield "a cookie", key
        yield "a cookie", value
    auth = request.authorization
    if auth is not None:
        for value in (auth.username, auth.password, auth.token):
            if value:
                yield "the Authorization header", value


def refuse_unstorable_text() -> None:
    try:
        check_text(_request_text())
    except InputRefused as exc:
        raise BadRequest(str(exc)) from None
