"""The outbox browser: the mail the embedded default writes to a Maildir instead of sending.

With ``NEWSLETTER_SMTP_URL`` unset (``make run``), confirmation mails and issues land in the
instance folder's outbox; here they can be read and their links followed.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

from flask import abort, current_app, render_template
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from newsletter.errors import NotFound
from newsletter.mail.outbox import list_outbox, outbox_path, read_outbox
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.frames import framed_html

#: Headers shown above a message, in this order, when present.
SHOWN_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
)
#: How many of the newest messages the outbox page lists.
OUTBOX_PAGE = 200
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


def _require_outbox() -> str:
    path = outbox_path(current_app.config)
    if path is None:
        abort(404)
    return path


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def linkify(text: str) -> Markup:
    """Escape plain text and turn its http(s) URLs into links that open in a new tab."""
    pieces: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        end = match.start() + len(url)
        pieces.append(str(escape(text[last : match.start()])))
        pieces.append(
            f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(url)}</a>'
        )
        last = end
    pieces.append(str(escape(text[last:])))
    return Markup("".join(pieces))  # noqa: S704 - every piece was escaped above


def _read(path: str, key: str) -> bytes:
    try:
        return read_outbox(path, key)
    except (KeyError, FileNotFoundError, ValueError):
        raise NotFound("message", key) from None


@bp.get("/outbox")
def outbox() -> str:
    """The messages in the outbox, newest first."""
    path = _require_outbox()
    # A bench run can leave 100 000 messages: list the newest only.
    entries = list(list_outbox(path, limit=OUTBOX_PAGE + 1))
    return render_template(
        "admin/outbox.html",
        entries=entries[:OUTBOX_PAGE],
        more=len(entries) > OUTBOX_PAGE,
        path=path,
    )


@bp.get("/outbox/<key>")
def outbox_message(key: str) -> str:
    """One message: its headers, its text part (links clickable), its HTML part framed."""
    path = _require_outbox()
    message = _parse(_read(path, key))
    headers = [(name, str(message[name])) for name in SHOWN_HEADERS if message[name] is not None]
    text = _part(message, "plain")
    return render_template(
        "admin/outbox_message.html",
        key=key,
        headers=headers,
        subject=str(message["Subject"] or "(no subject)"),
        text=linkify(text) if text is not None else None,
        has_html=_part(message, "html") is not None,
    )


@bp.get("/outbox/<key>/html")
def outbox_message_html(key: str) -> Response:
    """The HTML part of one message, for the sandboxed iframe."""
    path = _require_outbox()
    html = _part(_parse(_read(path, key)), "html")
    if html is None:
        raise NotFound("HTML part of message", key)
    return framed_html(html)
