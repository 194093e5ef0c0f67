"""A pool of open SMTP connections per relay, shared by the threads of one worker process.

Opening a connection costs a TCP handshake, a greeting, EHLO and maybe STARTTLS and AUTH:
more than sending a message. Connections are therefore kept open between messages and
between batches, each used by one thread at a time, and closed after a spell of idleness
(relays drop idle clients after a few minutes anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.mail.transport import Relay, Transport

#: an idle connection older than this is closed rather than reused (seconds)
IDLE_SECONDS = 60.0


@dataclass
class _Idle:
    transport: Transport
    since: float = field(default_factory=time.monotonic)


class ConnectionPool:
    """Open transports per relay, lent to one thread at a time.

    ``size`` caps the idle connections kept per relay; more may be open while lent (one per
    sending thread), and the extras are closed when they come back.
    """

    def __init__(
        self,
        factory: Callable[[Relay], Transport],
        *,
        size: int = 8,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._size = size
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._idle: dict[Relay, list[_Idle]] = {}
        self._lock = threading.Lock()

    def acquire(self, relay: Relay) -> Transport:
        """An open (or lazily opening) transport to ``relay``, for this thread alone."""
        stale: list[Transport] = []
        with self._lock:
            idle = self._idle.get(relay, [])
            now = self._clock()
            while idle:
                entry = idle.pop()
                if now - entry.since <= self._idle_seconds:
                    transport = entry.transport
                    break
                stale.append(entry.transport)
            else:
                transport = None
        for old in stale:
            old.close()
        return transport if transport is not None else self._factory(relay)

    def release(self, relay: Relay, transport: Transport) -> None:
        """Take a transport back for the next thread (or close it when enough are idle)."""
        with self._lock:
            idle = self._idle.setdefault(relay, [])
            if len(idle) < self._size:
                idle.append(_Idle(transport, self._clock()))
                return
        transport.close()

    def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        with self._lock:
            entries = [entry for idle in self._idle.values() for entry in idle]
            self._idle.clear()
        for entry in entries:
            entry.transport.close()
