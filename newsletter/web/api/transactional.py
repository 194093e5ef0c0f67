"""Transactional mail: POST /tx (one templated message to one address), GET /tx/{id}."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for

from newsletter.delivery import transactional as tx_service
from newsletter.delivery.transactional import TransactionalMessage, TransactionalQueueError
from newsletter.web.api.blueprint import bp, error_response
from newsletter.web.api.edge import KIB, body, errors
from newsletter.web.api.schemas import TransactionalCreateSchema, TransactionalSchema


@bp.post("/tx")
@body(TransactionalCreateSchema, max_bytes=128 * KIB)  # data: at most 64 KiB of it
@bp.response(202, TransactionalSchema, description="rendered and queued")
@errors(404, 503)
def send_transactional(data: dict[str, Any]) -> tuple[TransactionalMessage, int, dict[str, str]]:
    """Send one templated message to one address, ahead of bulk sends.

    Rendered and queued at once; poll GET /tx/{tx_id} for the outcome.
    """
    row = tx_service.create(
        to=data["to"], template=data["template"], subject=data["subject"], data=data["data"],
        name=data["name"],
    )
    return row, 202, {"Location": url_for("api.get_transactional", tx_id=row.id)}


@bp.get("/tx/<int:tx_id>")
@bp.response(200, TransactionalSchema, description="the message")
@errors(404)
def get_transactional(tx_id: int) -> TransactionalMessage:
    """One transactional message: status, attempts, the relay's last reply, Message-ID."""
    return tx_service.get(tx_id)


@bp.errorhandler(TransactionalQueueError)
def _not_queued(error: TransactionalQueueError) -> Response:
    response = error_response(503, "the queue is not available; the message was not sent")
    response.headers["Retry-After"] = "30"
    return response
