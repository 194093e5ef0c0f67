"""Statements: POST /statements (Markdown with front matter), GET /statements[/{id}]."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any, TypeVar

from flask import current_app, jsonify, request, url_for
from werkzeug.wrappers import Response

from newsletter.content import statements as statement_service
from newsletter.content.archives import ZIP_TYPES
from newsletter.content.models import Statement
from newsletter.content.statements import ImportResult
from newsletter.web.api.blueprint import ApiError, bp
from newsletter.web.api.edge import errors, query, read_body
from newsletter.web.api.schemas import (
    StatementCreateSchema,
    StatementImportSchema,
    StatementPageSchema,
    StatementQuerySchema,
    StatementSchema,
    StatementZipImportSchema,
)

F = TypeVar("F", bound=Callable[..., Any])

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
        "application/zip": {
            "schema": {"type": "string", "contentMediaType": "application/zip",
                       "description": "a zip of Jekyll posts (a site, or its _posts folder)"}
        },
    },
}
#: a zip of posts may be larger than one statement (the import caps apply unpacked)
MAX_ZIP_BODY = 20 * 1024 * 1024
#: the 200 answer: an updated statement, or what a zip did
UPDATED_OR_ZIP = {
    "oneOf": [
        {"$ref": "#/components/schemas/StatementImport"},
        {"$ref": "#/components/schemas/StatementZipImport"},
    ]
}


def _imported(result: ImportResult) -> Statement:
    """The statement, carrying what its import changed for ``StatementImportSchema``."""
    statement = result.statement
    statement.changes = result.changes
    statement.warnings = result.warnings
    return statement


def _zip_import() -> Response:
    """A zip body: every post in it imported, or the zip refused whole (422)."""
    report = statement_service.import_zip(BytesIO(request.get_data()), "the zip")
    body = StatementZipImportSchema().dump({
        "items": [_imported(result) for result in report.results],
        "created": len(report.created),
        "updated": len(report.updated),
        "errors": [{"source": source, "reason": reason} for source, reason in report.errors],
    })  # fmt: skip
    return jsonify(body)


def _zip_sized(view: F) -> F:
    """The body cap ``limit_body`` applies: a zip's (one statement's is checked in the view)."""
    view.max_body_bytes = MAX_ZIP_BODY  # type: ignore[attr-defined]
    return view


@bp.post("/statements")
@_zip_sized
@query(StatementQuerySchema)
@bp.doc(requestBody=MARKDOWN_BODY)
@bp.response(201, StatementImportSchema, description="a new statement")
@bp.alt_response(200, schema=UPDATED_OR_ZIP, success=True,
                 description="an existing statement (same slug or permalink), updated, with "
                             "what changed; or, for a zip, what each post in it did")
@errors(400, 413, 415)
def import_statement(args: dict[str, Any]) -> tuple[Statement, int, dict[str, str]] | Response:
    """Import a Markdown statement with front matter (upsert by slug, then permalink).

    The body is the Markdown file itself (``Content-Type: text/markdown``, an optional
    ``?filename=2020-11-03-slug.md`` gives the Jekyll slug and date), JSON
    ``{"markdown": …, "filename": …}``, or a zip of Jekyll posts
    (``Content-Type: application/zip``: 200 with each post's statement, or 422 when the zip
    is refused, with nothing imported). 201 when created, 200 when updated; ``changes``
    says what an update changed.
    """
    if request.mimetype in ZIP_TYPES:
        return _zip_import()
    # Only a zip may be as large as MAX_ZIP_BODY; one statement keeps the API's own cap.
    cap = int(current_app.config["API_MAX_CONTENT_LENGTH"])
    request.max_content_length = min(cap, request.max_content_length or cap)
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, "the body is larger than this call takes")
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
    result = statement_service.import_post(markdown, filename)
    location = url_for("api.get_statement", statement_id=result.statement.id)
    return _imported(result), 201 if result.created else 200, {"Location": location}



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
