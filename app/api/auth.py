"""Bearer-token authentication for the JSON API (cookies are never accepted here)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from app.api.errors import error_response
from app.models import User


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = User.from_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if user is None:
            response = error_response(401, "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        g.api_user = user
        return view(*args, **kwargs)

    return wrapper
