"""Issues: the list, compose and edit, preview, send, and the status page with its progress."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import defer, selectinload
from werkzeug.wrappers import Response

from newsletter.audience.models import (
    MailingList,
)
from newsletter.audience.segments.service import list_segments
from newsletter.content.issues import create_issue, get_issue, update_issue
from newsletter.content.models import Issue, IssueStatus, Statement, TemplateKind
from newsletter.content.templates import default_template, list_templates
from newsletter.delivery.control.progress import progress
from newsletter.delivery.send.dispatcher import request_send
from newsletter.delivery.send.snapshot import count_audience
from newsletter.errors import IssueStateError, NewsletterError
from newsletter.extensions import db
from newsletter.mail.render import preview_issue
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.control import schedule_form
from newsletter.web.admin.forms import ActionForm, IssueForm
from newsletter.web.admin.frames import framed_html
from newsletter.web.admin.issue_desk import compose_notes, issue_extras

#: Statuses during which the status page keeps refreshing its counts.
ACTIVE_STATUSES = (IssueStatus.SCHEDULED, IssueStatus.SENDING)
#: Statuses before the audience is fixed: the page shows how many it would reach now.
NOT_STARTED = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
#: Service error fields → the form field that shows the message.
ERROR_FIELDS = {
    "statement_ids": "statements",
    "list_slugs": "lists",
    "segment_ids": "segments",
    "template_id": "template",
}


def _load_issue(issue_id: int) -> Issue:

    return get_issue(issue_id)


def _statements_for_picker(selected: list[int]) -> list[Statement]:
    """The chosen statements in their order first, then every other one, newest first."""
    everything = list(
        db.session.scalars(
            select(Statement).order_by(
                Statement.date.desc().nulls_last(), Statement.created_at.desc()
            )
        )
    )
    by_id = {item.id: item for item in everything}
    chosen = [by_id[sid] for sid in selected if sid in by_id]
    return chosen + [item for item in everything if item.id not in set(selected)]


def _fill_choices(form: IssueForm, keep_lists: Collection[str] = ()) -> None:
    form.statements.choices = [
        (item.id, item.title) for item in _statements_for_picker([])
    ]
    form.lists.choices = [
        (lst.slug, lst.name)
        for lst in db.session.scalars(select(MailingList).order_by(MailingList.name))
        # archived lists only where the issue already targets them
        if lst.archived_at is None or lst.slug in keep_lists
    ]
    form.segments.choices = [(segment.id, segment.name) for segment in list_segments()]
    default = default_template()
    form.template.choices = [("", f"{default.name} (the default)")] + [
        (str(template.id), template.name)
        for template in list_templates(TemplateKind.ISSUE)
        if template.id != default.id
    ]


def _ordered_statement_ids(form: IssueForm) -> list[int]:
    """The ticked statements sorted by the position typed beside each (blank: at the end,
    in the order shown)."""
    ticked: list[int] = list(form.statements.data or [])

    def position(index_and_id: tuple[int, int]) -> tuple[int, int]:
        index, statement_id = index_and_id
        raw = request.form.get(f"position-{statement_id}", "").strip()
        # isascii: "²" is a digit to isdigit() but not a number to int().
        return (int(raw) if raw.isascii() and raw.isdigit() else 10**6, index)

    return [sid for _, sid in sorted(enumerate(ticked), key=position)]


def _issue_fields(form: IssueForm) -> dict[str, Any]:
    template = form.template.data or ""
    return {
        "subject": (form.subject.data or "").strip(),
        "preheader": (form.preheader.data or "").strip(),
        "intro": form.intro.data or "",
        "sender_name": (form.sender_name.data or "").strip(),
        "statement_ids": _ordered_statement_ids(form),
        "list_slugs": list(form.lists.data or []),
        "segment_ids": list(form.segments.data or []),
        "template_id": int(template) if template.isdigit() else None,
    }


def _show_error(form: IssueForm, error: NewsletterError) -> None:
    name = ERROR_FIELDS.get(error.field or "", error.field or "")
    field = getattr(form, name, None) if name else None
    if field is None or name == "csrf_token":
        flash(error.message, "error")
        return
    field.errors = [*field.errors, error.message]


def _render_form(form: IssueForm, issue: Issue | None, selected: list[int]) -> tuple[str, int]:
    positions = {sid: number for number, sid in enumerate(selected, start=1)}
    page = render_template(
        "admin/issue_form.html",
        form=form,
        issue=issue,
        statements=_statements_for_picker(selected),
        positions=positions,
        **compose_notes(),
    )
    return page, 422 if form.errors else 200


#: issues per page of the issues page
ISSUES_PER_PAGE = 50


@bp.get("/issues")
def issues() -> str:
    """Every issue, newest first, with its status; hidden ones only with ``?hidden=1``."""
    show_hidden = request.args.get("hidden") == "1"
    before = request.args.get("before", type=int)
    # Keyset pages, newest first: a page costs the same however many issues there are.
    query = select(Issue).order_by(Issue.id.desc()).limit(ISSUES_PER_PAGE + 1)
    if before is not None:
        query = query.where(Issue.id < before)
    if not show_hidden:
        query = query.where(Issue.hidden_at.is_(None))
    hidden = db.session.scalar(select(func.count(Issue.id)).where(Issue.hidden_at.is_not(None)))
    # the lists in one query, not one per row; the renderings (large) not at all
    rows = db.session.scalars(query.options(
        selectinload(Issue.lists),
        defer(Issue.rendered_html), defer(Issue.rendered_text), defer(Issue.archived_contents),
    )).all()
    shown = rows[:ISSUES_PER_PAGE]
    return render_template(
        "admin/issues.html",
        issues=shown,
        show_hidden=show_hidden,
        hidden_count=hidden or 0,
        older=shown[-1].id if len(rows) > ISSUES_PER_PAGE else None,
        paged=before is not None,
    )


@bp.route("/issues/new", methods=["GET", "POST"])
def issue_new() -> str | Response | tuple[str, int]:
    """Compose an issue: subject, intro, statements in order, lists, template."""

    form = IssueForm()
    _fill_choices(form)
    if form.validate_on_submit():
        fields = _issue_fields(form)
        try:
            issue = create_issue(**fields)
        except NewsletterError as error:
            _show_error(form, error)
        else:
            flash("Draft saved. Check the preview, then send.", "success")
            return redirect(url_for("admin.issue", issue_id=issue.id))
        return _render_form(form, None, fields["statement_ids"])
    selected = _ordered_statement_ids(form) if request.method == "POST" else []
    return _render_form(form, None, selected)


@bp.route("/issues/<int:issue_id>/edit", methods=["GET", "POST"])
def issue_edit(issue_id: int) -> str | Response | tuple[str, int]:
    """Change a draft; issues that have started sending are read-only."""

    issue = _load_issue(issue_id)
    if issue.status is not IssueStatus.DRAFT:
        flash(f"This issue is {issue.status.value}; only drafts can be changed.", "error")
        return redirect(url_for("admin.issue", issue_id=issue.id))
    form = IssueForm(obj=None if request.method == "POST" else issue)
    _fill_choices(form, keep_lists=[lst.slug for lst in issue.lists])
    if request.method == "GET":
        form.statements.data = [item.statement_id for item in issue.items]
        form.lists.data = [lst.slug for lst in issue.lists]
        form.segments.data = [segment.id for segment in issue.segments]
        # The default template is what the empty choice means.
        default = issue.template is None or issue.template.id == default_template().id
        form.template.data = "" if default else str(issue.template_id)
        return _render_form(form, issue, list(form.statements.data))
    if form.validate_on_submit():
        fields = _issue_fields(form)
        try:
            update_issue(issue.id, **fields)
        except NewsletterError as error:
            _show_error(form, error)
        else:
            flash("Draft saved.", "success")
            return redirect(url_for("admin.issue", issue_id=issue.id))
        return _render_form(form, issue, fields["statement_ids"])
    return _render_form(form, issue, _ordered_statement_ids(form))


def _audience_size(issue: Issue) -> int:
    """How many people a send would reach now: what the snapshot would write (confirmed on
    a target list, narrowed by the segments, not blocklisted, each once)."""
    if not issue.lists and not issue.segments:
        return 0
    return count_audience(issue.id)


def _progress(issue: Issue) -> dict[str, Any]:

    live = progress(issue.id)
    return {**live.as_dict(), "eta_at": live.eta}


@bp.get("/issues/<int:issue_id>")
def issue(issue_id: int) -> str:
    """The issue's status and counts (refreshing while it sends), and its preview."""

    item = _load_issue(issue_id)
    try:
        text = preview_issue(item)[1]
        preview_error = None
    except NewsletterError as error:
        text, preview_error = "", error.message
    return render_template(
        "admin/issue.html",
        issue=item,
        progress=_progress(item),
        active=item.status in ACTIVE_STATUSES,
        audience=_audience_size(item) if item.status in NOT_STARTED else None,
        text_preview=text,
        preview_error=preview_error,
        send_form=ActionForm(),
        schedule_form=schedule_form(item),
        **issue_extras(item),
    )


@bp.get("/issues/<int:issue_id>/preview.html")
def issue_preview(issue_id: int) -> Response:
    """The issue's HTML as a reader would get it (sample name and links), for the iframe."""

    item = _load_issue(issue_id)
    try:
        html = preview_issue(item)[0]
    except NewsletterError as error:
        return framed_html(render_template("admin/preview_error.html", message=error.message), 422)
    return framed_html(html)


@bp.post("/issues/<int:issue_id>/send")
def issue_send(issue_id: int) -> Response:
    """Start sending now (the button asks for confirmation first)."""

    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    item = _load_issue(issue_id)
    try:
        request_send(item.id)
    except IssueStateError as error:
        flash(f"Not sent: {error.message}.", "error")
    except NewsletterError as error:
        flash(f"Not sent: {error.message}", "error")
    else:
        flash("Sending has started. This page follows its progress.", "success")
    return redirect(url_for("admin.issue", issue_id=issue_id))


@bp.get("/issues/<int:issue_id>/progress")
def issue_progress(issue_id: int) -> Response:
    """``{"status", "total", "sent", "failed", "pending", "skipped", "rate", "eta", …}``,
    polled by the status page."""

    response = jsonify(progress(issue_id).as_dict())
    response.headers["Cache-Control"] = "no-store"
    return response
