"""The browser's defences, on every response: what a page may load, who may frame it, what it leaks.

The pages load only their own scripts and styles (no inline script, style or handler), so a
strict policy costs nothing; a framed page could be clicked through by another site (one click
on a framed "Start" runs a task), so no site may frame any page.
"""

from __future__ import annotations

import re

from flask import Flask, request
from werkzeug.wrappers import Response

# One year, the value browsers' preload lists ask for.
HSTS_MAX_AGE = 365 * 24 * 3600
# The Host header is the client's to write: only a host[:port] goes into the policy.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")


def content_security_policy(host: str, *, secure: bool) -> str:
    websocket = f" {'wss' if secure else 'ws'}://{host}" if _HOST.fullmatch(host) else ""
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self'",
        # 'self' covers ws(s):// of the page's own host only in newer browsers: named as well.
        "connect-src": f"'self'{websocket}",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def init_app(app: Flask) -> None:
    production = app.config.get("APP_ENV") == "production"

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        policy = content_security_policy(request.host, secure=request.is_secure)
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if production:
            headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}; includeSubDomains")
        return response
