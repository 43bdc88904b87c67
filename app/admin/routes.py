"""The operator's page: queues, workers, every user's running and failed tasks, live; retry and cancel."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.admin import overview
from app.extensions import db
from app.models import Task
from app.responses import answer
from app.tasks.lifecycle import NotCancellable, NotRetryable, request_cancel, retry_failed

bp = Blueprint("admin", __name__)


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/")
@admin_required
def index() -> str:
    return render_template(
        "admin/index.html", queues=overview.queues(), workers=overview.workers(), tasks=overview.tasks()
    )


@bp.route("/tasks/<task_id>/retry", methods=["POST"])
@admin_required
def retry(task_id: str) -> Response | tuple[Response, int]:
    task = db.get_or_404(Task, task_id)
    try:
        retry_failed(task)
    except NotRetryable as exc:
        return answer(str(exc), 409)
    return answer(None, 202, task.to_dict())


@bp.route("/tasks/<task_id>/cancel", methods=["POST"])
@admin_required
def cancel(task_id: str) -> Response | tuple[Response, int]:
    task = db.get_or_404(Task, task_id)
    try:
        ended = request_cancel(task)
    except NotCancellable as exc:
        return answer(str(exc), 409)
    return answer(None, 200 if ended else 202, task.to_dict())
