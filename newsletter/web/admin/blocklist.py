"""The blocklist page: domains and addresses never added nor mailed; add and remove them."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Optional

from newsletter.audience import blocklist
from newsletter.errors import NewsletterError
from newsletter.web.admin.audience import show_error
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm


class DomainForm(FlaskForm):
    domain = StringField(
        "Domain", validators=[DataRequired(), Length(max=255)],
        description="Exactly this domain (not its subdomains), e.g. spam.example.",
    )
    reason = StringField("Reason", validators=[Optional(), Length(max=blocklist.REASON_MAX)])


class AddressForm(FlaskForm):
    email = StringField("Address", validators=[DataRequired(), Length(max=320)])
    reason = StringField("Reason", validators=[Optional(), Length(max=blocklist.REASON_MAX)])


@bp.route("/blocklist", methods=["GET", "POST"])
def blocklist_page() -> tuple[str, int] | Response:
    """The blocked domains and addresses, with a form to add each."""
    domain_form = DomainForm(prefix="domain")
    address_form = AddressForm(prefix="address")
    by = current_user.email
    if domain_form.domain.name in _posted() and domain_form.validate_on_submit():
        try:
            row = blocklist.block_domain(
                domain_form.domain.data or "", reason=domain_form.reason.data or "", by=by
            )
        except NewsletterError as error:
            show_error(domain_form, error, "domain")
        else:
            flash(f"Addresses at {row.domain} are now refused and not mailed.", "success")
            return redirect(url_for("admin.blocklist_page"))
    elif address_form.email.name in _posted() and address_form.validate_on_submit():
        try:
            subscriber = blocklist.block_address(
                address_form.email.data or "", reason=address_form.reason.data or "", by=by
            )
        except NewsletterError as error:
            show_error(address_form, error, "email")
        else:
            flash(f"{subscriber.email} is blocklisted.", "success")
            return redirect(url_for("admin.blocklist_page"))
    failed = bool(domain_form.errors or address_form.errors)
    return render_template(
        "admin/blocklist.html",
        domain_form=domain_form,
        address_form=address_form,
        domains=blocklist.blocked_domains(),
        addresses=blocklist.blocked_addresses(),
        action_form=ActionForm(),
    ), 422 if failed else 200


def _posted() -> set[str]:
    """The fields of the posted form: the page holds two, each with its own prefix."""
    return set(request.form) if request.method == "POST" else set()


@bp.post("/blocklist/domains/<int:domain_id>/remove")
def blocklist_domain_remove(domain_id: int) -> Response:
    """Take a domain off the blocklist."""
    if ActionForm().validate_on_submit():
        row = blocklist.unblock_domain(domain_id)
        flash(f"{row.domain} is no longer blocklisted.", "success")
    return redirect(url_for("admin.blocklist_page"))


@bp.post("/blocklist/addresses/<int:subscriber_id>/remove")
def blocklist_address_remove(subscriber_id: int) -> Response:
    """Take an address off the blocklist."""
    if ActionForm().validate_on_submit():
        address = blocklist.unblock_address(subscriber_id)
        flash(f"{address} is no longer blocklisted.", "success")
    return redirect(url_for("admin.blocklist_page"))
