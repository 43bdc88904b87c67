from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException


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
