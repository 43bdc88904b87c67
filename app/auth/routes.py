import secrets
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from app.accounts import AccountTaken, authenticate
from app.accounts import register as register_account
from app.auth.forms import TAKEN, LoginForm, LogoutForm, RegistrationForm
from app.channel import end_session
from app.extensions import broker
from app.ratelimits import login_limited
from app.sockets import SESSION_AUTH_ID

bp = Blueprint("auth", __name__)


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response | str:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegistrationForm()
    if form.validate_on_submit():
        try:
            register_account(form.username.data, form.email.data, form.password.data)
        except AccountTaken as exc:
            getattr(form, exc.field).errors.append(TAKEN[exc.field])
        else:
            flash("Welcome! You can log in now.")
            return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form)


@bp.errorhandler(RateLimitExceeded)
def _too_many_logins(exc: RateLimitExceeded) -> tuple[str, int]:
    flash(exc.description)
    return render_template("auth/login.html", form=LoginForm()), 429


@bp.route("/login", methods=["GET", "POST"])
@login_limited
def login() -> Response | str:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is None:
            flash("Invalid username or password.")
            return redirect(url_for("auth.login"))
        login_user(user, remember=form.remember_me.data)
        # Names this login, so that logging out ends exactly its sockets.
        session[SESSION_AUTH_ID] = secrets.token_hex(16)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    if LogoutForm().validate_on_submit():
        auth_id = session.pop(SESSION_AUTH_ID, None)
        user_id = current_user.id
        logout_user()
        if auth_id is not None:
            end_session(broker.redis, current_app.config["PROGRESS_CHANNEL"], user_id, auth_id, "logged_out")
    return redirect(url_for("main.index"))


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect after login is a phishing aid.
    if not target or urlsplit(target).netloc or urlsplit(target).scheme or not target.startswith("/"):
        return url_for("main.index")
    return target
