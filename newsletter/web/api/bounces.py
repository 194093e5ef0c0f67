"""Bounces: POST /bounces, a raw report (``message/rfc822``) or ``{"email", "kind", "reason"}``.

The answer never says whether the address is subscribed: a report about an address nobody
has gets the same 202 as one about a subscriber.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from newsletter.audience.addresses import normalise_email
from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceSource
from newsletter.errors import InvalidEmail
from newsletter.web.api.blueprint import ApiError, bp
from newsletter.web.api.edge import errors, read_body
from newsletter.web.api.schemas import BounceReportSchema, BounceTakenSchema

RAW_TYPES = ("message/rfc822",)
BOUNCE_BODY = {
    "required": True,
    "content": {
        "message/rfc822": {
            "schema": {
                "type": "string",
                "description": "the bounce or complaint as received (a DSN, an ARF "
                "report…), headers included",
            }
        },
        "application/json": {"schema": BounceReportSchema},
    },
}


def _sized(view: Any) -> Any:
    # A raw report may be larger than the API's usual cap (it carries the returned message).
    view.max_body_bytes = policy.MAX_MESSAGE_BYTES
    return view


@bp.post("/bounces")
@_sized
@bp.doc(requestBody=BOUNCE_BODY)
@bp.response(
    202,
    BounceTakenSchema,
    description="taken (the same answer whether or not the address is known)",
)
@errors(400, 413, 415, 422)
def take_bounce() -> tuple[dict[str, Any], int]:
    """Report a bounce or a complaint: the raw message, or what it says as JSON.

    A raw message goes through the same classifier as every other intake; one it cannot read
    is kept for an editor (``kept: true``). JSON names the address and the kind outright.
    """
    if request.mimetype in RAW_TYPES:
        cap = min(policy.MAX_MESSAGE_BYTES, int(current_app.config["BOUNCE_MAX_BYTES"]))
        if request.content_length is not None and request.content_length > cap:
            raise ApiError(413, "the message is larger than this call takes")
        raw = request.get_data()
        if not raw.strip():
            raise ApiError(422, "the message is empty")
        outcome = policy.take_message(raw[:cap], BounceSource.API)
        return {"kind": outcome.kind, "kept": outcome.kept}, 202
    if not request.is_json:
        raise ApiError(415, 'send the report as message/rfc822, or JSON {"email", "kind"}')
    data = read_body(BounceReportSchema)
    try:
        address = normalise_email(data["email"])
    except InvalidEmail as error:
        raise ApiError(422, f"email: {error.reason}", field="email") from None
    policy.record(address, data["kind"], data["reason"], BounceSource.API)
    return {"kind": data["kind"], "kept": False}, 202
