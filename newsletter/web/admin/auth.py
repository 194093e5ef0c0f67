"""Logging in and out, one's own password, the links that set a password by mail (reset and
invitation), and the one-time setup page that makes the first admin.

No answer here tells whether an account exists: a wrong password and an unknown address get
the same message, the throttle counts both alike, and "forgot password" says the same thing
whatever address is typed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wrappers import Response

from newsletter.auth import accounts, services, sessions, totp
from newsletter.auth.models import User
from newsletter.auth.throttle import throttle
from newsletter.errors import InvalidToken, NewsletterError, ValidationError
from newsletter.extensions import db, limiter, login
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.factors import begin_second_step
from newsletter.web.admin.forms import ActionForm, LoginForm, SetupForm
from newsletter.web.admin.user_forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    NewPasswordForm,
)

log = logging.getLogger(__name__)

#: at most one reset mail per address in this time, however often it is asked for
RESET_COOLDOWN_SECONDS = 5 * 60
NEUTRAL_RESET_ANSWER = (
    "If an account has that address, a link to choose a new password is on its way. "
    "Check your inbox."
)


@login.user_loader
def load_user(user_id: str) -> User | None:
    """The logged-in user from the session's id, if the session still holds: the user is
    active, the session version is theirs and neither timeout has passed (else logged out)."""
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not sessions.is_valid(user):
        return None
    return user


def _login_limit() -> str:
    return str(current_app.config.get("RATELIMIT_LOGIN", "10 per minute"))


def _reset_limit() -> str:
    return str(current_app.config.get("RATELIMIT_RESET", "5 per hour"))


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site, never another host."""
    # Browsers read "///host" as "//host" and drop tabs and newlines, so refuse them outright.
    if target and target.isprintable() and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return url_for("admin.dashboard")


def _in_words(seconds: float) -> str:
    if seconds < 60:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _too_many(template: str, wait: float, **context: object) -> tuple[str, int, dict[str, str]]:
    flash(f"Too many failed attempts. Try again in {_in_words(wait)}.", "error")
    return render_template(template, **context), 429, {"Retry-After": str(math.ceil(wait))}


# The endpoint is "admin.login", the view Flask-Login sends anonymous visitors to.
@bp.route("/login", methods=["GET", "POST"], endpoint="login")
@limiter.limit(_login_limit, methods=["POST"])
def login_page() -> ResponseReturnValue:
    """Email and password; a wrong pair gets one neutral message. Failures are throttled per
    account and per client address, with backoff."""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        email, client = form.email.data or "", request.remote_addr or ""
        wait = throttle().wait(email, client)
        if wait > 0:
            return _too_many("admin/login.html", wait, form=form)
        user = services.authenticate(email, form.password.data or "")
        if user is not None:
            throttle().succeeded(email)
            if totp.is_enabled(user):  # the password alone never logs in
                return begin_second_step(user, _safe_next(request.args.get("next")))
            sessions.start(user)
            return redirect(_safe_next(request.args.get("next")))
        throttle().failed(email, client)
        flash("That email and password do not match an account.", "error")
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    """Log out (a POST with a CSRF token, so no other site can log anyone out). It ends every
    session of the user, so a copied session cookie stops working too."""
    form = ActionForm()
    if form.validate_on_submit():
        sessions.end(current_user)
        flash("You are logged out.", "success")
        return redirect(url_for("admin.login"))
    return redirect(url_for("admin.dashboard"))


@bp.route("/password", methods=["GET", "POST"])
def change_password() -> ResponseReturnValue:
    """Change one's own password (the current one is needed); other sessions end."""
    form = ChangePasswordForm()
    user: User = current_user
    if form.validate_on_submit():
        wait = throttle().wait(user.email, request.remote_addr or "")
        if wait > 0:
            return _too_many("admin/password.html", wait, form=form)
        try:
            services.change_password(user, form.current.data or "", form.password.data or "")
        except ValidationError as error:
            if error.field == "current":
                throttle().failed(user.email, request.remote_addr or "")
            field = form.current if error.field == "current" else form.password
            field.errors = [*field.errors, error.message]
        else:
            sessions.stamp(user)  # this session stays; every other one has ended
            flash("Your password is changed. Any other session of yours is logged out.",
                  "success")
            return redirect(url_for("admin.profile"))
    return render_template("admin/password.html", form=form), 422 if form.errors else 200


@bp.route("/forgot", methods=["GET", "POST"], endpoint="forgot_password")
@limiter.limit(_reset_limit, methods=["POST"])
def forgot_password() -> str | Response | tuple[str, int]:
    """Ask for a reset link by mail; the answer is the same whatever address is typed."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        if throttle().cool_down("reset", email, RESET_COOLDOWN_SECONDS):
            try:
                accounts.request_reset(email)
            except NewsletterError as error:  # the person is told nothing more
                db.session.rollback()
                log.error("password reset mail not queued: %s", error.message)
        flash(NEUTRAL_RESET_ANSWER, "success")
        return redirect(url_for("admin.login"))
    return render_template("admin/forgot.html", form=form), 422 if form.errors else 200


def _set_password_page(
    token: str,
    purpose: str,
    find: Callable[[str], User],
    act: Callable[[str, str], User],
) -> str | Response | tuple[str, int]:
    """The page behind a reset or invitation link: GET shows the form, POST sets it."""
    try:
        user = find(token)
    except InvalidToken as error:
        return render_template("admin/link_invalid.html", purpose=purpose,
                               reason=error.reason), 404
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            act(token, form.password.data or "")
        except InvalidToken as error:
            return render_template("admin/link_invalid.html", purpose=purpose,
                                   reason=error.reason), 404
        except ValidationError as error:
            form.password.errors = [*form.password.errors, error.message]
        else:
            throttle().succeeded(user.email)  # locked out by a guesser? Not any more.
            sessions.forget()
            flash("Your password is set. Log in with it.", "success")
            return redirect(url_for("admin.login"))
    page = render_template("admin/set_password.html", form=form, purpose=purpose, user=user)
    return page, 422 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"], endpoint="reset_password")
def reset_password(token: str) -> str | Response | tuple[str, int]:
    """Choose a new password through a mailed reset link (once, before it expires)."""
    return _set_password_page(token, "reset", accounts.reset_user, accounts.reset_password)


@bp.route("/invite/<token>", methods=["GET", "POST"], endpoint="accept_invite")
def accept_invite(token: str) -> str | Response | tuple[str, int]:
    """Choose the first password through a mailed invitation (once, before it expires)."""
    return _set_password_page(token, "invite", accounts.invited_user, accounts.accept_invite)


@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str) -> str | Response | tuple[str, int]:
    """Make the first admin from the link ``newsletter run`` prints; works only while no
    user exists, then logs the new admin in."""
    try:
        services.check_setup_token(token)
    except InvalidToken as error:
        return render_template("admin/setup_invalid.html", reason=error.reason), 404
    form = SetupForm()
    if form.validate_on_submit():
        try:
            user = services.create_first_admin(
                token, form.email.data or "", form.password.data or ""
            )
        except InvalidToken as error:
            return render_template("admin/setup_invalid.html", reason=error.reason), 404
        except NewsletterError as error:
            field = getattr(form, error.field or "", None) or form.email
            field.errors = [*field.errors, error.message]
        else:
            sessions.start(user)
            flash("Welcome! Your admin account is ready.", "success")
            return redirect(url_for("admin.dashboard"))
    return render_template("admin/setup.html", form=form), 422 if form.errors else 200
