"""Sending one batch: claim rows under a lease, personalise, send, record each outcome.

Each message goes out through an outbound session in three steps, which also lay out the
overlap that makes the send fast::

    smtp.begin(envelope)               # its MAIL/RCPT/DATA went out with the last message's end
    smtp.write(message)                # the content; the relay reads it while we go on:
    built = build(following)           #   the next message is built,
    recorder.wait()                    #   the last outcome's commit collected;
    smtp.finish(next_envelope=nxt)     # ".\r\n" and the next MAIL/RCPT in one write
    recorder.record(row)               # its outcome sent to the database, not waited for

The outcome of each message is committed before the end of the next one goes out on the
same connection (the end is what lets the relay accept a message), so a worker killed at
any instant leaves at most one message per open connection accepted by the relay but not
recorded: the only duplicate a restart can cause. Outcomes are recorded under the claim's
token: a worker whose rows were handed to another (its heartbeat stopped, see
``heartbeat``) learns it from that outcome, before the next message can be accepted, and
stops, so the same bound holds for a worker cut off from the database while still sending.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select

from newsletter import broker
from newsletter.audience.addresses import ascii_address
from newsletter.audience.tokens import manage_url, unsubscribe_url
from newsletter.content.compose import sender_address
from newsletter.content.models import Issue, IssueStatus, TrackingMode
from newsletter.delivery.analytics.tracking import TokenMaker, instrument
from newsletter.delivery.bounces import returnpath
from newsletter.delivery.outbound import Session, outbound
from newsletter.delivery.send import heartbeat, outcomes
from newsletter.errors import (
    DomainBusy,
    NotFound,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
)
from newsletter.extensions import db
from newsletter.mail.message import (
    ListInfo,
    MessageSkeleton,
    Recipient,
    feedback_id,
    make_message_id,
)
from newsletter.mail.transport import Envelope
from newsletter.models import utcnow

log = logging.getLogger(__name__)

issues = Issue.__table__

#: rows leased at a time inside a batch (a default batch is one claim: each claim costs
#: a few round trips); a lease must outlast sending this many messages, or it is renewed
CLAIM_SIZE = 500
#: consecutive temporary failures after which the relay, not the addresses, is the problem
TEMPORARY_STREAK = 3
#: how often a batch looks whether the issue was paused or cancelled (seconds)
STATUS_EVERY = 0.5
#: default base wait before retrying a 4xx (``RETRY_BACKOFF_SECONDS`` overrides it)
RETRY_BACKOFF_SECONDS = 60


class BatchSender:
    """Sends the due rows of one id range of an issue through the process's ``Outbound``."""

    def __init__(
        self, issue: Issue, config: Any, *, list_id_header: str, list_name: str = ""
    ) -> None:
        """``list_id_header`` is the RFC 2919 list-id (``slug.host``), ``list_name`` the
        list's name: the message encodes each on its own."""

        self.issue_id = issue.id
        self.from_address = str(config["FROM_ADDRESS"])
        # IDN domains in punycode: a relay without SMTPUTF8 would refuse them (and the 553
        # would read as a hard bounce of the subscriber).
        self.envelope_from = ascii_address(parseaddr(self.from_address)[1])
        self.lease = timedelta(seconds=int(config["LEASE_SECONDS"]))
        self.max_attempts = int(config["MAX_ATTEMPTS"])
        self.backoff = timedelta(
            seconds=float(config.get("RETRY_BACKOFF_SECONDS", RETRY_BACKOFF_SECONDS))
        )
        html = issue.rendered_html or ""
        #: per-message tracking tokens; None (and the HTML as rendered) when tracking is off
        self.tracking: TokenMaker | None = None
        if issue.tracking is not TrackingMode.OFF:
            html = instrument(html, issue.id, str(config["BASE_URL"]))
            self.tracking = TokenMaker(issue.id, issue.tracking)
        self.skeleton = MessageSkeleton(
            subject=issue.rendered_subject or issue.subject,
            html=html,
            text=issue.rendered_text or "",
            # the issue's own display name, on the configured address
            from_address=sender_address(issue.sender_name, self.from_address),
            list_info=ListInfo(
                list_id=list_id_header,
                list_name=list_name,
                unsubscribe_mailto=f"mailto:{self.envelope_from}?subject=unsubscribe",
                archive_url=f"{config['BASE_URL']}/archive",
                help_url=f"mailto:{self.envelope_from}?subject=help",
                feedback_id=feedback_id(
                    issue.id, list_id_header, "issue",
                    sender_id=self.envelope_from.rpartition("@")[2],
                ),
            ),
        )
        #: with BOUNCE_ADDRESS set, each delivery's own signed return path (VERP)
        self.return_path = returnpath.from_config(config)
        self._last_envelope: tuple[int, Envelope] | None = None
        self.outbound = outbound()
        self.recorder = outcomes.SentRecorder()
        self.interrupted = False
        #: the rows were handed to another worker (or this one's heartbeat is lost)
        self.claim_lost = False
        #: the token of the claim being sent
        self._token: int | None = None
        self._status_checked = time.monotonic()
        #: the next row's message, built while the relay read the one before
        self._built: tuple[int, str, bytes] | None = None

    def run(self, first_id: int, last_id: int) -> datetime | None:
        """Send until no due row is left in the range.

        :returns: the earliest time to look at the range again when the batch stopped early
            (the relays keep failing or are at their rate limits); None otherwise.
        """
        try:
            # Leaving the session, however, cancels a message begun and not finished and
            # an envelope sent ahead for a row left unsent.
            with self.outbound.session() as smtp:
                return self._run(smtp, first_id, last_id)
        finally:
            try:
                self.recorder.close()
            except outcomes.ClaimLost as lost:
                self._lost(lost)

    def _run(self, smtp: Session, first_id: int, last_id: int) -> datetime | None:
        while True:
            if issue_status(self.issue_id) is not IssueStatus.SENDING:
                return None  # paused or cancelled: stop between messages
            claim = outcomes.claim(
                self.issue_id, first_id, last_id, limit=CLAIM_SIZE, lease=self.lease
            )
            if not claim.ids:
                return None
            self._token = claim.token
            try:
                not_before = self._send_claimed(smtp, claim)
            except outcomes.ClaimLost as lost:
                # Not ours any more: the new owner sends the rest. Nothing is released.
                self._lost(lost)
                return None
            if not_before is not None or self.interrupted or self.claim_lost:
                return not_before

    def _lost(self, lost: outcomes.ClaimLost) -> None:
        self.claim_lost = True
        log.warning("issue %s: %s; this worker stops sending its claim", self.issue_id, lost)

    def _send_claimed(self, smtp: Session, claim: outcomes.Claim) -> datetime | None:
        rows = outcomes.load(self.issue_id, claim.ids)
        outcomes.record_skipped(
            [row.delivery_id for row in rows if not row.still_wanted], claim.token
        )
        todo = [row for row in rows if row.still_wanted]
        streak = 0
        index = 0
        deferred: set[int] = set()
        while index < len(todo):
            if broker.stopping.is_set():
                self.interrupted = True
                outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                return None
            if heartbeat.lost():
                # The others may take these rows any moment: send none of them, and give
                # them back at once if the database still answers.
                self.claim_lost = True
                log.warning("issue %s: heartbeat lost; batch stops", self.issue_id)
                outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                return None
            if self._paused_or_cancelled():
                outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                return None
            if utcnow() > claim.until - self.lease / 2:
                # A slow relay: keep the rest of the rows ours before the lease can run out.
                claim = outcomes.renew(claim, [r.delivery_id for r in todo[index:]], self.lease)
                todo = todo[:index] + [r for r in todo[index:] if r.delivery_id in claim.ids]
                if index >= len(todo):
                    break
            row = todo[index]
            following = todo[index + 1] if index + 1 < len(todo) else None
            try:
                temporary = self._send_one(smtp, row, following)
            except DomainBusy as error:
                # Its domain is at its cap: the rows behind it go first, unless they are all
                # waiting for a busy domain too.
                rest = todo[index + 1 :]
                if row.delivery_id in deferred or not rest:
                    outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                    return utcnow() + timedelta(seconds=error.retry_after)
                deferred.add(row.delivery_id)
                todo = todo[:index] + rest + [row]
                continue
            except RelayUnavailable as error:
                # No relay can take mail now: every untried row waits, no attempt used up.
                outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                log.warning("issue %s: %s; batch waits %.0f s", self.issue_id, error.message,
                            error.retry_after)  # fmt: skip
                return utcnow() + timedelta(seconds=error.retry_after)
            except outcomes.ClaimLost:
                raise
            except BaseException:
                # Not an SMTP answer (a bug, a lost database): give the untried rows back.
                db.session.rollback()
                outcomes.release([r.delivery_id for r in todo[index + 1 :]], claim.token)
                raise
            index += 1
            streak = streak + 1 if temporary else 0
            if streak >= TEMPORARY_STREAK:
                outcomes.release([r.delivery_id for r in todo[index:]], claim.token)
                log.warning("issue %s: relay keeps failing; batch waits", self.issue_id)
                return utcnow() + self.backoff
        return None

    def _paused_or_cancelled(self) -> bool:
        """Whether an editor stopped the send, looked up at most every ``STATUS_EVERY`` s:
        a pause takes effect between two messages within that time."""
        now = time.monotonic()
        if now < self._status_checked + STATUS_EVERY:
            return False
        self._status_checked = now
        return issue_status(self.issue_id) is not IssueStatus.SENDING

    def _send_one(
        self, smtp: Session, row: outcomes.Claimed, following: outcomes.Claimed | None
    ) -> bool:
        """Mail one recipient and record the outcome; True for a temporary failure.

        ``following`` is the row meant to go next: its message is built while the relay
        reads this one, and its envelope may go out with this one's end.

        :raises RelayUnavailable: nothing was sent; the row is still claimed.
        """
        message_id, data = self._message_for(row)
        try:
            smtp.begin(self._envelope_of(row))
            smtp.write(data)
            if following is not None:
                self._build_ahead(following)
            self.recorder.wait()  # the last outcome is in before this one can be accepted
            reply = smtp.finish(next_envelope=self._envelope(following))
        except RelayUnavailable:
            raise
        except TemporaryDeliveryError as error:
            failed = outcomes.record_temporary(
                row, error, max_attempts=self.max_attempts, backoff=self.backoff,
                token=self._token,
            )
            log.info("delivery %s: %s (%s)", row.delivery_id, error.message,
                     "gave up" if failed else "will retry")  # fmt: skip
            return True
        except PermanentDeliveryError as error:
            outcomes.record_permanent(row, error, self._token)
            log.info("delivery %s: %s (failed)", row.delivery_id, error.message)
            return False
        # Recorded the moment the relay accepts it: this is what prevents a second copy.
        self.recorder.record(
            row.delivery_id, message_id=message_id, reply=reply, token=self._token or 0
        )
        return False

    def _envelope(self, row: outcomes.Claimed | None) -> Envelope | None:
        return self._envelope_of(row) if row is not None else None

    def _envelope_of(self, row: outcomes.Claimed) -> Envelope:
        """The row's (sender, recipient): made once, though asked for when the envelope
        goes ahead and again at its ``begin``."""
        last = self._last_envelope
        if last is not None and last[0] == row.delivery_id:
            return last[1]
        sender = (
            self.envelope_from
            if self.return_path is None
            else self.return_path.for_delivery(row.delivery_id)
        )
        envelope = (sender, ascii_address(row.email))
        self._last_envelope = (row.delivery_id, envelope)
        return envelope

    def _message_for(self, row: outcomes.Claimed) -> tuple[str, bytes]:
        """The row's Message-ID and signed message: built ahead, or now."""
        built, self._built = self._built, None
        if built is not None and built[0] == row.delivery_id:
            return built[1], built[2]
        return self._build(row)

    def _build_ahead(self, row: outcomes.Claimed) -> None:
        """Build the row's message while the relay reads the one before. Never raises (the
        message before is still to be finished): a failure shows when the row's turn comes."""
        if self._built is not None and self._built[0] == row.delivery_id:
            return
        try:
            self._built = (row.delivery_id, *self._build(row))
        except Exception:  # noqa: BLE001 - built again, and raised, in its own turn
            self._built = None

    def _build(self, row: outcomes.Claimed) -> tuple[str, bytes]:
        """Personalise and sign the row's message; return its Message-ID and bytes."""

        message_id = make_message_id(self.from_address)
        recipient = Recipient(
            email=row.email,
            name=row.name,
            # the issue rides along, so an unsubscribe can be counted for it
            unsubscribe_url=unsubscribe_url(
                row.subscriber_id, row.list_id, version=row.token_version, issue_id=self.issue_id
            ),
            manage_url=manage_url(
                row.subscriber_id, version=row.token_version, issue_id=self.issue_id
            ),
            message_id=message_id,
            tracking="" if self.tracking is None else self.tracking.token(row.delivery_id),
        )
        return message_id, self.outbound.sign(self.skeleton.personalise(recipient))


def issue_status(issue_id: int) -> IssueStatus:
    """The issue's status as committed now (not the session's cached copy).

    :raises NotFound: no such issue.
    """
    status = db.session.scalar(select(issues.c.status).where(issues.c.id == issue_id))
    if status is None:
        raise NotFound("issue", issue_id)
    return IssueStatus(status)
