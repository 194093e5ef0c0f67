"""Security headers: set here, for every response the app gives, and nowhere else.

Our own pages get a Content-Security-Policy that runs only this origin's scripts and styles
(no inline code: the templates load ``static/admin.js`` and ``style.css``; a template that
truly needs an inline block marks it with ``nonce="{{ csp_nonce() }}"``) and may not be
framed; the archive's web versions of issues are such pages. Mail HTML (the admin's issue
and template previews and outbox frames) is not ours to trust and carries inline styles:
:func:`mail_document` gives it a policy of its own, with inline styles, no script, no form
and a sandbox.

Referrer-Policy is ``same-origin``, not ``no-referrer``: on https, Flask-WTF checks that a
form post's Referer is this site, and links still tell no other site where they came from.
A page whose path holds a secret (``/manage/<token>``, ``/admin/reset/<token>``) gets
``strict-origin`` instead: its stylesheet, script and form post then name only this origin
as their Referer, so the token never lands in a log line beside them (Flask-WTF's check
still passes), and other sites learn the origin at most, never the path.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

from flask import Flask, current_app, g, has_request_context, request
from werkzeug.wrappers import Response

#: Our own pages: this origin's files only, nothing inline, never framed.
PAGE_POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
#: Anything that is not HTML (JSON, the Atom feed, static files): nothing to run or frame.
RESOURCE_POLICY: dict[str, str] = {"default-src": "'none'", "frame-ancestors": "'none'"}
#: Mail HTML: its inline styles and remote images, but no script, no form, no plugin; the
#: sandbox holds even when the document is opened on its own. Popups may leave the sandbox,
#: so links in a previewed mail open normally in a new tab.
MAIL_POLICY: dict[str, str] = {
    "default-src": "'none'",
    "img-src": "https: http: data: cid:",
    "style-src": "'unsafe-inline'",
    "font-src": "data:",
    "form-action": "'none'",
    "frame-ancestors": "'none'",
    "sandbox": "allow-popups allow-popups-to-escape-sandbox",
}

AnyResponse = TypeVar("AnyResponse", bound=Response)

#: route arguments whose names say they hold a secret (``/admin/setup/<token>``)
SECRET_ARGUMENTS = ("token", "secret", "password", "code")

HSTS = "max-age=31536000"  # a year; includeSubDomains and preload are the operator's call
_MAIL_DOCUMENT = "_newsletter_mail_document"


def init_app(app: Flask) -> None:
    """Set the headers on every response of ``app`` and offer ``csp_nonce()`` to templates."""
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def csp_nonce() -> str:
    """This request's nonce for an inline ``<script>`` or ``<style>`` that cannot be a file."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def mail_document(response: AnyResponse, *, framed: bool = False) -> AnyResponse:
    """Mark ``response`` as mail HTML, to be served under :data:`MAIL_POLICY`.

    :param framed: shown in the admin's own ``<iframe>`` (previews, outbox): this origin may
        frame it; elsewhere nobody may.
    """
    setattr(response, _MAIL_DOCUMENT, "'self'" if framed else "'none'")
    return response


def set_security_headers(response: Response) -> Response:
    """The headers every response carries (an ``after_request`` hook)."""
    headers = response.headers
    # Popped, not read: where one app context spans several requests (tests), each request
    # must still get a nonce of its own.
    headers["Content-Security-Policy"] = _policy(response, g.pop("csp_nonce", None))
    headers["X-Content-Type-Options"] = "nosniff"
    mail = getattr(response, _MAIL_DOCUMENT, None) is not None
    # Links in mail may lead anywhere; nobody there learns which issue or preview they left.
    if mail:
        headers["Referrer-Policy"] = "no-referrer"
    elif secret_in_path():
        headers["Referrer-Policy"] = "strict-origin"
    else:
        headers["Referrer-Policy"] = "same-origin"
    if str(current_app.config["BASE_URL"]).startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    return response


def is_secret(argument: str) -> bool:
    """Whether a route argument of this name holds a secret, by its name."""
    return any(word in argument.lower() for word in SECRET_ARGUMENTS)


def secret_in_path() -> bool:
    """Whether this request's path holds a secret: a route argument named like one, given,
    and not a number (``/admin/tokens/<int:token_id>`` names an id, not the token)."""
    if not has_request_context() or request.url_rule is None:
        return False
    return any(
        is_secret(name) and isinstance(value, str) and value
        for name, value in (request.view_args or {}).items()
    )


def _policy(response: Response, nonce: str | None) -> str:
    frame_ancestors = getattr(response, _MAIL_DOCUMENT, None)
    if frame_ancestors is not None:
        return _join({**MAIL_POLICY, "frame-ancestors": frame_ancestors})
    if response.mimetype != "text/html":
        return _join(RESOURCE_POLICY)
    policy = dict(PAGE_POLICY)
    if nonce is not None:
        policy["script-src"] += f" 'nonce-{nonce}'"
        policy["style-src"] += f" 'nonce-{nonce}'"
    return _join(policy)


def _join(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())
