"""API tokens: the user's own (make one, shown once; see them; revoke one), and for admins
every user's (see them with their owners; revoke any).

The two revoke routes are apart so the role table says who may use each: one's own needs
only ``ACCOUNT``, anyone's needs ``ADMIN``.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from newsletter.auth import scopes
from newsletter.auth import tokens as api_tokens
from newsletter.auth.models import User
from newsletter.errors import ValidationError
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm, MultiCheckboxField, choices

SCOPE_LABELS = [
    (scopes.READ, "read: look at lists, subscribers, statements, issues and deliveries"),
    (scopes.WRITE, "write: create and change them"),
    (scopes.SEND, "send: send, schedule, resume and retry issues; transactional mail"),
]
EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"),
                  ("365", "In a year")]  # fmt: skip


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=api_tokens.MAX_NAME_LENGTH)],
        description="What it is for, e.g. “website signup form” or “CI deploy”.",
    )
    scopes = MultiCheckboxField(
        "It may",
        choices=choices(SCOPE_LABELS),
        default=list(scopes.ALL_SCOPES),
        validators=[DataRequired(message="Choose at least one.")],
    )
    expires = SelectField("Expires", choices=choices(EXPIRY_CHOICES), default="")


@bp.route("/profile/tokens", methods=["GET", "POST"], endpoint="tokens")
def tokens_page() -> str | tuple[str, int]:
    """The user's tokens, and a form for a new one; the new token is shown on this answer only."""
    user: User = current_user._get_current_object()
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        try:
            made = api_tokens.create_token(
                user,
                name=form.name.data or "",
                scope_names=form.scopes.data or [],
                expires_days=int(form.expires.data) if form.expires.data else None,
            )
        except ValidationError as error:
            field = getattr(form, error.field or "", None) or form.name
            field.errors = [*field.errors, error.message]
        else:
            new_token = made
            form = TokenForm(formdata=None)
    return render_template(
        "admin/tokens.html",
        form=form,
        new_token=new_token,
        rows=api_tokens.list_tokens(user),
        status_of=api_tokens.status,
        action_form=ActionForm(),
    ), 422 if form.errors else 200


@bp.post("/profile/tokens/<int:token_id>/revoke", endpoint="token_revoke")
def token_revoke(token_id: int) -> Response:
    """Revoke one of the user's own tokens (another's is a 404, like a missing one)."""
    form = ActionForm()
    if form.validate_on_submit():
        row = api_tokens.revoke_token(token_id, user=current_user)
        flash(f"The token {row.name or row.prefix} is revoked.", "success")
    return redirect(url_for("admin.tokens"))


@bp.get("/users/tokens", endpoint="user_tokens")
def user_tokens() -> str:
    """Every user's tokens, oldest first, with their owners (admins only)."""
    return render_template(
        "admin/user_tokens.html",
        rows=api_tokens.list_tokens(),
        status_of=api_tokens.status,
        action_form=ActionForm(),
    )


@bp.post("/users/tokens/<int:token_id>/revoke", endpoint="user_token_revoke")
def user_token_revoke(token_id: int) -> Response:
    """Revoke anyone's token (admins only)."""
    form = ActionForm()
    if form.validate_on_submit():
        row = api_tokens.revoke_token(token_id)
        flash(f"The token {row.name or row.prefix} of {row.user.email} is revoked.", "success")
    return redirect(url_for("admin.user_tokens"))
