"""Segments: POST /segments, GET /segments, GET/PATCH/DELETE /segments/{id}; and the export,
GET /subscribers/export (CSV, streamed)."""

from __future__ import annotations

from typing import Any

from flask import Response, stream_with_context, url_for

from newsletter.audience.export import export_filename, start_export
from newsletter.audience.segments import service as segment_service
from newsletter.audience.segments.models import Segment
from newsletter.web.api.blueprint import api_user, bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.schemas import (
    ExportQuerySchema,
    SegmentCreateSchema,
    SegmentPageSchema,
    SegmentSchema,
    SegmentUpdateSchema,
)


def _answer(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id, "name": segment.name, "query": segment.query,
        "created_at": segment.created_at, "updated_at": segment.updated_at,
        "count": segment_service.count_matching(segment.query),
    }


@bp.post("/segments")
@body(SegmentCreateSchema, max_bytes=16 * KIB)
@bp.response(201, SegmentSchema, description="the new segment, with how many it matches")
@errors(409)
def create_segment(data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Save a segment. A query that does not parse is a 422 whose ``error.position`` is the
    1-based column at fault."""
    segment = segment_service.create_segment(
        data["name"], data["query"], created_by=api_user().id
    )
    return _answer(segment), 201, {"Location": url_for("api.get_segment", segment_id=segment.id)}


@bp.get("/segments")
@bp.response(200, SegmentPageSchema, description="the segments")
def list_segments() -> dict[str, Any]:
    """Every segment, by name (without counts: ask for one to count it)."""
    return {"items": segment_service.list_segments()}


@bp.get("/segments/<int:segment_id>")
@bp.response(200, SegmentSchema, description="the segment and how many it matches now")
@errors(404)
def get_segment(segment_id: int) -> dict[str, Any]:
    """One segment, with how many subscribers it matches now."""
    return _answer(segment_service.get_segment(segment_id))


@bp.patch("/segments/<int:segment_id>")
@body(SegmentUpdateSchema, max_bytes=16 * KIB)
@bp.response(200, SegmentSchema, description="the changed segment")
@errors(404, 409)
def update_segment(data: dict[str, Any], segment_id: int) -> dict[str, Any]:
    """Change a segment's name or query (issues that target it use the new query when they
    start sending)."""
    return _answer(segment_service.update_segment(segment_id, **data))


@bp.delete("/segments/<int:segment_id>")
@bp.response(204, description="deleted")
@errors(404)
def delete_segment(segment_id: int) -> tuple[str, int]:
    """Delete a segment; draft issues that targeted it no longer do."""
    segment_service.delete_segment(segment_id)
    return "", 204


@bp.get("/subscribers/export")
@query(ExportQuerySchema)
@bp.response(200, description="CSV: email,name,status,lists,created_at and one column per "
             "attribute; formula-like cells start with '", content_type="text/csv")
@errors(404)
def export_subscribers(args: dict[str, Any]) -> Response:
    """Everyone, a list's confirmed members (``list``) or a segment (``segment``), as CSV,
    streamed."""
    list_slug, segment_id = args.get("list"), args.get("segment")
    pieces = start_export(list_slug=list_slug, segment_id=segment_id)
    name = export_filename(list_slug=list_slug, segment_id=segment_id)
    return Response(
        stream_with_context(pieces),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )
