from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_required, logout_user
from werkzeug.wrappers import Response

from app.accounts import AccountTaken, authenticate
from app.accounts import register as register_account
from app.auth.forms import TAKEN, ChangePasswordForm, LoginForm, LogoutForm, RegistrationForm
from app.confirmation import (
    RESEND_INTERVAL,
    ConfirmationInvalid,
    Requested,
    confirm_address,
    request_confirmation,
)
from app.logins import begin_login, end_login, end_other_credentials
from app.ratelimits import login_limited, register_limited
from app.sansio.inputs import safe_path

bp = Blueprint("auth", __name__)


@bp.route("/register", methods=["GET", "POST"])
@register_limited
def register() -> Response | str:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegistrationForm()
    if form.validate_on_submit():
        try:
            user = register_account(form.username.data, form.email.data, form.password.data)
        except AccountTaken as exc:
            getattr(form, exc.field).errors.append(TAKEN[exc.field])
        else:
            flash("Welcome! You can log in now.")
            flash(_CONFIRMATION_MESSAGES[request_confirmation(user)])
            return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form)


@bp.errorhandler(RateLimitExceeded)
def _too_many(exc: RateLimitExceeded) -> tuple[str, int]:
    flash(exc.description)
    if request.endpoint == "auth.register":
        return render_template("auth/register.html", form=RegistrationForm()), 429
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
        begin_login(user, remember=form.remember_me.data)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    if LogoutForm().validate_on_submit():
        end_login(current_user.login)
        logout_user()
    return redirect(url_for("main.index"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | str:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        else:
            current_user.set_password(form.password.data)
            # Whoever else holds a login or a token of this account is signed out: the change
            # is how a user takes back an account someone else got into.
            end_other_credentials(current_user, keep=current_user.login)
            flash("Password changed. Every other login and API token of yours has been signed out.")
            return redirect(url_for("main.index"))
    return render_template("auth/password.html", form=form)


_CONFIRMATION_MESSAGES = {
    Requested.QUEUED: "We sent you an e-mail with a link to confirm your address; no mail goes to it until you do.",
    Requested.TOO_SOON: f"A confirmation e-mail was sent less than {RESEND_INTERVAL} seconds ago; "
    "please wait for it, or ask again in a minute.",
    Requested.UNAVAILABLE: "The confirmation e-mail could not be sent right now; "
    "log in and ask for it again in a moment.",
}


@bp.route("/confirm/<token>")
def confirm_email(token: str) -> Response:
    try:
        confirm_address(token)
    except ConfirmationInvalid as exc:
        flash(str(exc))
    else:
        flash("Your e-mail address is confirmed.")
    return redirect(url_for("main.index"))


@bp.route("/confirm", methods=["POST"])
@login_required
def resend_confirmation() -> Response:
    if LogoutForm().validate_on_submit():
        if current_user.email_confirmed_at is not None:
            flash("Your e-mail address is already confirmed.")
        else:
            flash(_CONFIRMATION_MESSAGES[request_confirmation(current_user)])
    return redirect(url_for("main.index"))


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect after login is a phishing aid.
    return target if safe_path(target) else url_for("main.index")
