"""The Maildir outbox: where the embedded default's mail goes, and what is in it.

With ``NEWSLETTER_SMTP_URL`` unset (or only ``maildir://`` relays) every message is written
into a Maildir folder instead of being sent; the admin's outbox pages read it from here.
"""

from __future__ import annotations

import email.policy
import mailbox
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from newsletter.errors import NotFound
from newsletter.mail.transport import parse_relay_urls


def outbox_path(config: Any) -> str | None:
    """The outbox folder when mail goes to one (no SMTP relay configured), else None."""
    relays = parse_relay_urls(config.get("SMTP_URL"))
    if not relays:
        return str(config["OUTBOX_PATH"])
    maildirs = [relay.path for relay in relays if relay.scheme == "maildir"]
    return maildirs[0] if maildirs and len(maildirs) == len(relays) else None


@dataclass(frozen=True)
class OutboxEntry:
    key: str
    subject: str
    to: str
    date: datetime
    size: int = 0


def list_outbox(path: str, *, limit: int | None = None) -> list[OutboxEntry]:
    """The messages in the outbox at ``path``, newest first (at most ``limit``)."""
    folder = Path(path)
    files: list[tuple[float, str, Path, int]] = []
    for sub in ("new", "cur"):
        directory = folder / sub
        if not directory.is_dir():
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file() and not entry.name.startswith("."):
                    stat = entry.stat()
                    key = entry.name.split(":", 1)[0]
                    files.append((stat.st_mtime, key, Path(entry.path), stat.st_size))
    files.sort(key=lambda item: (item[0], item[1]), reverse=True)
    parser = BytesHeaderParser(policy=email.policy.default)
    result = []
    for mtime, key, file, size in files[:limit] if limit is not None else files:
        try:
            with file.open("rb") as handle:
                headers = parser.parse(handle)
        except OSError:  # pragma: no cover - removed between the listing and the read
            continue
        result.append(
            OutboxEntry(
                key=key,
                subject=str(headers.get("Subject", "")),
                to=str(headers.get("To", "")),
                date=_header_date(headers.get("Date"), mtime),
                size=size,
            )
        )
    return result


def _header_date(value: object, mtime: float) -> datetime:
    if value:
        try:
            parsed = parsedate_to_datetime(str(value))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            pass
    return datetime.fromtimestamp(mtime, UTC)


class OutboxMessageNotFound(NotFound, KeyError):
    """No message with this key in the outbox (a KeyError too, as mailbox raises)."""

    def __str__(self) -> str:
        return self.message


def read_outbox(path: str, key: str) -> bytes:
    """The raw message with this key in the outbox at ``path``.

    :raises OutboxMessageNotFound: no such message (also a ``NotFound`` and a ``KeyError``).
    """
    maildir = mailbox.Maildir(path, factory=None, create=False)
    try:
        # Keys are looked up in the folder's table of contents, never joined into a path.
        return maildir.get_bytes(key)
    except (KeyError, FileNotFoundError):
        raise OutboxMessageNotFound("outbox message", key) from None
