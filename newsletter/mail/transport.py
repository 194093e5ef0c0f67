"""Where messages go: SMTP relays (pooled, lazily connected) or the Maildir outbox.

STUB: interface fixed, body to be written (helper "content+mail").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Relay:
    """One relay from ``NEWSLETTER_SMTP_URL``: ``smtp://user:pass@host:587?starttls=true``,
    ``smtps://…`` (implicit TLS), or ``maildir:///path``."""

    scheme: str
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    path: str = ""  # maildir only

    @property
    def name(self) -> str:
        return self.path if self.scheme == "maildir" else f"{self.host}:{self.port}"


def parse_relay_urls(value: str | None) -> list[Relay]:
    """Parse a comma-separated list of relay URLs; empty or None means the outbox.

    :raises ValueError: with a sentence saying what is wrong with which URL.
    """
    if not value or not value.strip():
        return []
    return [_parse_relay_url(part.strip()) for part in value.split(",") if part.strip()]


def _parse_relay_url(url: str) -> Relay:
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        if not parts.path:
            raise ValueError(f"{url!r} names no folder; use maildir:///path/to/outbox")
        return Relay(scheme="maildir", path=unquote(parts.path))
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError(f"unsupported scheme in {url!r}; use smtp://, smtps:// or maildir://")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
    return Relay(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=starttls,
    )


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Send one message; return the relay's reply (e.g. ``250 2.0.0 Ok``).

        :raises TemporaryDeliveryError: 4xx or a lost connection (retry later).
        :raises PermanentDeliveryError: 5xx for this recipient (never retried).
        """
        ...

    def close(self) -> None: ...


def open_transport(config: Any) -> Transport:
    """A transport for the app's settings (``SMTP_URL`` or the outbox at ``OUTBOX_PATH``)."""
    raise NotImplementedError
