"""The archive, from an issue's page: keep an issue out of it, or let it back in."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from newsletter.content.archive import archive_state, archive_url, set_kept_out
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm


@bp.context_processor
def _archive_context() -> dict[str, Any]:
    return {"archive_state": archive_state, "issue_public_url": archive_url}


@bp.post("/issues/<int:issue_id>/kept-out")
def issue_kept_out(issue_id: int) -> Response:
    """Keep the issue out of the public archive (``keep=1``) or let it in (``keep=0``)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    keep = request.form.get("keep") == "1"
    set_kept_out(issue_id, keep)
    flash("Kept out of the archive." if keep else "The archive may show this issue.", "success")
    return redirect(url_for("admin.issue", issue_id=issue_id))
