import logging

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from app.responses import answer
from app.tasks.launcher import QUEUE_UNAVAILABLE

log = logging.getLogger(__name__)


def error_response(status: int, message: str, **details: object) -> Response:
    response = jsonify({"error": message, **details})
    response.status_code = status
    return response


def handle_http_error(exc: HTTPException) -> Response | HTTPException:
    # Registered app-wide so that unmatched /api URLs (no blueprint yet) answer in JSON too.
    if not request.path.startswith("/api/"):
        return exc
    response = error_response(exc.code or 500, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def handle_redis_away(exc: Exception) -> Response | tuple[Response, int]:
    # Anything else that needs Redis while it is away (a cancel, an operator's retry): the
    # same 503 as starting a task, never a 500. Pages and reads go on from the database.
    log.warning("%s %s: Redis unreachable (%s)", request.method, request.path, exc)
    if request.path.startswith("/api/"):
        return error_response(503, QUEUE_UNAVAILABLE)
    return answer(QUEUE_UNAVAILABLE, 503)
