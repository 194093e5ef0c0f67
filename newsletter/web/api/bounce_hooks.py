"""Provider webhooks: POST /bounces/ses, /bounces/postmark, /bounces/sendgrid, /bounces/mailgun.

No bearer token here: each provider proves itself its own way (``delivery/bounces/providers``)
and a failed check is a 403 (a 401 for Postmark's basic auth). A provider that is not
configured answers 404, like a route that does not exist. The body is capped before it is
read. Success is a 204 whatever the report was about, so a caller learns nothing about who
is subscribed; the policy's work is one short transaction, so the answer comes at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, request

from newsletter.delivery.bounces.providers import (
    MAX_BODY_BYTES,
    ProviderNotConfigured,
    WebhookMalformed,
    WebhookRefused,
    WebhookRequest,
    receive,
)
from newsletter.web.api.blueprint import bp, error_response

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: the answers every webhook may give besides its 204
_DOCUMENTED = {
    400: "BadRequest",
    403: "WebhookRefused",
    404: "NotFound",
    413: "PayloadTooLarge",
}
#: the body each provider posts, as far as the document can say (the provider's own shape)
_JSON_BODY: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
_JSON_ARRAY: dict[str, Any] = {
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
}


def webhook(
    *, extra: dict[int, str] | None = None, body: dict[str, Any] | None = None
) -> Callable[[F], F]:
    """Mark a view as a provider webhook: no bearer token, no audit row, the body capped,
    and its answers documented."""

    def decorate(view: F) -> F:
        for status, name in {**_DOCUMENTED, **(extra or {})}.items():
            view = bp.alt_response(status, response=name)(view)
        view = bp.response(204, description="taken (or nothing in it to act on)")(view)
        view = bp.doc(security=[], requestBody={"required": True, "content": body or _JSON_BODY})(
            view
        )
        view.authenticates_itself = True  # type: ignore[attr-defined] # see require_token
        view.audited = False  # type: ignore[attr-defined] # see audit_trail
        view.max_body_bytes = MAX_BODY_BYTES  # type: ignore[attr-defined] # see limit_body
        return view

    return decorate


@bp.post("/bounces/ses")
@webhook(body={"text/plain": {"schema": {"type": "string"}}, **_JSON_BODY})
def receive_ses_bounces() -> Response:
    """Amazon SES bounces and complaints through an SNS topic (HTTPS subscription).

    The SNS signature is checked with the certificate SNS publishes, and the topic must be
    one of ``NEWSLETTER_BOUNCE_SES_TOPICS``; a subscription is confirmed on its own.
    """
    return _take("ses")


@bp.post("/bounces/postmark")
@webhook(extra={401: "WebhookUnauthorized"})
def receive_postmark_bounces() -> Response:
    """Postmark's bounce and spam-complaint webhooks, with the basic-auth credentials of
    ``NEWSLETTER_BOUNCE_POSTMARK_USER`` and ``…_PASSWORD`` in the webhook's URL."""
    return _take("postmark")


@bp.post("/bounces/sendgrid")
@webhook(body=_JSON_ARRAY)
def receive_sendgrid_bounces() -> Response:
    """SendGrid's signed Event Webhook (bounce, dropped, spamreport), checked with
    ``NEWSLETTER_BOUNCE_SENDGRID_PUBLIC_KEY``."""
    return _take("sendgrid")


@bp.post("/bounces/mailgun")
@webhook()
def receive_mailgun_bounces() -> Response:
    """Mailgun's signed webhooks (failed, complained), checked with
    ``NEWSLETTER_BOUNCE_MAILGUN_SIGNING_KEY``."""
    return _take("mailgun")


def _take(provider: str) -> Response:
    webhook_request = WebhookRequest(
        body=request.get_data(cache=False),  # raises 413 past the cap (limit_body)
        headers={name.lower(): value for name, value in request.headers.items()},
        now=time.time(),
    )
    try:
        receive(provider, webhook_request)
    except ProviderNotConfigured:
        return error_response(404, "no such resource")
    except WebhookRefused as error:
        log.info("%s webhook refused: %s", provider, error.reason)
        response = error_response(error.status, "the request is refused")
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="bounces"'
        return response
    except WebhookMalformed as error:
        log.info("%s webhook unreadable: %s", provider, error.reason)
        return error_response(400, error.reason)
    return Response(status=204)
