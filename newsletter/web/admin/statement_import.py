"""The admin's statement import: one Markdown file or a zip of posts, and what it did.

Kept apart from the statement pages (``statements.py``) so the import's messages live in
one place: each post imported is one line, ``updated SLUG: title, body`` and the like.
"""

from __future__ import annotations

from typing import overload

from flask import flash
from werkzeug.datastructures import FileStorage

from newsletter.content.models import Statement
from newsletter.content.statements import ImportReport, import_post, import_zip

#: lines flashed for one zip; the rest are counted
MAX_LINES = 30


def is_zip(upload: FileStorage | None) -> bool:
    """Whether the upload is a zip file (by its name, or by its first bytes)."""
    if not upload or not upload.filename:
        return False
    if upload.filename.lower().endswith(".zip"):
        return True
    head = upload.stream.read(4)
    upload.stream.seek(0)
    return head == b"PK\x03\x04"


@overload
def import_upload(source: FileStorage) -> ImportReport: ...
@overload
def import_upload(source: str, filename: str | None) -> Statement: ...


def import_upload(
    source: FileStorage | str, filename: str | None = None
) -> ImportReport | Statement:
    """Import a zip upload (the report) or one post's text (the statement), flashing what
    each post did: created, updated and what changed, unchanged; warnings; bad files.

    :raises UnsafeArchive: the zip is refused; nothing was imported.
    :raises InvalidStatement: the one post cannot be imported.
    """
    if isinstance(source, str):
        result = import_post(source, filename)
        statement = result.statement
        if result.created:
            flash(f"Statement “{statement.title}” imported.", "success")
        elif result.changes:
            flash(f"Statement “{statement.title}” updated: {', '.join(result.changes)}.", "success")
        else:
            flash(f"Statement “{statement.title}” is unchanged.", "info")
        for warning in result.warnings:
            flash(f"Warning: {warning}", "info")
        return statement
    report = import_zip(source.stream, source.filename or "upload.zip")
    created, updated, errors = len(report.created), len(report.updated), len(report.errors)
    flash(
        f"Imported the zip: {created} created, {updated} updated, "
        f"{errors} error{'' if errors == 1 else 's'}.",
        "error" if errors else "success",
    )
    lines = [result.describe() for result in report.results]
    lines += [f"warning: {source_name}: {warning}" for source_name, warning in report.warnings]
    lines += [f"error: {source_name}: {reason}" for source_name, reason in report.errors]
    for line in lines[:MAX_LINES]:
        flash(line, "error" if line.startswith("error:") else "info")
    if len(lines) > MAX_LINES:
        flash(f"… and {len(lines) - MAX_LINES} more.", "info")
    return report
