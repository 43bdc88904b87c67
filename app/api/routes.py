from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from app.accounts import AccountTaken, authenticate, register
from app.api.auth import token_required
from app.api.errors import error_response, handle_http_error, handle_redis_away
from app.api.openapi import DOCUMENT
from app.broker import AWAY
from app.channel import end_session
from app.confirmation import RESEND_INTERVAL, Requested, request_confirmation
from app.extensions import broker, db
from app.posts import PostInvalid, user_posts, write_post
from app.ratelimits import login_limited, register_limited, start_limited
from app.replay import catch_up
from app.sansio.identity import IdentityError
from app.sansio.params import Param, ParamError, validate
from app.sansio.protocol import TOKEN_REVOKED, parse_last_seq
from app.search import IndexMissing, search
from app.tasks.access import cancel, owned_task, recent_tasks, result_download
from app.tasks.catalogue import CATALOGUE
from app.tasks.errors import NotPermitted, OverLimit
from app.tasks.launcher import (
    QUEUE_UNAVAILABLE,
    QueueUnavailable,
    TaskLimit,
    TooManyTasks,
    UnknownTaskType,
    start_task,
)

bp = Blueprint("api", __name__)
bp.app_errorhandler(HTTPException)(handle_http_error)
for _away in AWAY:
    bp.app_errorhandler(_away)(handle_redis_away)

SEARCH_PAGING = (
    Param("limit", int, default=20, minimum=1, maximum=100),
    Param("offset", int, default=0, minimum=0, maximum=1000),
)


class _BadRequest(Exception):
    pass


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    return body


@bp.errorhandler(_BadRequest)
def _bad_request(exc: _BadRequest) -> Response:
    return error_response(400, str(exc))


@bp.route("/openapi.json", methods=["GET"])
def openapi_document() -> Response:
    """This API as an OpenAPI 3.1 document (app/api/openapi.py)."""
    return jsonify(DOCUMENT)


@bp.route("/users", methods=["POST"])
@register_limited
def create_user() -> Response | tuple[Response, int]:
    body = _json_body()
    fields = {}
    for field in ("username", "email", "password"):
        value = body.get(field)
        if not isinstance(value, str) or not value.strip():
            raise _BadRequest(f"{field} is required")
        fields[field] = value
    try:
        user = register(**fields)
    except IdentityError as exc:
        raise _BadRequest(str(exc)) from None
    except AccountTaken as exc:
        return error_response(409, str(exc))
    # Queued or not, the account exists; POST /api/confirmation asks again.
    request_confirmation(user)
    return jsonify(user.to_dict()), 201


@bp.route("/confirmation", methods=["POST"])
@token_required
def resend_confirmation() -> tuple[Response, int] | Response:
    """E-mail the caller a new link to confirm their address."""
    if g.api_user.email_confirmed_at is not None:
        return error_response(409, "your e-mail address is already confirmed")
    outcome = request_confirmation(g.api_user)
    if outcome is Requested.TOO_SOON:
        response = error_response(429, f"a confirmation e-mail was sent less than {RESEND_INTERVAL} s ago")
        response.headers["Retry-After"] = str(RESEND_INTERVAL)
        return response
    if outcome is Requested.UNAVAILABLE:
        return error_response(503, QUEUE_UNAVAILABLE)
    return jsonify({"confirmation_sent": True}), 202


@bp.route("/tokens", methods=["POST"])
@login_limited
def create_token() -> Response | tuple[Response, int]:
    auth = request.authorization
    user = None
    if auth is not None and auth.type == "basic" and auth.username and auth.password:
        user = authenticate(auth.username, auth.password)
    if user is None:
        response = error_response(401, "valid username and password required (HTTP Basic)")
        response.headers["WWW-Authenticate"] = 'Basic realm="api"'
        return response
    raw, token = user.issue_token(current_app.config["TOKEN_TTL"])
    db.session.commit()
    return jsonify({"token": raw, "expires_at": token.expires_at.isoformat()}), 201


@bp.route("/tokens", methods=["DELETE"])
@token_required
def revoke_token() -> tuple[str, int]:
    """Revoke the token this request carries; sockets that connected with it are disconnected."""
    token = g.api_token
    db.session.delete(token)
    db.session.commit()
    end_session(broker.redis, broker.keys.channel, token.user_id, token.token_hash, TOKEN_REVOKED)
    return "", 204


@bp.route("/notifications", methods=["GET"])
@token_required
def list_notifications() -> Response:
    """The socket's events, for clients that cannot keep a socket open: poll with ``since``."""
    since = request.args.get("since")
    try:
        last_seq = parse_last_seq(int(since)) if since is not None else None
    except ValueError:
        raise _BadRequest("since must be an integer >= 0") from None
    result = catch_up(g.api_user, last_seq, current_app.config["REPLAY_LIMIT"])
    return jsonify(
        {"events": [{"event": name, "data": data} for name, data in result.events], "last_seq": result.floor}
    )


@bp.route("/posts", methods=["POST"])
@token_required
def create_post() -> tuple[Response, int]:
    body = _json_body().get("body")
    try:
        post = write_post(g.api_user, body)
    except PostInvalid as exc:
        raise _BadRequest(str(exc)) from None
    return jsonify(post.to_dict()), 201


@bp.route("/posts", methods=["GET"])
@token_required
def list_posts() -> Response:
    return jsonify([p.to_dict() for p in user_posts(g.api_user.id)])


@bp.route("/search", methods=["GET"])
@token_required
def search_posts() -> Response:
    q = request.args.get("q", "").strip()
    if not q:
        raise _BadRequest("q is required")
    try:
        paging = validate(
            SEARCH_PAGING, {p.name: request.args[p.name] for p in SEARCH_PAGING if p.name in request.args}
        )
    except ParamError as exc:
        raise _BadRequest(f"{exc.field} {exc.reason}") from None
    try:
        posts = search(q, **paging)
    except IndexMissing:
        return error_response(503, "the search index has not been built yet; run the reindex_search task")
    results = [{**p.to_dict(), "username": p.author.username} for p in posts]
    return jsonify({"query": q, **paging, "results": results})


@bp.route("/task-types", methods=["GET"])
@token_required
def list_task_types() -> Response:
    return jsonify([t.describe() for t in CATALOGUE.values()])


@bp.route("/tasks", methods=["POST"])
@token_required
@start_limited
def create_task() -> tuple[Response, int] | Response:
    body = _json_body()
    name = body.get("name")
    if not isinstance(name, str):
        raise _BadRequest("name is required")
    try:
        task = start_task(g.api_user, name, body.get("params"))
    except UnknownTaskType:
        return error_response(400, f"unknown task type {name!r}")
    except ParamError as exc:
        return error_response(400, f"{exc.field} {exc.reason}")
    except NotPermitted as exc:
        return error_response(403, str(exc))
    except OverLimit as exc:
        return error_response(429, str(exc))
    except TooManyTasks as exc:
        return error_response(429, str(exc))
    except TaskLimit as exc:
        return error_response(409, str(exc), running_task_id=exc.running.id if exc.running else None)
    except QueueUnavailable:
        return error_response(503, QUEUE_UNAVAILABLE)
    response = jsonify(task.to_dict())
    response.headers["Location"] = url_for("api.get_task", task_id=task.id)
    return response, 202


@bp.route("/tasks", methods=["GET"])
@token_required
def list_tasks() -> Response:
    return jsonify([t.to_dict() for t in recent_tasks(g.api_user.id, limit=100)])


@bp.route("/tasks/<task_id>", methods=["GET"])
@token_required
def get_task(task_id: str) -> Response:
    task = owned_task(task_id, g.api_user.id)
    # The traceback is the owner's to read, over the API; it is never pushed over the socket.
    return jsonify({**task.to_dict(), "traceback": task.traceback})


@bp.route("/tasks/<task_id>/cancel", methods=["POST"])
@token_required
def cancel_task(task_id: str) -> tuple[Response, int]:
    task = owned_task(task_id, g.api_user.id)
    ended = cancel(task)
    return jsonify(task.to_dict()), 200 if ended else 202


@bp.route("/tasks/<task_id>/result", methods=["GET"])
@token_required
def task_result(task_id: str) -> Response:
    return result_download(owned_task(task_id, g.api_user.id))
