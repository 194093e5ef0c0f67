"""Logging for the processes the commands start: text or JSON lines, each with the request
or job it belongs to, and never an address or a token unless ``NEWSLETTER_LOG_SENSITIVE``.

Addresses reach log lines inside relays' replies ("550 5.1.1 <ann@example.org>: unknown")
and tokens inside request lines (``GET /manage/<token>``), so the filter looks at the final
text of every record, whoever logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

#: the Dramatiq message being processed by this thread (set by the broker's middleware)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
#: signed links, API tokens, hashes: URL-safe characters with a run of 20 or more among
#: them, dot-joined parts included (a signed link's payload, time and signature)
TOKEN = re.compile(r"(?:[A-Za-z0-9_-]+\.){0,3}[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TEXT_FORMAT = "%(levelname)s [%(name)s] %(message)s"


def redact(text: str) -> str:
    """The text with every address and token replaced by a marker."""
    return TOKEN.sub("[token]", ADDRESS.sub("[address]", text))


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to each record (None outside either)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        record.job_id = job_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, job_id (and the
    exception's traceback, when there is one); ``redacting``: message and traceback pass
    through :func:`redact`."""

    def __init__(self, *, redacting: bool) -> None:
        super().__init__()
        self.redacting = redacting

    def format(self, record: logging.LogRecord) -> str:
        clean = redact if self.redacting else str
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            entry["exception"] = clean(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RedactingText(logging.Formatter):
    """The text format, with :func:`redact` over the whole text (tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, a replaced stream)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup(app: Flask) -> None:
    """Send this process's logs to stderr in the configured format (commands call this)."""
    handler = StderrHandler()
    handler.addFilter(ContextFilter())
    redacting = not app.config.get("LOG_SENSITIVE")
    if app.config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter(redacting=redacting))
    elif redacting:
        handler.setFormatter(RedactingText(TEXT_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """Give each request an id (the proxy's ``X-Request-ID`` when it is a sane one), kept
    for its log lines and sent back in the response."""

    @app.before_request
    def _request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex[:16]

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response
