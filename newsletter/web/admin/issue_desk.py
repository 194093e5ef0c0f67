"""Composing at the desk: what the issue page adds to the status page (warnings before
sending, the raw headers, desktop and phone previews, test sends) and deleting or hiding.

The compose form's notes (what each template adds, the placeholders) come from
``compose_notes``; the issue page's extras from ``issue_extras``. Both views stay in
``issues.py``; this module only adds to what they show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from newsletter.audience.models import MailingList
from newsletter.content import writing
from newsletter.content.compose import (
    BODY_PLACEHOLDERS,
    ComposeWarning,
    issue_warnings,
    sender_address,
    template_features,
)
from newsletter.content.models import Issue, Template
from newsletter.content.templates import default_template
from newsletter.delivery.proofs import proof_recipients, send_proof
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.mail.message import ListInfo, MessageSkeleton, Recipient, make_message_id
from newsletter.mail.render import RenderedIssue, fill_placeholders, render_issue
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.desk_forms import ProofForm
from newsletter.web.admin.forms import ActionForm

#: the preview widths the issue page offers: name → (label, CSS class)
PREVIEW_WIDTHS = {"desktop": ("Desktop", "preview-desktop"), "phone": ("Phone", "preview-phone")}


def template_of(issue: Issue) -> Template:
    """The template the issue renders with (the built-in one when none is chosen)."""
    return issue.template if issue.template is not None else default_template()


def compose_notes() -> dict[str, Any]:
    """For the compose form: each template's features (by the select's value) and the
    placeholders intros and statements may use."""
    default = default_template()
    notes: dict[str, list[str]] = {"": template_features(default)}
    for template in db.session.scalars(select(Template).order_by(Template.name)):
        if template.id != default.id:
            notes[str(template.id)] = template_features(template)
    return {"template_notes": notes, "placeholders": BODY_PLACEHOLDERS}


def proof_form() -> ProofForm:
    """The test-send form, its choices the active editors and admins."""
    form = ProofForm()
    form.to.choices = [
        (user.id, f"{user.email} ({user.role.value})") for user in proof_recipients()
    ]
    return form


def sample_headers(issue: Issue, rendered: RenderedIssue) -> str:
    """The header fields of the message one reader would get, as the send builds it."""
    config = current_app.config
    from_address = sender_address(issue.sender_name, str(config["FROM_ADDRESS"]))
    base_url = str(config["BASE_URL"]).rstrip("/")
    host = (urlsplit(base_url).hostname or "localhost").encode("idna").decode("ascii")
    first: MailingList | None = min(issue.lists, key=lambda lst: lst.id, default=None)
    skeleton = MessageSkeleton(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_address=from_address,
        list_info=ListInfo(
            list_id=f"{first.slug if first else 'newsletter'}.{host}",
            list_name=first.name if first else "",
            unsubscribe_mailto="mailto:" + from_address.rpartition("<")[2].rstrip(">")
            + "?subject=unsubscribe",
        ),
    )
    sample = f"{base_url}/subscribe"
    message = skeleton.personalise(
        Recipient(
            email="reader@example.org",
            name="Reader",
            unsubscribe_url=sample,
            manage_url=sample,
            message_id=make_message_id(from_address),
        )
    )
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return head.replace("\r\n", "\n")


def issue_extras(issue: Issue) -> dict[str, Any]:
    """What the issue page shows beside the status: warnings, headers, widths, test send."""
    width = request.args.get("width", "desktop")
    if width not in PREVIEW_WIDTHS:
        width = "desktop"
    warnings: list[ComposeWarning] = []
    headers = ""
    try:
        rendered = render_issue(issue)
        sample = f"{str(current_app.config['BASE_URL']).rstrip('/')}/subscribe"
        html = fill_placeholders(
            rendered.html, name="Reader", unsubscribe_url=sample, manage_url=sample, html=True
        )
        template = template_of(issue)
        warnings = issue_warnings(issue, html, template)
        headers = sample_headers(issue, rendered)
        features = template_features(template)
    except NewsletterError:
        features = []  # the page already says the preview could not be rendered
    return {
        "warnings": warnings,
        "raw_headers": headers,
        "preview_width": width,
        "preview_widths": PREVIEW_WIDTHS,
        "template_features": features,
        "proof_form": proof_form(),
        "action_form": ActionForm(),
    }


@bp.post("/issues/<int:issue_id>/test")
def issue_test_send(issue_id: int) -> Response:
    """Mail the issue, marked as a test, to the chosen editors; the issue itself is untouched."""
    form = proof_form()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash("Choose who gets the test.", "error")
        return redirect(url_for("admin.issue", issue_id=issue_id) + "#test-send")
    try:
        rows = send_proof(issue_id, list(form.to.data or []))
    except NewsletterError as error:
        flash(f"Test not sent: {error.message}", "error")
    else:
        names = ", ".join(row.to_address for row in rows)
        flash(f"Test sent to {names}. It does not count in the issue.", "success")
    return redirect(url_for("admin.issue", issue_id=issue_id) + "#test-send")


@bp.post("/issues/<int:issue_id>/delete")
def issue_delete(issue_id: int) -> Response:
    """Delete a draft (an issue that reached anyone can only be hidden)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        writing.delete_issue(issue_id)
    except NewsletterError as error:
        flash(f"Not deleted: {error.message}. A sent issue can be hidden instead.", "error")
        return redirect(url_for("admin.issue", issue_id=issue_id))
    flash("Draft deleted.", "success")
    return redirect(url_for("admin.issues"))


@bp.post("/issues/<int:issue_id>/hide")
def issue_hide(issue_id: int) -> Response:
    """Hide a sent issue from the list (``hidden=0`` shows it again); it is not changed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    hide = request.form.get("hidden", "1") != "0"
    try:
        writing.set_hidden(issue_id, hide)
    except NewsletterError as error:
        flash(f"Not changed: {error.message}.", "error")
    else:
        flash(
            "Hidden from the issue list." if hide else "Shown in the issue list again.", "success"
        )
    return redirect(url_for("admin.issue", issue_id=issue_id))
