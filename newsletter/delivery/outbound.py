"""The way out for every message of a worker process: relay choice, rate limits, DKIM and
pooled connections, shared by bulk sends and transactional mail.

One ``Outbound`` per app and process (``outbound()``), used by many threads at once: the
router, the limiter and the pool are thread-safe, and each send holds one pooled connection
for the length of one SMTP transaction, or, when the next message's envelope went out
ahead with it (``then``), until that message is sent: the thread keeps the connection.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from newsletter import broker
from newsletter.delivery.relays.domains import domain_slots_for
from newsletter.delivery.relays.limits import limiter_for
from newsletter.delivery.relays.pool import ConnectionPool
from newsletter.delivery.relays.routing import RelayRouter, relay_policies
from newsletter.errors import DomainBusy, RelayUnavailable
from newsletter.mail.dkim import signer_for
from newsletter.mail.transport import (
    BeforeEnd,
    Envelope,
    Relay,
    Transport,
    WhileWaiting,
    configured_relays,
    transport_for,
)

if TYPE_CHECKING:
    from newsletter.delivery.relays.routing import RelayPolicy
    from newsletter.mail.dkim import DkimSigner

log = logging.getLogger(__name__)

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
    """Send one prepared message (CRLF bytes) through the app's relays; return the reply.

    :raises RelayUnavailable: no relay can take it now (down, or over its rate limit); try
        again after ``retry_after`` seconds; not the recipient's fault.
    :raises TemporaryDeliveryError: a 4xx for this message (retry later).
    :raises PermanentDeliveryError: a 5xx for this message (never retried).
    """
    return outbound().send(sender, recipient, message)


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class _Reserved:
    """The next message's place: its relay chosen, its rate-limit token and domain slot
    taken, so that its envelope may go out ahead with the message before it.

    To the same domain as that message, it takes over that message's slot (the same
    connection) instead of a slot of its own (``own_slot``).
    """

    policy: RelayPolicy
    envelope: Envelope
    domain: str
    own_slot: bool


@dataclass(frozen=True)
class _Ahead:
    """A reserved message whose envelope went out ahead on ``transport``, kept by the
    thread that will send its content."""

    reserved: _Reserved
    transport: Transport


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
        self._local = threading.local()  # .ahead: this thread's envelope sent ahead

    def _open(self, relay: Relay) -> Transport:
        return transport_for(relay, self._config)

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
            self._dkim = signer_for(self._config, str(self._config["FROM_ADDRESS"]))
            self._signer_checked = now
        return self._dkim

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        signed: bool = False,
        before_end: BeforeEnd = None,
        then: str | None = None,
        while_waiting: WhileWaiting = None,
    ) -> str:
        """Sign (unless ``signed``) and send through a healthy relay under its limits.

        A relay that cannot be reached is reported to the router and the next one tried, so
        one relay's outage moves its traffic to the others. ``before_end`` runs once the
        relay has taken the envelope and the content, before the end that lets the relay
        accept it (``Transport.send``).

        ``then`` is the recipient of this thread's next message from the same sender: when
        the router would pick the same relay for it and its token and domain slot are free,
        its envelope goes out with this message's end (``Transport.send``), and this thread
        keeps the connection for it. The next ``send`` should be that message; anything
        else, or ``drop_ahead``, costs the connection. ``while_waiting``: see
        ``Transport.send``.
        """
        if not signed:
            message = self.sign(message)
        ahead = self._take_ahead((sender, recipient))
        domain = _domain_of(recipient)
        # A message whose envelope went ahead holds its domain slot already.
        if ahead is None and not self.slots.acquire(domain):
            raise DomainBusy(-1, f"too many connections to {domain} at once", retry_after=1.0)
        try:
            if self.outbox is not None:
                transport = self.pool.acquire(self.outbox)
                try:
                    return transport.send(sender, recipient, message, before_end)
                finally:
                    self.pool.release(self.outbox, transport)
            return self._send_routed(
                (sender, recipient), message, before_end, ahead, then, while_waiting
            )
        finally:
            following = getattr(self._local, "ahead", None)
            if following is None or following.reserved.own_slot:
                self.slots.release(domain)  # else the next message on the connection has it

    def drop_ahead(self) -> None:
        """Give up the envelope this thread sent ahead, if any (its message will not follow):
        the connection is dropped, the only way to cancel it."""
        ahead = getattr(self._local, "ahead", None)
        self._local.ahead = None
        if ahead is not None:
            ahead.transport.close()
            self.slots.release(ahead.reserved.domain)
            self.pool.release(ahead.reserved.policy.relay, ahead.transport)

    def _take_ahead(self, envelope: Envelope) -> _Ahead | None:
        """This thread's envelope sent ahead, when it is this one; any other is dropped."""
        ahead = getattr(self._local, "ahead", None)
        if ahead is not None and ahead.reserved.envelope == envelope:
            self._local.ahead = None
            return ahead
        self.drop_ahead()
        return None

    def _send_routed(
        self,
        envelope: Envelope,
        message: bytes,
        before_end: BeforeEnd,
        ahead: _Ahead | None,
        then: str | None,
        while_waiting: WhileWaiting,
    ) -> str:
        assert self.router is not None
        last: RelayUnavailable | None = None
        # Enough tries for a failing relay to be taken out (fail_threshold failures) and the
        # message to go through another one.
        for _ in range(len(self.policies) * (self.router.fail_threshold + 1)):
            if ahead is not None:
                policy, transport = ahead.reserved.policy, ahead.transport
                ahead = None
            else:
                chosen = self.router.choose()
                if chosen is None:
                    break
                policy = chosen
                self._wait_for_token(policy)
                transport = self.pool.acquire(policy.relay)
            following = self._reserve(policy, envelope, then) if then else None
            try:
                reply = transport.send(
                    *envelope, message, before_end,
                    then=following.envelope if following else None, while_waiting=while_waiting,
                )  # fmt: skip
            except RelayUnavailable as error:
                self._keep_or_release(policy.relay, transport, following)
                self.router.failed(policy.relay.name)
                log.warning("relay %s: %s", policy.relay.name, error.message)
                last = error
                if len(self.policies) == 1:
                    break  # nowhere else to go: wait, rather than knock again at once
                continue
            except BaseException:
                self._keep_or_release(policy.relay, transport, following)
                raise
            self._keep_or_release(policy.relay, transport, following)
            self.router.succeeded(policy.relay.name)
            return reply
        # Every relay failed just now or is resting after failing: wait until one is back.
        retry_after = max(self.router.retry_in(), DEFAULT_RETRY_SECONDS)
        if last is not None:
            raise RelayUnavailable(last.code, last.reply, retry_after=retry_after)
        raise RelayUnavailable(
            -1, "every relay is failing; waiting for one to come back", retry_after=retry_after
        )

    def _reserve(self, policy: RelayPolicy, current: Envelope, then: str) -> _Reserved | None:
        """Reserve the message to ``then`` after ``current`` on ``policy``'s relay, if it may
        go there right now.

        The router is asked now what it would answer for that message anyway, so relays
        keep their weights; a rate limit or a busy domain means no reservation, not a wait.
        """
        assert self.router is not None
        if self.router.choose() is not policy:
            return None
        domain = _domain_of(then)
        own_slot = domain != _domain_of(current[1])
        if own_slot and not self.slots.acquire(domain):
            return None
        granted, _ = self.limiter.acquire(policy, 1)
        if not granted:
            if own_slot:
                self.slots.release(domain)
            return None
        return _Reserved(policy, (current[0], then), domain, own_slot)

    def _keep_or_release(
        self, relay: Relay, transport: Transport, following: _Reserved | None
    ) -> None:
        """Keep the connection for this thread when the next envelope went out on it;
        otherwise give it back to the pool (and the reservation up)."""
        if following is not None and transport.pending == following.envelope:
            self._local.ahead = _Ahead(following, transport)
            return
        if following is not None and following.own_slot:
            self.slots.release(following.domain)  # its token is spent: a rare, small loss
        self.pool.release(relay, transport)

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

    def close(self) -> None:
        """Close the pooled connections (at shutdown)."""
        self.drop_ahead()
        self.pool.close()
