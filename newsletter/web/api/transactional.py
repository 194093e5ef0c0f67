"""Transactional mail: POST /tx (one templated message to one address), GET /tx/{id}."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from newsletter.delivery import transactional as tx_service
from newsletter.delivery.transactional import TransactionalMessage, TransactionalQueueError
from newsletter.errors import ValidationError
from newsletter.web.api.blueprint import bp, error_response
from newsletter.web.api.serializers import iso
from newsletter.web.api.validation import json_object
from newsletter.web.ids import MAX_ID


@bp.post("/tx")
def send_transactional() -> tuple[Response, int, dict[str, str]]:
    """Render and queue one message; 202 with its id and status (poll GET /tx/{id})."""
    body = json_object({"to", "template", "subject", "data", "name"})
    row = tx_service.create(
        to=body.string("to", required=True),
        template=_template_key(body.data.get("template")),
        subject=body.string("subject", required=True),
        data=_data(body.data.get("data")),
        name=body.string("name"),
    )
    location = url_for("api.get_transactional", tx_id=row.id)
    return jsonify(serialize(row)), 202, {"Location": location}


@bp.get("/tx/<int:tx_id>")
def get_transactional(tx_id: int) -> Response:
    """One transactional message: status, attempts, the relay's last reply, Message-ID."""
    return jsonify(serialize(tx_service.get(tx_id)))


@bp.errorhandler(TransactionalQueueError)
def _not_queued(error: TransactionalQueueError) -> Response:
    response = error_response(503, "the queue is not available; the message was not sent")
    response.headers["Retry-After"] = "30"
    return response


def _template_key(value: Any) -> str | int:
    """A template name, or an id (as the issues API takes)."""
    if isinstance(value, str) and value.strip():
        if "\x00" in value:
            raise ValidationError("template must not contain NUL characters", field="template")
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_ID:  # no row has it; PostgreSQL would refuse the look-up
            raise ValidationError("template is not a valid id", field="template")
        return value
    if value is None:
        raise ValidationError("template is required", field="template")
    raise ValidationError("template must be a template name (or id)", field="template")


def _data(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("data must be a JSON object", field="data")
    return value


def serialize(row: TransactionalMessage) -> dict[str, Any]:
    """A transactional message as the API shows it (never its body)."""
    return {
        "id": row.id,
        "status": row.status.value,
        "to": row.to_address,
        "name": row.to_name,
        "subject": row.subject,
        "template": row.template_id,
        "attempts": row.attempts,
        "last_reply": row.last_reply,
        "message_id": row.message_id,
        "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "sent_at": iso(row.sent_at),
    }
