"""Serving mail HTML (issue previews, outbox messages) for a sandboxed iframe.

Mail HTML is not ours to trust: it is served as a mail document (``web/headers.py``), under a
Content-Security-Policy that allows no script, no form and no plugin, and a ``sandbox``
directive that holds even when the frame's URL is opened on its own. Links open in a new tab,
outside the sandbox, so a confirmation link in the outbox can be followed.
"""

from __future__ import annotations

import re

from flask import make_response
from werkzeug.wrappers import Response

from newsletter.web.headers import mail_document

_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_BASE_TARGET = '<base target="_blank">'


def with_links_in_new_tabs(html: str) -> str:
    """``html`` with a ``<base target="_blank">`` so its links leave the frame."""
    match = _HEAD.search(html)
    if match is None:
        return _BASE_TARGET + html
    return html[: match.end()] + _BASE_TARGET + html[match.end():]


def framed_html(html: str, status: int = 200) -> Response:
    """A response for an ``<iframe sandbox>`` that shows ``html`` and runs none of it."""
    response = make_response(with_links_in_new_tabs(html), status)
    response.mimetype = "text/html"
    return mail_document(response, framed=True)
