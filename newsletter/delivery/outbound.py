"""The way out for every message of a worker process: relay choice, rate limits, DKIM and
pooled connections, shared by bulk sends and one-off mail (confirmations, transactional).

One ``Outbound`` per app and process (``outbound()``), used by many threads at once: the
router, the limiter and the pool are thread-safe. A thread sends through a ``Session`` of
its own, one message at a time in three steps that it calls in turn::

    with outbound().session() as smtp:
        smtp.begin(envelope)                    # relay, token, domain slot; MAIL/RCPT/DATA
        smtp.write(content)                     # the content: nothing delivered yet
        ...                                     # the caller's work, while the relay reads
        reply = smtp.finish(next_envelope=nxt)  # the end, with the next MAIL/RCPT

A session holds a pooled connection for one message or, when the next message's envelope
went out with this one's end, until that message is begun on it: the session is the one
place that knows about the next message. Leaving the ``with`` block, by an exception or
not, cancels a message begun and not finished and an envelope sent ahead (by dropping the
connection), so nothing is delivered that the caller did not finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from newsletter import broker
from newsletter.delivery.relays.domains import domain_slots_for
from newsletter.delivery.relays.limits import limiter_for
from newsletter.delivery.relays.pool import ConnectionPool
from newsletter.delivery.relays.routing import RelayRouter, relay_policies
from newsletter.errors import DeliveryError, DomainBusy, RelayUnavailable
from newsletter.mail.dkim_settings import key_folder
from newsletter.mail.transport import (
    Envelope,
    Relay,
    Transport,
    configured_relays,
    transport_for,
)
from newsletter.ops import metrics

if TYPE_CHECKING:
    from newsletter.delivery.relays.routing import RelayPolicy
    from newsletter.mail.dkim import DkimSigner

log = logging.getLogger(__name__)


def _signer_for(config: Mapping[str, Any], from_address: str) -> DkimSigner | None:
    """The From domain's DKIM signer, or None without keys for it."""
    if key_folder(config, from_address) is None:
        return None
    # Loaded here, not at the top: dkimpy and cryptography cost every process about 12 MB,
    # and only an instance with keys signs.
    from newsletter.mail.dkim import signer_for

    return signer_for(config, from_address)

#: a rate-limit wait up to this long is waited out in place; longer ones hand the message back
INLINE_WAIT_SECONDS = 2.0
#: how often the DKIM keys are looked for again (seconds)
SIGNER_CHECK_SECONDS = 5.0
#: how long a message waits when every relay is down and none says when it is back
DEFAULT_RETRY_SECONDS = 5.0

_lock = threading.Lock()


#: the settings an ``Outbound`` is made from: when one changes, a new one is made
SETTINGS = (
    "SMTP_URL", "OUTBOX_PATH", "DOMAIN_CONNECTIONS", "SMTP_TIMEOUT", "SMTP_HELO_NAME",
    "RELAY_COOLDOWN_SECONDS",
)  # fmt: skip


def outbound() -> Outbound:
    """This process's ``Outbound`` for the current app (made on first use)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = tuple(str(app.config.get(name)) for name in SETTINGS)
    existing = app.extensions.get("outbound")
    if existing is not None and existing.key == key:
        return existing
    with _lock:
        existing = app.extensions.get("outbound")
        if existing is None or existing.key != key:
            if existing is not None:
                existing.close()
            existing = app.extensions["outbound"] = Outbound(app)
            existing.key = key
    return existing


def deliver(sender: str, recipient: str, message: bytes) -> str:
    """Sign and send one prepared message (CRLF bytes) through the app's relays; return the
    relay's reply.

    :raises RelayUnavailable: no relay can take it now (down, or over its rate limit); try
        again after ``retry_after`` seconds; not the recipient's fault.
    :raises TemporaryDeliveryError: a 4xx for this message (retry later).
    :raises PermanentDeliveryError: a 5xx for this message (never retried).
    """
    return outbound().send(sender, recipient, message)


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Outbound:
    """Relays with their limits and health, a connection pool and the DKIM signer."""

    def __init__(self, app: Flask) -> None:
        config = self._config = app.config
        self.policies = relay_policies(config)
        self.outbox = None if self.policies else configured_relays(config)[0]
        cooldown = float(config.get("RELAY_COOLDOWN_SECONDS") or 60)
        self.router = (
            RelayRouter(self.policies, cooldown_seconds=cooldown) if self.policies else None
        )
        # Given the app, both are shared by every thread of the process (and through Redis,
        # when there is one, by every worker).
        self.limiter = limiter_for(app)
        self.slots = domain_slots_for(app)
        self.key: tuple[str, ...] = ()
        self._dkim: DkimSigner | None = None
        self._signer_checked = -SIGNER_CHECK_SECONDS
        self.pool = ConnectionPool(self._open, size=max(8, int(config["WORKER_THREADS"]) * 2))

    def _open(self, relay: Relay) -> Transport:
        return transport_for(relay, self._config)

    def session(self) -> Session:
        """A way out for one thread's messages, one at a time (see the module docstring)."""
        return Session(self)

    def send(self, sender: str, recipient: str, message: bytes, *, signed: bool = False) -> str:
        """Sign (unless ``signed``) and send one message on its own; return the reply.

        :raises: as ``Session.begin`` and ``Session.finish``.
        """
        if not signed:
            message = self.sign(message)
        with self.session() as smtp:
            return smtp.send((sender, recipient), message)

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM signatures, when keys are set for the From domain.

        The signer is looked up again every few seconds: a key made with ``newsletter dkim
        keygen`` signs from then on, without restarting the workers.
        """
        signer = self._signer()
        return signer.sign(message) if signer is not None else message

    def _signer(self) -> DkimSigner | None:
        now = time.monotonic()
        if now >= self._signer_checked + SIGNER_CHECK_SECONDS:
            self._dkim = _signer_for(self._config, str(self._config["FROM_ADDRESS"]))
            self._signer_checked = now
        return self._dkim

    def _wait_for_token(self, policy: Any) -> None:
        """Take one message from the relay's rate limit, waiting out a short wait."""
        while True:
            granted, wait = self.limiter.acquire(policy, 1)
            if granted:
                return
            if wait > INLINE_WAIT_SECONDS:
                raise RelayUnavailable(
                    -1, f"{policy.relay.name} is at its rate limit", retry_after=wait
                )
            # Rate limiting is waiting by design; stop early when the worker shuts down.
            if broker.stopping.wait(wait):
                raise RelayUnavailable(-1, "worker stopping", retry_after=0.0)

    def _failed(self, policy: RelayPolicy, error: RelayUnavailable) -> RelayUnavailable:
        """Tell the router a relay failed (it rests after a few failures in a row)."""
        assert self.router is not None
        self.router.failed(policy.relay.name)
        log.warning("relay %s: %s", policy.relay.name, error.message)
        return error

    def _every_relay_failed(self, last: RelayUnavailable | None) -> RelayUnavailable:
        """Every relay failed just now or is resting after failing: wait until one is back."""
        assert self.router is not None
        retry_after = max(self.router.retry_in(), DEFAULT_RETRY_SECONDS)
        if last is not None:
            return RelayUnavailable(last.code, last.reply, retry_after=retry_after)
        return RelayUnavailable(
            -1, "every relay is failing; waiting for one to come back", retry_after=retry_after
        )

    def close(self) -> None:
        """Close the pooled connections (at shutdown)."""
        self.pool.close()


@dataclass(frozen=True)
class _Place:
    """A message's place: its relay (policy None: the outbox), the pooled connection it is
    on, and the slot it holds among its domain's simultaneous transactions."""

    policy: RelayPolicy | None
    relay: Relay
    transport: Transport
    envelope: Envelope
    domain: str


@dataclass(frozen=True)
class _Reserved:
    """The next message, its rate-limit token and domain slot taken, so that its envelope
    may go out with the end of the message before it. To the same domain as that message,
    it takes over that message's slot (the same connection) instead of one of its own."""

    envelope: Envelope
    domain: str
    shares_slot: bool


class Session:
    """One thread's way out through an ``Outbound``: ``begin``, ``write`` and ``finish`` one
    message after another (used as a context manager; see the module docstring)."""

    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound
        #: the message begun and not yet finished
        self._current: _Place | None = None
        #: its content, kept for another relay if this one refuses it at the end (421)
        self._content = b""
        #: the next message, its envelope out ahead on the connection it will use
        self._next: _Place | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, envelope: Envelope, content: bytes) -> str:
        """``begin``, ``write`` and ``finish`` one message; return the relay's reply."""
        self.begin(envelope)
        self.write(content)
        return self.finish()

    def begin(self, envelope: Envelope) -> None:
        """Take the recipient domain's slot, a relay (the one the envelope went out ahead
        on, when it did) and its rate-limit token, and open the message there.

        A relay that cannot be reached is reported to the router and the next one tried, so
        one relay's outage moves its traffic to the others. An envelope sent ahead for
        another message is dropped with its connection.

        :raises DomainBusy: the domain is at its cap of simultaneous transactions.
        :raises RelayUnavailable: no relay can take mail now (down, or at its rate limit);
            try again after ``retry_after`` seconds: not the recipient's fault.
        :raises TemporaryDeliveryError: a 4xx for this envelope (retry later).
        :raises PermanentDeliveryError: a 5xx for this envelope (never retried).
        """
        slots = self._outbound.slots
        if self._current is not None:
            self._give_up(self._current)  # a message left unfinished is cancelled
            self._current = None
        ahead, self._next = self._next, None
        if ahead is not None and ahead.envelope != envelope:
            self._give_up(ahead)  # its message will not follow
            ahead = None
        domain = _domain_of(envelope[1])
        # A message whose envelope went ahead holds its domain slot already.
        if ahead is None and not slots.acquire(domain):
            raise DomainBusy(-1, f"too many connections to {domain} at once", retry_after=1.0)
        try:
            self._current = self._open(envelope, domain, ahead)
        except BaseException:
            slots.release(domain)
            raise

    def write(self, content: bytes) -> None:
        """Send the message's content (CRLF lines, signed already); nothing can be
        delivered before ``finish``.

        :raises TemporaryDeliveryError: the connection was lost; nothing was delivered.
        """
        current = self._current
        assert current is not None, "write() comes after begin()"
        self._content = content
        try:
            current.transport.write(content)
        except BaseException:
            self._current, self._content = None, b""
            self._put_back(current)
            raise

    def finish(self, next_envelope: Envelope | None = None) -> str:
        """End the message and return the relay's reply.

        ``next_envelope`` is this session's next message: when the router would pick the
        same relay for it and its token and domain slot are free, its envelope goes out in
        the same write as this message's end, and the connection stays with the session
        for it. The next ``begin`` should be for it; any other costs the connection.

        A relay that refuses the message at its end because it is closing the session (421)
        is reported to the router, and the message goes through the next relay.

        :raises TemporaryDeliveryError: a 4xx, or the connection was lost at the end (the
            message may have been delivered).
        :raises PermanentDeliveryError: a 5xx for this message.
        :raises RelayUnavailable: the message had to move and no relay can take it now.
        """
        current, content = self._current, self._content
        assert current is not None, "finish() comes after write()"
        self._current, self._content = None, b""
        reserved = self._reserve(current, next_envelope) if next_envelope else None
        try:
            reply = current.transport.finish(reserved.envelope if reserved else None)
        except RelayUnavailable as error:
            _count_reply(current.relay, error)
            if current.policy is None:  # the outbox: there is nowhere else
                self._settle(current, reserved)
                raise
            # Refused at its end, so delivered nowhere: it may go through another relay.
            self._settle(current, reserved, keep_slot=True)
            return self._elsewhere(current, content, error, next_envelope)
        except DeliveryError as error:
            _count_reply(current.relay, error)
            self._settle(current, reserved)
            raise
        except BaseException:
            self._settle(current, reserved)
            raise
        self._settle(current, reserved)
        metrics.count("newsletter_smtp_replies", relay=current.relay.name, reply_class="2xx")
        if current.policy is not None:
            assert self._outbound.router is not None
            self._outbound.router.succeeded(current.policy.relay.name)
        return reply

    def close(self) -> None:
        """Cancel a message begun and not finished and an envelope sent ahead (their
        connections are dropped), and give every connection back."""
        for place in (self._current, self._next):
            if place is not None:
                self._give_up(place)
        self._current = self._next = None
        self._content = b""

    # -- the steps' parts -------------------------------------------------------------------
    def _open(self, envelope: Envelope, domain: str, ahead: _Place | None) -> _Place:
        """Begin the message on a relay that takes it (the domain slot is the caller's)."""
        way_out = self._outbound
        if way_out.outbox is not None:
            transport = way_out.pool.acquire(way_out.outbox)
            try:
                transport.begin(*envelope)
            except BaseException:
                way_out.pool.release(way_out.outbox, transport)
                raise
            return _Place(None, way_out.outbox, transport, envelope, domain)
        router = way_out.router
        assert router is not None
        last: RelayUnavailable | None = None
        # Enough tries for a failing relay to be taken out (fail_threshold failures) and the
        # message to go through another one.
        for _ in range(len(way_out.policies) * (router.fail_threshold + 1)):
            if ahead is not None:
                assert ahead.policy is not None
                policy, transport, ahead = ahead.policy, ahead.transport, None
            else:
                chosen = router.choose()
                if chosen is None:
                    break
                policy = chosen
                way_out._wait_for_token(policy)
                transport = way_out.pool.acquire(policy.relay)
            try:
                transport.begin(*envelope)
            except RelayUnavailable as error:
                _count_reply(policy.relay, error)
                way_out.pool.release(policy.relay, transport)
                last = way_out._failed(policy, error)
                if len(way_out.policies) == 1:
                    break  # nowhere else to go: wait, rather than knock again at once
                continue
            except DeliveryError as error:  # the recipient refused at MAIL or RCPT
                _count_reply(policy.relay, error)
                way_out.pool.release(policy.relay, transport)
                raise
            except BaseException:
                way_out.pool.release(policy.relay, transport)
                raise
            return _Place(policy, policy.relay, transport, envelope, domain)
        raise way_out._every_relay_failed(last)

    def _elsewhere(
        self,
        refused: _Place,
        content: bytes,
        error: RelayUnavailable,
        next_envelope: Envelope | None,
    ) -> str:
        """Send a message that ``refused``'s relay would not take again through another
        (its domain slot is still held)."""
        way_out = self._outbound
        assert refused.policy is not None
        last = way_out._failed(refused.policy, error)
        try:
            if len(way_out.policies) == 1:
                raise way_out._every_relay_failed(last)
            self._current = self._open(refused.envelope, refused.domain, None)
        except BaseException:
            way_out.slots.release(refused.domain)
            raise
        self.write(content)
        return self.finish(next_envelope)

    def _reserve(self, current: _Place, next_envelope: Envelope) -> _Reserved | None:
        """Reserve the next message on ``current``'s relay, if it may go there right now.

        The router is asked now what it would answer for that message anyway, so relays
        keep their weights; a rate limit or a busy domain means no reservation, not a wait.
        """
        way_out = self._outbound
        policy = current.policy
        if policy is None or way_out.router is None or way_out.router.choose() is not policy:
            return None
        domain = _domain_of(next_envelope[1])
        shares_slot = domain == current.domain
        if not shares_slot and not way_out.slots.acquire(domain):
            return None
        granted, _ = way_out.limiter.acquire(policy, 1)
        if not granted:
            if not shares_slot:
                way_out.slots.release(domain)
            return None
        return _Reserved(next_envelope, domain, shares_slot)

    def _settle(
        self, current: _Place, reserved: _Reserved | None, *, keep_slot: bool = False
    ) -> None:
        """After a message's end: keep the connection for the next message when its envelope
        went out on it; otherwise give the connection back (and the reservation up). The
        message's domain slot is given back too, unless the next message took it over or
        ``keep_slot``."""
        slots = self._outbound.slots
        transport = current.transport
        if reserved is not None and transport.ahead == reserved.envelope:
            self._next = _Place(
                current.policy, current.relay, transport, reserved.envelope, reserved.domain
            )
            if not reserved.shares_slot and not keep_slot:
                slots.release(current.domain)
            return
        if reserved is not None and not reserved.shares_slot:
            slots.release(reserved.domain)  # its token is spent: a rare, small loss
        self._outbound.pool.release(current.relay, transport)
        if not keep_slot:
            slots.release(current.domain)

    def _put_back(self, place: _Place) -> None:
        """Give the connection back to the pool and the domain slot up."""
        self._outbound.pool.release(place.relay, place.transport)
        self._outbound.slots.release(place.domain)

    def _give_up(self, place: _Place) -> None:
        """Cancel what is open on the place's connection (dropping it), then put it back."""
        place.transport.abort()
        self._put_back(place)


def _count_reply(relay: Relay, error: DeliveryError) -> None:
    """Count a relay's refusal (a lost connection has no reply code and is not counted)."""
    if error.code > 0:
        metrics.count(
            "newsletter_smtp_replies", relay=relay.name, reply_class=metrics.reply_class(error.code)
        )
