from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_required
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.auth.forms import LogoutForm
from app.health import readiness
from app.posts import PostInvalid, user_posts, write_post
from app.progress import payload
from app.ratelimits import start_limited
from app.responses import answer
from app.sansio.params import ParamError
from app.tasks.access import cancel, owned_task, recent_tasks, result_download
from app.tasks.catalogue import CATALOGUE
from app.tasks.errors import NotPermitted, OverLimit
from app.tasks.launcher import QUEUE_UNAVAILABLE, QueueUnavailable, TaskLimit, UnknownTaskType, start_task

bp = Blueprint("main", __name__)

RECENT_ON_INDEX = 10
HISTORY_LIMIT = 500


@bp.app_context_processor
def inject_logout_form() -> dict[str, LogoutForm]:
    return {"logout_form": LogoutForm()}


@bp.route("/")
@login_required
def index() -> str:
    tasks = [payload(t) for t in recent_tasks(current_user.id, RECENT_ON_INDEX)]
    posts = user_posts(current_user.id, RECENT_ON_INDEX)
    return render_template("main/index.html", task_types=CATALOGUE.values(), tasks=tasks, posts=posts)


@bp.route("/posts", methods=["POST"])
@login_required
def create_post() -> Response:
    try:
        write_post(current_user, request.form.get("body"))
    except PostInvalid as exc:
        flash(f"Your post was not saved: {exc}.")
    return redirect(url_for("main.index"))


@bp.route("/tasks")
@login_required
def history() -> str:
    tasks = [payload(t) for t in recent_tasks(current_user.id, HISTORY_LIMIT)]
    return render_template("main/history.html", tasks=tasks)


@bp.errorhandler(RateLimitExceeded)
def _too_many_starts(exc: RateLimitExceeded) -> Response | tuple[Response, int]:
    return answer(exc.description, 429)


@bp.route("/tasks", methods=["POST"])
@login_required
@start_limited
def create_task() -> Response | tuple[Response, int]:
    form = request.form.to_dict()
    form.pop("csrf_token", None)
    name = form.pop("name", "")
    try:
        task = start_task(current_user, name, form)
    except UnknownTaskType:
        return answer(f"Unknown task type {name!r}.", 400)
    except ParamError as exc:
        return answer(f"{exc.field} {exc.reason}.", 400)
    except NotPermitted as exc:
        return answer(str(exc), 403)
    except OverLimit as exc:
        return answer(str(exc), 429)
    except TaskLimit as exc:
        return answer(str(exc), 409)
    except QueueUnavailable:
        return answer(QUEUE_UNAVAILABLE, 503)
    return answer(None, 202, task.to_dict())


@bp.route("/tasks/<task_id>/cancel", methods=["POST"])
@login_required
def cancel_task(task_id: str) -> Response | tuple[Response, int]:
    try:
        ended = cancel(owned_task(task_id, current_user.id))
    except HTTPException as exc:
        return answer(exc.description, exc.code or 400)
    return answer(None, 200 if ended else 202, {"id": task_id, "cancelled": ended})


@bp.route("/tasks/<task_id>/result")
@login_required
def task_result(task_id: str) -> Response:
    return result_download(owned_task(task_id, current_user.id))


@bp.route("/healthz")
def healthz() -> Response:
    """The process is alive (for restarts); see /readyz for whether it can do its job."""
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready for traffic: the database and Redis answer, and at least one worker is registered."""
    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), 200 if ready else 503
