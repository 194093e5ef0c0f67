"""Statements: POST /statements (Markdown with front matter), GET /statements[/{id}]."""

from __future__ import annotations

from flask import Response, jsonify, request, url_for

from newsletter.content import statements as statement_service
from newsletter.content.models import Statement
from newsletter.web.api import serializers
from newsletter.web.api.blueprint import ApiError, bp
from newsletter.web.api.validation import json_object

MARKDOWN_TYPES = ("text/markdown", "text/x-markdown", "text/plain")


@bp.post("/statements")
def import_statement() -> tuple[Response, int, dict[str, str]]:
    """Create or update (by slug) a statement; 201 when created, 200 when updated.

    The body is the Markdown file itself (``Content-Type: text/markdown``, an optional
    ``?filename=2020-11-03-slug.md`` gives the Jekyll slug and date) or JSON
    ``{"markdown": …, "filename": …}``.
    """
    if request.mimetype in MARKDOWN_TYPES:
        markdown = request.get_data(as_text=True)
        filename = request.args.get("filename") or None
    elif request.is_json:
        body = json_object({"markdown", "filename"})
        markdown = body.string("markdown", required=True)
        filename = body.string("filename") or None
    else:
        raise ApiError(
            415, "send the Markdown as text/markdown, or JSON {\"markdown\": …}", field="markdown"
        )
    if not markdown.strip():
        raise ApiError(422, "the Markdown is empty", field="markdown")
    statement, created = statement_service.import_statement(markdown, filename)
    location = url_for("api.get_statement", statement_id=statement.id)
    return _full(statement), 201 if created else 200, {"Location": location}


@bp.get("/statements")
def list_statements() -> Response:
    """Every statement, newest first, without bodies."""
    statements = statement_service.list_statements()
    return jsonify({"items": [serializers.statement_summary(s) for s in statements]})


@bp.get("/statements/<int:statement_id>")
def get_statement(statement_id: int) -> Response:
    """One statement with its Markdown, cleaned HTML and front matter."""
    return _full(statement_service.get_statement(statement_id))


def _full(statement: Statement) -> Response:
    html = statement_service.statement_html(statement)
    return jsonify(serializers.statement(statement, html))
