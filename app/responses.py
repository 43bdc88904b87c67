"""Answering a form post from a page: JSON for the page's script, a redirect and a flash otherwise."""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def answer(
    error: str | None, status: int, body: dict[str, Any] | None = None
) -> Response | tuple[Response, int]:
    if wants_json():
        return jsonify(body if error is None else {"error": error}), status
    if error is not None:
        flash(error)
    return redirect(request.referrer or url_for("main.index"))
