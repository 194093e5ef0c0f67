"""The bounce mailbox poller: an IMAP mailbox over TLS, or a Maildir folder, read on the
workers' schedule.

Where the bounce address is a mailbox (a hosted account, or a Maildir an MTA delivers
into), each message in it goes to the policy (``take_message(raw, MAILBOX)``) and only
*after* that returned is it deleted (or moved to ``BOUNCE_IMAP_DONE_FOLDER``). A crash in
between leaves the message where it was, so it is read again on the next poll: a message
is never lost, at worst taken twice. Taking one twice is harmless to the policy's outcome
(a hard bounce stops an address that is already stopped; a soft bounce counts at most once
a UTC day; a complaint unsubscribes someone already unsubscribed), though a second event
row is kept for it.

Settings: ``BOUNCE_IMAP_URL`` (``imaps://user:password@host:993/INBOX``; TLS only, checked
against the system's CAs or ``BOUNCE_IMAP_CA_FILE``), ``BOUNCE_MAILDIR``,
``BOUNCE_POLL_SECONDS`` (how often), ``BOUNCE_POLL_MAX_MESSAGES`` (per poll) and
``BOUNCE_MAX_BYTES`` (the most of one message read; the rest is left out).

Scheduling: the workers' sweep calls :func:`enqueue_due`, which claims the poll for
``BOUNCE_POLL_SECONDS`` in the shared counters (Redis across hosts, memory on the embedded
default) and queues the ``poll_bounce_mailbox`` actor: one poll per interval across every
worker.
"""

from __future__ import annotations

import imaplib
import logging
import mailbox
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app

from newsletter import queue
from newsletter.auth.counters import counters
from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceSource
from newsletter.errors import ConfigError, NewsletterError
from newsletter.extensions import db

log = logging.getLogger(__name__)

#: the most of one message read when ``BOUNCE_MAX_BYTES`` is unset
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
IMAP_TIMEOUT = 30
#: the actor the sweep queues (``tasks.poll_bounce_mailbox``)
ACTOR = "poll_bounce_mailbox"
#: the shared counters' key of the claim on the next poll
CLAIM_KEY = "bounce-poll"

#: called with each message and its source; returns when the message is taken
MessageHandler = Callable[[bytes, BounceSource], Any]


class PollError(NewsletterError):
    """The mailbox could not be read (log in, select, fetch); ``reason`` says why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class ImapMailbox:
    """Where ``BOUNCE_IMAP_URL`` points."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"

    def describe(self) -> str:
        """``user@host:port/folder``, for logs (never the password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


@dataclass
class PollResult:
    """What one poll did: messages taken (and removed), left because handling failed, and
    how many of those taken were cut at the size cap."""

    taken: int = 0
    failed: int = 0
    truncated: int = 0
    errors: list[str] = field(default_factory=list)


def parse_imap_url(url: str) -> ImapMailbox:
    """``imaps://user:password@host[:port][/folder]`` (user and password URL-encoded).

    :raises ConfigError: not an ``imaps`` URL, or without host, user or password.
    """
    parts = urlsplit(url)
    if parts.scheme != "imaps":
        raise ConfigError(
            "NEWSLETTER_BOUNCE_IMAP_URL", "use imaps://user:password@host:993/INBOX (TLS only)"
        )
    try:
        port = parts.port or 993
    except ValueError:
        raise ConfigError("NEWSLETTER_BOUNCE_IMAP_URL", "the port is not a number") from None
    if not parts.hostname or not parts.username or parts.password is None:
        raise ConfigError("NEWSLETTER_BOUNCE_IMAP_URL", "it needs a host, a user and a password")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapMailbox(
        parts.hostname, port, unquote(parts.username), unquote(parts.password), folder
    )


def configured(config: Mapping[str, Any] | None = None) -> bool:
    """Whether a bounce mailbox (IMAP or Maildir) is set."""
    config = config if config is not None else current_app.config
    return bool(config.get("BOUNCE_IMAP_URL") or config.get("BOUNCE_MAILDIR"))


def enqueue_due() -> bool:
    """Queue a poll when one is due (the sweep calls it); True when one was queued.

    The claim lasts ``BOUNCE_POLL_SECONDS``, so however many workers sweep, one poll is
    queued per interval; a lost job only means the next interval polls.
    """
    config = current_app.config
    if not configured(config):
        return False
    interval = int(config.get("BOUNCE_POLL_SECONDS") or 300)
    if not counters().claim(CLAIM_KEY, interval):
        return False
    queue.enqueue(ACTOR)
    return True


def poll(handler: MessageHandler | None = None) -> PollResult:
    """Read the configured mailboxes once and hand each message to ``handler``.

    :param handler: default: the policy's ``take_message``.
    :raises PollError: the IMAP mailbox could not be read (what was taken stays taken).
    """
    config = current_app.config
    sink = handler if handler is not None else take_message
    limit = int(config.get("BOUNCE_POLL_MAX_MESSAGES") or 500)
    max_bytes = int(config.get("BOUNCE_MAX_BYTES") or DEFAULT_MAX_BYTES)
    result = PollResult()
    if config.get("BOUNCE_MAILDIR"):
        poll_maildir(Path(config["BOUNCE_MAILDIR"]), sink, limit=limit, max_bytes=max_bytes,
                     result=result)  # fmt: skip
    if config.get("BOUNCE_IMAP_URL"):
        poll_imap(
            parse_imap_url(str(config["BOUNCE_IMAP_URL"])), sink, limit=limit,
            max_bytes=max_bytes, ca_file=config.get("BOUNCE_IMAP_CA_FILE"),
            done_folder=config.get("BOUNCE_IMAP_DONE_FOLDER"), result=result,
        )  # fmt: skip
    if result.taken or result.failed:
        log.info("bounce mailbox: %s taken, %s left after a failure", result.taken, result.failed)
    return result


def take_message(raw: bytes, source: BounceSource) -> Any:
    """The default handler: the bounce policy."""
    return policy.take_message(raw, source)


# --- Maildir ------------------------------------------------------------------------------


def poll_maildir(
    path: Path,
    handler: MessageHandler,
    *,
    limit: int,
    max_bytes: int,
    result: PollResult | None = None,
) -> PollResult:
    """Hand each message of the Maildir ``path`` (``new/`` and ``cur/``) to ``handler``, then
    remove it. A message whose handler raised stays for the next poll."""
    result = result if result is not None else PollResult()
    folder = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(folder.iterkeys())[:limit]:  # keys start with the delivery time
        try:
            with folder.get_file(key) as message_file:
                raw = message_file.read(max_bytes + 1)
        except (FileNotFoundError, KeyError):
            continue  # another poller took it meanwhile
        if _handle(raw, max_bytes, handler, result, where=f"maildir {key}"):
            try:
                folder.remove(key)
            except (FileNotFoundError, KeyError):
                pass
    return result


# --- IMAP ---------------------------------------------------------------------------------


def poll_imap(
    where: ImapMailbox,
    handler: MessageHandler,
    *,
    limit: int,
    max_bytes: int,
    ca_file: str | None = None,
    done_folder: str | None = None,
    result: PollResult | None = None,
) -> PollResult:
    """Hand each undeleted message of the IMAP folder to ``handler``; after it returned,
    flag the message deleted (or move it to ``done_folder``) and expunge.

    :raises PollError: the server could not be reached, refused the login, or the folder.
    """
    result = result if result is not None else PollResult()
    with _imap(where, ca_file) as imap:
        uids = _command(imap, where, "search", imap.uid("SEARCH", "UNDELETED"))
        for uid in (uids[0] or b"").split()[:limit]:
            raw = _fetch(imap, where, uid.decode(), max_bytes)
            if raw is None:
                continue  # expunged by someone else meanwhile
            if _handle(raw, max_bytes, handler, result, where=f"imap uid {uid.decode()}"):
                _done(imap, where, uid.decode(), done_folder)
        _command(imap, where, "expunge", imap.expunge())
    return result


@contextmanager
def _imap(where: ImapMailbox, ca_file: str | None) -> Iterator[imaplib.IMAP4_SSL]:
    context = ssl.create_default_context(cafile=ca_file or None)
    try:
        imap = imaplib.IMAP4_SSL(where.host, where.port, ssl_context=context,
                                 timeout=IMAP_TIMEOUT)  # fmt: skip
    except (OSError, imaplib.IMAP4.error) as error:
        raise PollError(where.describe(), f"could not connect: {error}") from None
    try:
        try:
            imap.login(where.user, where.password)
        except imaplib.IMAP4.error:
            raise PollError(where.describe(), "the login was refused") from None
        _command(imap, where, "select", imap.select(_quoted(where.folder)))
        yield imap
        imap.close()  # also expunges what is flagged \Deleted
    except (OSError, imaplib.IMAP4.error) as error:  # abort: the connection broke
        raise PollError(where.describe(), f"the server failed: {error}") from None
    finally:
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _fetch(imap: imaplib.IMAP4_SSL, where: ImapMailbox, uid: str, max_bytes: int) -> bytes | None:
    # BODY.PEEK: reading does not mark it \Seen; <0.N>: the server sends at most N bytes.
    data = _command(
        imap,
        where,
        "fetch",
        imap.uid("FETCH", uid, f"(RFC822.SIZE BODY.PEEK[]<0.{max_bytes + 1}>)"),
    )
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return bytes(item[1])
    return None


def _done(imap: imaplib.IMAP4_SSL, where: ImapMailbox, uid: str, done_folder: str | None) -> None:
    if done_folder:
        # COPY, then flag: if we stop between the two, the message is in both (read twice),
        # never in neither.
        _command(imap, where, "copy", imap.uid("COPY", uid, _quoted(done_folder)))
    _command(imap, where, "store", imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"))


def _command(imap: imaplib.IMAP4_SSL, where: ImapMailbox, name: str, answer: Any) -> list[Any]:
    status, data = answer
    if status != "OK":
        detail = b" ".join(item for item in data if isinstance(item, bytes)).decode(
            errors="replace"
        )
        raise PollError(where.describe(), f"{name} failed: {detail[:200]}")
    return list(data)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- both ---------------------------------------------------------------------------------


def _handle(
    raw: bytes, max_bytes: int, handler: MessageHandler, result: PollResult, *, where: str
) -> bool:
    """Hand one message on; True when the handler returned (the message may go)."""
    if len(raw) > max_bytes:
        # Reports put what matters first (the DSN or ARF part); a huge attachment is not
        # read, and the policy keeps what an editor needs.
        raw = raw[:max_bytes]
        result.truncated += 1
    try:
        handler(raw, BounceSource.MAILBOX)
    except Exception as error:  # noqa: BLE001 - one bad message must not stop the rest
        db.session.rollback()  # the handler may have failed half-way through its transaction
        log.warning("bounce mailbox: %s not taken (%s); left for the next poll", where,
                    type(error).__name__)  # fmt: skip
        result.failed += 1
        result.errors.append(f"{where}: {type(error).__name__}")
        return False
    result.taken += 1
    return True
