"""Statements: POST /statements (Markdown with front matter), GET /statements[/{id}]."""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from newsletter.content import statements as statement_service
from newsletter.content.models import Statement
from newsletter.web.api.blueprint import ApiError, bp
from newsletter.web.api.edge import errors, query, read_body
from newsletter.web.api.schemas import (
    StatementCreateSchema,
    StatementPageSchema,
    StatementQuerySchema,
    StatementSchema,
)

MARKDOWN_TYPES = ("text/markdown", "text/x-markdown", "text/plain")
#: a statement is the largest body the API takes; the app-wide API cap applies
MARKDOWN_BODY = {
    "required": True,
    "content": {
        "text/markdown": {
            "schema": {"type": "string", "minLength": 1,
                       "description": "the Markdown file, YAML front matter included"}
        },
        "application/json": {"schema": StatementCreateSchema},
    },
}


@bp.post("/statements")
@query(StatementQuerySchema)
@bp.doc(requestBody=MARKDOWN_BODY)
@bp.response(201, StatementSchema, description="a new statement")
@bp.alt_response(200, schema=StatementSchema, success=True,
                 description="an existing statement (same slug), updated")
@errors(400, 413, 415)
def import_statement(args: dict[str, Any]) -> tuple[Statement, int, dict[str, str]]:
    """Import a Markdown statement with front matter (upsert by slug).

    The body is the Markdown file itself (``Content-Type: text/markdown``, an optional
    ``?filename=2020-11-03-slug.md`` gives the Jekyll slug and date) or JSON
    ``{"markdown": …, "filename": …}``. 201 when created, 200 when updated.
    """
    if request.mimetype in MARKDOWN_TYPES:
        markdown = request.get_data(as_text=True)
        filename = args.get("filename") or None
    elif request.is_json:
        data = read_body(StatementCreateSchema)
        markdown, filename = data["markdown"], data.get("filename") or None
    else:
        raise ApiError(
            415, "send the Markdown as text/markdown, or JSON {\"markdown\": …}", field="markdown"
        )
    if not markdown.strip():
        raise ApiError(422, "the Markdown is empty", field="markdown")
    if "\x00" in markdown:
        raise ApiError(422, "the Markdown contains a NUL character", field="markdown")
    statement, created = statement_service.import_statement(markdown, filename)
    location = url_for("api.get_statement", statement_id=statement.id)
    return statement, 201 if created else 200, {"Location": location}


@bp.get("/statements")
@bp.response(200, StatementPageSchema, description="the statements")
def list_statements() -> dict[str, Any]:
    """All statements, newest first, without bodies."""
    return {"items": statement_service.list_statements()}


@bp.get("/statements/<int:statement_id>")
@bp.response(200, StatementSchema, description="the statement")
@errors(404)
def get_statement(statement_id: int) -> Statement:
    """One statement with its Markdown, cleaned HTML and front matter."""
    return statement_service.get_statement(statement_id)
