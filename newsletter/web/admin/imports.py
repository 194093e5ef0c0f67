"""Importing subscribers: the upload form, the job's page with its live progress, the
bad-rows report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from flask import abort, jsonify, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from newsletter.audience import import_jobs
from newsletter.audience.importer import ImportOptions
from newsletter.audience.models import ImportJob, ImportJobStatus, ImportMode, MailingList
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.audience import show_error
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ImportForm


def _list_choices() -> list[tuple[str, str]]:
    # Archived lists take no new subscribers (the importer refuses them too).
    lists = db.session.scalars(
        select(MailingList).where(MailingList.archived_at.is_(None)).order_by(MailingList.name)
    )
    return [("", "— none —"), *((lst.slug, lst.name) for lst in lists)]


@bp.route("/subscribers/import", methods=["GET", "POST"])
def subscribers_import() -> str | Response | tuple[str, int]:
    """Upload a file; a worker imports it and the job's page follows it."""

    form = ImportForm()
    form.list_slug.choices = _list_choices()
    if form.validate_on_submit():
        upload = form.file.data
        options = ImportOptions(
            list_slug=form.list_slug.data or None,
            mode=ImportMode(form.mode.data),
            overwrite=form.overwrite.data != "keep",
            send_confirmations=True,
            encoding=form.encoding.data or None,
            delimiter=form.delimiter.data or None,
            file_name=upload.filename or "",
            label=(form.label.data or "").strip(),
        )
        try:
            job = import_jobs.create_job(
                upload.stream,
                upload.filename or "",
                options,
                created_by=getattr(current_user, "id", None),
            )
        except NewsletterError as error:
            show_error(form, error, "list_slug" if error.field == "list" else "file")
        else:
            return redirect(url_for("admin.import_job", job_id=job.id))
    status = 422 if form.errors else 200
    page = render_template(
        "admin/subscribers_import.html",
        form=form,
        has_lists=len(form.list_slug.choices) > 1,
        jobs=import_jobs.recent_jobs(),
    )
    return page, status


@bp.get("/subscribers/imports/<int:job_id>")
def import_job(job_id: int) -> str:
    """One import: where it got to (the page polls for more), then what it did."""
    job = _job(job_id)
    lst = db.session.get(MailingList, job.list_id) if job.list_id is not None else None
    return render_template(
        "admin/import_job.html",
        job=job,
        list=lst,
        progress=import_jobs.progress(job),
        statuses=ImportJobStatus,
    )


@bp.get("/subscribers/imports/<int:job_id>/progress")
def import_progress(job_id: int) -> Response:
    """``{"status", "percent", "rows_done", "imported", "bad", "counts", …}``, polled by the
    job's page."""
    response = jsonify(import_jobs.progress(_job(job_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/subscribers/imports/<int:job_id>/report.csv")
def import_report(job_id: int) -> Response:
    """The bad rows so far as CSV: line, problem, the row as read (formula cells
    neutralised)."""
    job = _job(job_id)
    path = Path(job.report_path)
    if not job.report_bytes or not path.exists():
        abort(404)
    name = f"{Path(job.file_name).stem or 'import'}-bad-rows.csv"
    size = job.report_bytes  # only what the job committed: a running chunk may write more
    response = Response(_read(path, size), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    response.headers["Content-Length"] = str(size)
    response.headers["Cache-Control"] = "no-store"
    return response


def _read(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as report:
        while size > 0:
            block = report.read(min(size, 64 * 1024))
            if not block:
                return
            size -= len(block)
            yield block


def _job(job_id: int) -> ImportJob:
    job = db.session.get(ImportJob, job_id)
    if job is None:
        abort(404)
    return job
