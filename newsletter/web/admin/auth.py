"""Logging in and out, and the one-time setup page that makes the first admin."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from newsletter.auth import services, totp
from newsletter.auth.models import User
from newsletter.errors import InvalidToken, NewsletterError
from newsletter.extensions import db, limiter, login
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.factors import begin_second_step
from newsletter.web.admin.forms import ActionForm, LoginForm, SetupForm


@login.user_loader
def load_user(user_id: str) -> User | None:
    """The logged-in user from the session's id (None logs a deleted or bad id out)."""
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


def _login_limit() -> str:
    return str(current_app.config.get("RATELIMIT_LOGIN", "10 per minute"))


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site, never another host."""
    # Browsers read "///host" as "//host" and drop tabs and newlines, so refuse them outright.
    if target and target.isprintable() and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return url_for("admin.dashboard")


# The endpoint is "admin.login", the view Flask-Login sends anonymous visitors to.
@bp.route("/login", methods=["GET", "POST"], endpoint="login")
@limiter.limit(_login_limit, methods=["POST"])
def login_page() -> str | Response | tuple[str, int]:
    """Email and password; a wrong pair gets one neutral message."""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data or "", form.password.data or "")
        if user is not None and totp.is_enabled(user):  # the password alone never logs in
            return begin_second_step(user, _safe_next(request.args.get("next")))
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("That email and password do not match an account.", "error")
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    """Log out (a POST with a CSRF token, so no other site can log anyone out)."""
    form = ActionForm()
    if form.validate_on_submit():
        logout_user()
        flash("You are logged out.", "success")
        return redirect(url_for("admin.login"))
    return redirect(url_for("admin.dashboard"))


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
            login_user(user)
            flash("Welcome! Your admin account is ready.", "success")
            return redirect(url_for("admin.dashboard"))
    return render_template("admin/setup.html", form=form), 422 if form.errors else 200
