"""Mailing lists: POST /lists, GET /lists, GET /lists/{slug}, PATCH /lists/{id}."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, url_for

from newsletter.audience import lists as list_service
from newsletter.audience.models import MailingList
from newsletter.errors import NotFound
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors
from newsletter.web.api.schemas import (
    ListCreateSchema,
    ListPageSchema,
    ListSchema,
    ListUpdateSchema,
)


@bp.post("/lists")
@body(ListCreateSchema, max_bytes=16 * KIB)
@bp.response(201, ListSchema, description="the new list")
@errors(409)
def create_list(data: dict[str, Any]) -> tuple[MailingList, int, dict[str, str]]:
    """Create a list; 409 when the slug is taken."""
    lst = list_service.create_list(
        data["slug"],
        data["name"],
        description=data["description"],
        optin=data["optin"],
        public=data["public"],
    )
    return lst, 201, {"Location": url_for("api.get_list", slug=lst.slug)}


@bp.get("/lists")
@bp.response(200, ListPageSchema, description="the lists")
def list_lists() -> dict[str, Any]:
    """All lists, public and private."""
    return {"items": list_service.list_lists()}


@bp.get("/lists/<slug>")
@bp.response(200, ListSchema, description="the list")
@errors(404)
def get_list(slug: str) -> MailingList:
    """One list by its slug."""
    return list_service.get_list_by_slug(slug)


@bp.patch("/lists/<int:list_id>")
@body(ListUpdateSchema, max_bytes=16 * KIB)
@bp.response(200, ListSchema, description="the list, changed")
@errors(404)
def update_list(data: dict[str, Any], list_id: int) -> MailingList:
    """Change a list's name, description, opt-in or visibility, or archive it
    (``"archived": true``) and bring it back; the slug stays."""
    return list_service.update_list(
        list_id,
        name=data.get("name"),
        description=data.get("description"),
        optin=data.get("optin"),
        public=data.get("public"),
        archived=data.get("archived"),
    )


def _not_a_list_id(slug: str) -> Response:
    """PATCH /lists/<not an integer>: a 404 like every id the converter refuses (the
    ``<slug>`` rule would otherwise answer 405, a status the document does not give)."""
    raise NotFound("list", slug)


# Flask's own add_url_rule: not part of the document, like the API's catch-all routes.
FlaskBlueprint.add_url_rule(
    bp, "/lists/<slug>", "patch_list_not_an_id", _not_a_list_id, methods=["PATCH"]
)
