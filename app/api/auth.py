"""Bearer-token authentication for the JSON API (cookies are never accepted here)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from app.api.errors import error_response
from app.models import Token


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        token = Token.find(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
        if token is None:
            response = error_response(401, "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        g.api_token, g.api_user = token, token.user
        return view(*args, **kwargs)

    return wrapper
