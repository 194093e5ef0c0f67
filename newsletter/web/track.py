"""The public tracking endpoints: the open pixel and the click redirector.

Both work without cookies, set none, send nothing anywhere, store no address and no agent
(``delivery/analytics/tracking.py`` does the counting). The redirector only sends people
to a target covered by the link's signature: a tampered or unsigned target is a 404, never
a redirect, so it cannot be used to send anyone elsewhere in our name.
"""

from __future__ import annotations

import base64
import logging

from flask import Blueprint, Response, current_app, request
from werkzeug.utils import redirect
from werkzeug.wrappers import Response as BaseResponse

from newsletter.delivery.analytics.models import TrackingKind
from newsletter.delivery.analytics.tracking import (
    Hit,
    read_link_token,
    read_recipient_token,
    record_hit,
)
from newsletter.errors import InvalidToken

log = logging.getLogger(__name__)

bp = Blueprint("track", __name__)

#: a transparent 1×1 GIF
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = "no-store, private, max-age=0"


def _scanner_seconds() -> float:
    return float(current_app.config.get("TRACKING_SCANNER_SECONDS", 10))


def _hit(kind: TrackingKind, link: int = 0) -> Hit:
    return Hit(kind=kind, method=request.method, user_agent=request.user_agent.string or "",
               link=link)  # fmt: skip


@bp.route("/t/o/<token>", methods=["GET"])
def open_pixel(token: str) -> Response:
    """The pixel of a tracked issue: counts an open, answers a transparent GIF."""
    try:
        reader = read_recipient_token(token)
    except InvalidToken:
        return Response(b"", status=404, headers={"Cache-Control": _NO_STORE})
    record_hit(reader, _hit(TrackingKind.OPEN), scanner_seconds=_scanner_seconds())
    return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": _NO_STORE})


@bp.route("/t/c/<link>", methods=["GET"], defaults={"token": None})
@bp.route("/t/c/<link>/<token>", methods=["GET"])
def click(link: str, token: str | None) -> BaseResponse:
    """A tracked link: counts a click, then redirects to the target its signature covers."""
    try:
        target = read_link_token(link)
    except InvalidToken:
        return Response(
            "This link is not valid.\n", status=404, mimetype="text/plain",
            headers={"Cache-Control": _NO_STORE},
        )  # fmt: skip
    reader = None
    if token is not None:
        try:
            reader = read_recipient_token(token)
        except InvalidToken:
            reader = None  # the target is still ours to send them to; nothing is counted
    if reader is not None and reader.issue_id == target.issue_id:
        record_hit(
            reader, _hit(TrackingKind.CLICK, target.position),
            scanner_seconds=_scanner_seconds(),
        )  # fmt: skip
    response = redirect(target.url, 302)
    response.headers["Cache-Control"] = _NO_STORE
    return response
