"""Outgoing webhooks: GET/POST /webhooks, DELETE /webhooks/{id} (admins only).

The secret is in the answer to the POST only; the admin page shows it again on request.
"""

from __future__ import annotations

from typing import Any

from newsletter import events
from newsletter.delivery.webhooks import service
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors
from newsletter.web.api.schemas import WebhookCreatedSchema, WebhookCreateSchema, WebhookPageSchema


@bp.get("/webhooks")
@bp.response(200, WebhookPageSchema, description="the endpoints")
def list_webhooks() -> dict[str, Any]:
    """Every webhook endpoint, without its secret."""
    return {"items": service.list_endpoints()}


@bp.post("/webhooks")
@body(WebhookCreateSchema, max_bytes=8 * KIB)
@bp.response(201, WebhookCreatedSchema, description="the new endpoint, with its secret")
def create_webhook(data: dict[str, Any]) -> tuple[Any, int]:
    """Register an endpoint for some event kinds; 422 for a refused address."""
    endpoint = service.create_endpoint(
        data["url"], data["events"], known=events.EVENT_KINDS, description=data["description"]
    )
    return endpoint, 201


@bp.delete("/webhooks/<int:endpoint_id>")
@bp.response(204, description="deleted, with its delivery log")
@errors(404)
def delete_webhook(endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    service.delete_endpoint(endpoint_id)
