"""Forms of the account pages: password change, reset and invitation, the users page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Form, PasswordField, SelectField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from newsletter.auth.models import Role
from newsletter.auth.services import MAX_PASSWORD_LENGTH
from newsletter.web.admin.forms import choices, new_password_field

ROLE_CHOICES = [
    ("viewer", "Viewer: reads, changes nothing"),
    ("editor", "Editor: statements, templates and issues"),
    ("admin", "Admin: everything, users included"),
]


def _repeat() -> PasswordField:
    return PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class NewPasswordForm(FlaskForm):
    """Choosing a password through an invitation or reset link."""

    password = new_password_field("New password")
    confirm = _repeat()


class ChangePasswordForm(FlaskForm):
    current = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    password = new_password_field("New password")
    confirm = _repeat()


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Your email", validators=[DataRequired(), Length(max=320)])


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)])
    role = SelectField("Role", choices=choices(ROLE_CHOICES), default=Role.EDITOR.value)
    can_send = BooleanField("May send issues to lists (editors)")


class RoleForm(Form):
    """One user's role on the users page; one per row, told apart by a prefix. The action's
    CSRF token is checked on its own (``ActionForm``), so this form carries none."""

    role = SelectField("Role", choices=choices([(role.value, role.value) for role in Role]))
