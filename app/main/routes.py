from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auth.forms import LogoutForm
from app.sansio.params import ParamError
from app.tasks.catalogue import CATALOGUE
from app.tasks.launcher import QueueUnavailable, UnknownTaskType, start_task

bp = Blueprint("main", __name__)


@bp.app_context_processor
def inject_logout_form() -> dict[str, LogoutForm]:
    return {"logout_form": LogoutForm()}


@bp.route("/")
@login_required
def index() -> str:
    return render_template("main/index.html", task_types=CATALOGUE.values())


@bp.route("/tasks", methods=["POST"])
@login_required
def create_task() -> Response | tuple[Response, int]:
    """Start a task from the page. Scripts on the page ask for JSON; a plain form post is redirected."""
    wants_json = request.accept_mimetypes.best == "application/json"
    form = request.form.to_dict()
    form.pop("csrf_token", None)
    name = form.pop("name", "")
    try:
        task = start_task(current_user, name, form)
    except UnknownTaskType:
        error, status = f"Unknown task type {name!r}.", 400
    except ParamError as exc:
        error, status = f"{exc.field} {exc.reason}.", 400
    except QueueUnavailable:
        error, status = "The task queue is unavailable; please try again later.", 503
    else:
        if wants_json:
            return jsonify(task.to_dict()), 202
        return redirect(url_for("main.index"))
    if wants_json:
        return jsonify({"error": error}), status
    flash(error)
    return redirect(url_for("main.index"))


@bp.route("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})
