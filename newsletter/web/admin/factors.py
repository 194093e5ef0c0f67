"""The second factor in the admin pages: enrolling TOTP, the code step of the login, turning
it off, and the admin's switch that requires it of everyone.

The login is two steps. The password step (``auth.login_page``) only remembers, in the
signed session, who gave the right password and when; the code step here logs in. A user
who must have a factor and has none is logged in but sent to enrolment from every page.
"""

from __future__ import annotations

import time
from typing import Any

import segno
from flask import (
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from newsletter.auth import sessions, site_settings, totp
from newsletter.auth.models import Role, User
from newsletter.auth.services import MAX_PASSWORD_LENGTH
from newsletter.errors import Conflict, InvalidCode, TooManyAttempts, ValidationError
from newsletter.extensions import db, limiter
from newsletter.web.admin.blueprint import JSON_ENDPOINTS, bp

#: the session key that holds a login waiting for its code
PENDING_KEY = "two_factor_login"
#: how long the code step waits after the password step
PENDING_SECONDS = 300
#: what a user who must enrol first may still open
ENROLMENT_ENDPOINTS = frozenset(
    {"admin.two_factor", "admin.logout", "admin.login", "admin.login_code", "admin.setup"}
)


class CodeForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[DataRequired(), Length(max=totp.MAX_CODE_LENGTH)],
        description="The 6 digits your authenticator app shows, or one of your recovery codes.",
    )


class EnrolForm(FlaskForm):
    code = StringField(
        "Code from the app",
        validators=[DataRequired(), Length(max=totp.MAX_CODE_LENGTH)],
        description="The 6 digits the app shows for this account, to check it is set up.",
    )


class DisableForm(FlaskForm):
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    code = StringField(
        "Code", validators=[DataRequired(), Length(max=totp.MAX_CODE_LENGTH)],
        description="From your app, or a recovery code.",
    )  # fmt: skip


class SiteSettingsForm(FlaskForm):
    require_two_factor = BooleanField(
        "Require two-factor authentication for everyone",
        description="People without it are asked to set it up right after their password, "
        "and can do nothing else until they have.",
    )


def _code_limit() -> str:
    return str(current_app.config.get("RATELIMIT_LOGIN", "10 per minute"))


# --- the login's second step --------------------------------------------------------------


def begin_second_step(user: User, next_url: str) -> Response:
    """After the right password of a user with a second factor: ask for a code.

    :param next_url: where to go once logged in (already checked to be on this site).
    """
    session[PENDING_KEY] = {
        "user": user.id,
        "version": user.session_version,
        "at": int(time.time()),
        "next": next_url,
    }
    return redirect(url_for("admin.login_code"))


def _pending_login() -> tuple[User, str] | None:
    """The user waiting for the code step and where they were going, if still valid."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(User, pending.get("user"))
    # A password change or logout everywhere in between bumps the version: start again.
    if user is None or not user.active or user.session_version != pending.get("version"):
        return None
    return user, str(pending.get("next") or url_for("admin.dashboard"))


@bp.route("/login/code", methods=["GET", "POST"], endpoint="login_code")
@limiter.limit(_code_limit, methods=["POST"])
def login_code() -> str | Response | tuple[str, int]:
    """The code step of the login: a TOTP code or a recovery code finishes it."""
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    pending = _pending_login()
    if pending is None:
        session.pop(PENDING_KEY, None)
        flash("Please log in again.", "info")
        return redirect(url_for("admin.login"))
    user, next_url = pending
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            kind = totp.verify(user, form.code.data or "")
        except TooManyAttempts as error:
            form.code.errors = [_too_many(error)]
            status = 429
        except InvalidCode as error:
            form.code.errors = [error.message.capitalize() + "."]
            form.code.data = ""  # a wrong code is no use to edit: type the next one afresh
            status = 401
        else:
            session.pop(PENDING_KEY, None)
            sessions.start(user)  # a session stamped with the user's version
            if kind == "recovery":
                left = totp.recovery_codes_left(user)
                flash(f"You used a recovery code; {left} left.", "info")
            return redirect(next_url)
    return render_template("admin/login_code.html", form=form), status


def _too_many(error: TooManyAttempts) -> str:
    minutes = max(1, round(error.retry_after / 60))
    return f"Too many wrong codes. Try again in {minutes} minutes."


# --- requiring the factor -----------------------------------------------------------------


@bp.before_request
def require_second_factor() -> Any:
    """While an admin requires it, someone without a factor may only enrol (or log out)."""
    if request.endpoint in ENROLMENT_ENDPOINTS or not current_user.is_authenticated:
        return None
    if totp.is_enabled(current_user) or not site_settings.two_factor_required():
        return None
    message = "Two-factor authentication is required: set it up to go on."
    if request.endpoint in JSON_ENDPOINTS:
        return jsonify({"error": {"message": message, "field": None}}), 403
    flash(message, "error")  # a refusal: the audit trail records nothing for it
    return redirect(url_for("admin.two_factor"))


# --- enrolment and the user's own settings ------------------------------------------------


@bp.route("/profile/two-factor", methods=["GET", "POST"], endpoint="two_factor")
def two_factor() -> str | tuple[str, int]:
    """Turn the factor on (scan, type a first code, get recovery codes) or see that it is on."""
    user: User = current_user._get_current_object()
    if totp.is_enabled(user):
        return _enabled_page(user)
    form = EnrolForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = totp.confirm_enrolment(user, form.code.data or "")
        except TooManyAttempts as error:
            form.code.errors = [_too_many(error)]
            status = 429
        except (InvalidCode, Conflict) as error:
            form.code.errors = [error.message.capitalize() + "."]
            status = 422
        else:
            return render_template("admin/recovery_codes.html", codes=codes, first=True)
    secret = totp.pending_secret(user)
    uri = totp.provisioning_uri(user, current_app.config["SITE_NAME"])
    return render_template(
        "admin/two_factor_enrol.html",
        form=form,
        qr=_qr_svg(uri),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    ), status


def _qr_svg(uri: str) -> Markup:
    """The URI as an inline SVG QR code, drawn here: the secret never leaves the server."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff")
    return Markup(svg)  # segno's own markup; the URI is encoded in the modules, not as text


def _enabled_page(
    user: User,
    disable_form: DisableForm | None = None,
    codes_form: CodeForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "admin/two_factor.html",
        disable_form=disable_form or DisableForm(formdata=None),
        codes_form=codes_form or CodeForm(formdata=None),
        codes_left=totp.recovery_codes_left(user),
        required=site_settings.two_factor_required(),
    ), status


@bp.post("/profile/two-factor/disable", endpoint="two_factor_disable")
def two_factor_disable() -> str | Response | tuple[str, int]:
    """Turn the factor off: the password and a current code, so a left-open session cannot."""
    user: User = current_user._get_current_object()
    if not totp.is_enabled(user):
        return redirect(url_for("admin.two_factor"))
    form = DisableForm()
    if form.validate_on_submit():
        try:
            totp.disable(user, form.password.data or "", form.code.data or "")
        except TooManyAttempts as error:
            form.code.errors = [_too_many(error)]
            return _enabled_page(user, disable_form=form, status=429)
        except (ValidationError, InvalidCode) as error:
            field = form.password if error.field == "password" else form.code
            field.errors = [error.message.capitalize() + "."]
        else:
            flash("Two-factor authentication is off.", "success")
            return redirect(url_for("admin.two_factor"))
    return _enabled_page(user, disable_form=form, status=422)


@bp.post("/profile/two-factor/recovery-codes", endpoint="recovery_codes")
def recovery_codes() -> str | Response | tuple[str, int]:
    """Ten new recovery codes for a current code; the old ones stop working."""
    user: User = current_user._get_current_object()
    if not totp.is_enabled(user):
        return redirect(url_for("admin.two_factor"))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            codes = totp.new_recovery_codes(user, form.code.data or "")
        except TooManyAttempts as error:
            form.code.errors = [_too_many(error)]
            return _enabled_page(user, codes_form=form, status=429)
        except InvalidCode as error:
            form.code.errors = [error.message.capitalize() + "."]
        else:
            return render_template("admin/recovery_codes.html", codes=codes, first=False)
    return _enabled_page(user, codes_form=form, status=422)


# --- the admin's switch -------------------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"], endpoint="site_settings")
def site_settings_page() -> str | Response | tuple[str, int]:
    """Settings for the whole site (admins only): requiring a second factor of everyone."""
    if current_user.role is not Role.ADMIN:
        message = "Only an admin can change the site's settings."
        return render_template("admin/error.html", title="Not allowed", message=message), 403
    form = SiteSettingsForm()
    if request.method == "GET":
        form.require_two_factor.data = site_settings.two_factor_required()
    elif form.validate_on_submit():
        wanted = bool(form.require_two_factor.data)
        if wanted and not totp.is_enabled(current_user):
            form.require_two_factor.errors = [
                "Set up two-factor authentication for yourself first (on your profile)."
            ]
        else:
            site_settings.set_setting(site_settings.REQUIRE_TWO_FACTOR, wanted)
            flash(
                "Two-factor authentication is now required of everyone."
                if wanted
                else "Two-factor authentication is now up to each person.",
                "success",
            )
            return redirect(url_for("admin.site_settings"))
    without = db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.active.is_(True), User.totp_enabled_at.is_(None))
    )
    status = 422 if form.errors else 200
    return render_template("admin/site_settings.html", form=form, without=without), status
