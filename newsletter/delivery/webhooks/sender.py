"""One POST of a webhook: public addresses only (unless allowed), no redirect followed, a
timeout on every step and on the whole, and at most ``max_bytes`` of the answer read.

The address check is the feeds' (``content/fetch.py``): it is made where the connection is
made, on every address the name resolves to, so a name that resolves to a private address,
or changes between a check and the connection, cannot reach the machine's own services.
A redirect is an answer like any other non-2xx: the specification asks for the URL to be
updated instead, and following one would let an endpoint send us anywhere.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from newsletter.content.fetch import AddressRefused, FetchError, guarded_handlers
from newsletter.models import utcnow

USER_AGENT = "newsletter-webhooks/1.0"
_CHUNK = 16 * 1024
#: how much of an answer the log keeps
EXCERPT_CHARS = 300


@dataclass
class Answer:
    """What came of one POST."""

    #: the HTTP status; None when no answer came
    status: int | None
    #: empty on a 2xx; else what went wrong, for the log
    error: str
    duration_ms: int
    #: seconds the endpoint asked us to wait (``Retry-After`` on a 429 or 503)
    retry_after: float | None = None
    #: the address is refused: trying again would be refused again
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    # By hand: no redirect handler (redirects are not followed), no error processor (every
    # status comes back as an answer), no proxies from the environment, no file: or ftp:.
    opener = urllib.request.OpenerDirector()
    for handler in (*guarded_handlers(allow_private), urllib.request.UnknownHandler()):
        opener.add_handler(handler)
    return opener


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    max_bytes: int,
    allow_private: bool,
) -> Answer:
    """POST ``body`` (JSON) to ``url`` with ``headers``; never raises for the endpoint's
    faults, which come back in the :class:`Answer`."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
                 "Accept-Encoding": "identity"},
    )  # fmt: skip
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        response = _opener(allow_private).open(request, timeout=timeout)
    except AddressRefused:
        return Answer(None, _refusal(url), took(), refused=True)
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, AddressRefused):
            return Answer(None, _refusal(url), took(), refused=True)
        if isinstance(reason, FetchError):
            return Answer(None, reason.reason, took())
        if isinstance(reason, TimeoutError | socket.timeout):
            return Answer(None, f"no answer within {timeout:g} seconds", took())
        return Answer(None, f"cannot connect ({reason})", took())
    except FetchError as error:
        return Answer(None, error.reason, took())
    except TimeoutError:
        return Answer(None, f"no answer within {timeout:g} seconds", took())
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Answer(None, f"cannot send ({error.__class__.__name__}: {error})", took())
    with response:
        status = int(response.status)
        excerpt, cut = _read_capped(response, max_bytes, deadline=started + 2 * timeout)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        location = response.headers.get("Location")
    if 200 <= status < 300:
        return Answer(status, "", took())
    problem = f"the endpoint answered {status} {response.reason}".rstrip()
    if 300 <= status < 400:
        problem += f" (a redirect{' to ' + location[:200] if location else ''}: not followed;"
        problem += " register the new address instead)"
    if excerpt:
        problem += f": {excerpt}{'…' if cut else ''}"
    return Answer(status, problem, took(), retry_after=retry_after)


def _read_capped(
    response: http.client.HTTPResponse, max_bytes: int, *, deadline: float
) -> tuple[str, bool]:
    """The start of the answer (for the log) and whether more was left unread; at most
    ``max_bytes`` are read, and reading stops at the deadline."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < max_bytes and time.monotonic() < deadline:
            chunk = response.read1(min(_CHUNK, max_bytes - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (OSError, http.client.HTTPException):
        pass  # the status is what counts; a broken body only shortens the excerpt
    text = " ".join(b"".join(chunks).decode("utf-8", "replace").split())
    cut = size >= max_bytes or len(text) > EXCERPT_CHARS
    return text[:EXCERPT_CHARS], cut


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())


def _refusal(url: str) -> str:
    host = urlsplit(url).hostname or url
    return (
        f"{host} is a private, loopback or link-local address; webhooks go to public "
        "addresses only (NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE)"
    )
