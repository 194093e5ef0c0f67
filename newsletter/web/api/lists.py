"""Mailing lists: POST /lists, GET /lists, GET /lists/{slug}."""

from __future__ import annotations

from flask import Response, jsonify, url_for

from newsletter.audience import lists as list_service
from newsletter.audience.models import OptIn
from newsletter.web.api import serializers
from newsletter.web.api.blueprint import bp
from newsletter.web.api.validation import json_object


@bp.post("/lists")
def create_list() -> tuple[Response, int, dict[str, str]]:
    """Create a list; 201 with the list, 409 when the slug is taken."""
    body = json_object({"slug", "name", "optin", "public", "description"})
    lst = list_service.create_list(
        body.string("slug", required=True).strip(),
        body.string("name", required=True).strip(),
        description=body.string("description"),
        optin=OptIn(body.choice("optin", [o.value for o in OptIn], default=OptIn.DOUBLE.value)),
        public=body.boolean("public", default=True),
    )
    location = url_for("api.get_list", slug=lst.slug)
    return jsonify(serializers.mailing_list(lst)), 201, {"Location": location}


@bp.get("/lists")
def list_lists() -> Response:
    """Every list, public and private."""
    return jsonify({"items": [serializers.mailing_list(lst) for lst in list_service.list_lists()]})


@bp.get("/lists/<slug>")
def get_list(slug: str) -> Response:
    """One list by its slug."""
    return jsonify(serializers.mailing_list(list_service.get_list_by_slug(slug)))
