"""The users page (admins only, see ``auth/permissions.py``): invite by mail, change a role,
allow an editor to send, deactivate and reactivate.

An admin does not change their own role or deactivate themselves here (another admin does),
and the services refuse any change that would leave no active admin.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from newsletter.auth import accounts
from newsletter.auth.models import Role, User
from newsletter.auth.services import is_pending
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm
from newsletter.web.admin.user_forms import InviteForm, RoleForm


def _page(invite_form: InviteForm, status: int = 200) -> tuple[str, int]:
    users = accounts.list_users()
    role_forms = {}
    for user in users:
        form = RoleForm(prefix=f"u{user.id}", data={"role": user.role.value})
        role_forms[user.id] = form
    page = render_template(
        "admin/users.html",
        users=users,
        invite_form=invite_form,
        role_forms=role_forms,
        action_form=ActionForm(),
        pending={user.id for user in users if is_pending(user)},
    )
    return page, status


@bp.get("/users")
def users() -> tuple[str, int]:
    """Every account: role, permission to send, state; and the invitation form."""
    return _page(InviteForm(formdata=None))


@bp.post("/users/invite")
def user_invite() -> Response | tuple[str, int]:
    """Make an account and mail its owner a link to choose a password."""
    form = InviteForm()
    if form.validate_on_submit():
        try:
            user = accounts.invite(
                form.email.data or "", Role(form.role.data), can_send=bool(form.can_send.data)
            )
        except NewsletterError as error:
            db.session.rollback()
            field = getattr(form, error.field or "", None) or form.email
            field.errors = [*field.errors, error.message]
        else:
            flash(f"Invitation sent to {user.email}.", "success")
            return redirect(url_for("admin.users"))
    return _page(form, 422)


def _other_user(user_id: int) -> User:
    """The user an action is about, once the action's CSRF token is checked; never oneself."""
    if not ActionForm().validate_on_submit():
        abort(400)
    user = accounts.get_user(user_id)
    if user.id == current_user.id:
        flash("You cannot change your own account here; ask another admin.", "error")
        abort(redirect(url_for("admin.users")))
    return user


def _act(action: str, done: str, change: Callable[[], object]) -> Response:
    """Run ``change`` and say how it went."""
    try:
        change()
    except NewsletterError as error:
        db.session.rollback()
        flash(f"{action}: {error.message}.", "error")
    else:
        flash(done, "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/role")
def user_role(user_id: int) -> Response:
    """Give a user another role."""
    user = _other_user(user_id)
    form = RoleForm(request.form, prefix=f"u{user.id}")
    if not form.validate():
        flash("Not changed: choose one of the roles.", "error")
        return redirect(url_for("admin.users"))
    role = Role(form.role.data)
    return _act("Role not changed", f"{user.email} is now {role.value}.",
                lambda: accounts.change_role(user, role))


@bp.post("/users/<int:user_id>/can-send")
def user_can_send(user_id: int) -> Response:
    """Allow an editor to send issues to lists, or stop them (``allow`` is 1 or 0)."""
    user = _other_user(user_id)
    allow = request.form.get("allow") == "1"
    done = (f"{user.email} may now send issues to lists." if allow
            else f"{user.email} may no longer send issues to lists.")
    return _act("Not changed", done, lambda: accounts.set_can_send(user, allow))


@bp.post("/users/<int:user_id>/active")
def user_active(user_id: int) -> Response:
    """Deactivate a user (their sessions and API tokens stop at once) or reactivate them
    (``active`` is 1 or 0)."""
    user = _other_user(user_id)
    active = request.form.get("active") == "1"
    done = (f"{user.email} is active again." if active
            else f"{user.email} is deactivated and logged out everywhere.")
    return _act("Not changed", done, lambda: accounts.set_active(user, active))


@bp.post("/users/<int:user_id>/invite")
def user_reinvite(user_id: int) -> Response:
    """Mail a new invitation to someone who has not accepted theirs."""
    user = _other_user(user_id)
    return _act("Not sent", f"A new invitation is on its way to {user.email}.",
                lambda: accounts.invite_again(user))
