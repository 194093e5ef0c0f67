"""Postfix's ``smtp-sink`` as the bench's relay, and ``smtp-source`` as its yardstick.

The sink runs with ``-v``: it prints each SMTP command (never the message data) on stderr.
A reader thread counts the ``.`` lines (messages accepted) and the distinct ``RCPT TO``
addresses from that stream, so the sink's side says how many recipients it saw without
keeping 20 KB per message. Bench addresses carry their subscriber number (``r123@…``), so a
bitmap of N bits is enough to count them; anything else is kept in a small set.
The raw measurement goes through the same sink with the same options, so both rates pay
for the same verbose output.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

#: where Debian's postfix package puts the test programs (often not on a user's PATH)
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/usr/lib/postfix/sbin"]
)
_RCPT = re.compile(rb"rcpt to:\s*<([^>]*)>", re.IGNORECASE)
_DOT_LINE = b"smtp-sink: .\n"
#: how a bench recipient looks: ``r<subscriber number>@…``
_BENCH_ADDRESS = re.compile(rb"r(\d+)@")
#: unknown addresses kept by name (beyond this only counted)
_MAX_OTHERS = 10_000


class SinkError(RuntimeError):
    """smtp-sink or smtp-source is missing, does not start, or fails."""


def find_program(name: str) -> str | None:
    """The path of a Postfix test program (``smtp-sink``, ``smtp-source``), or None."""
    return shutil.which(name, path=_SEARCH_PATH)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class SinkCounts:
    """What the sink saw since the last ``expect``."""

    messages: int = 0
    distinct: int = 0  # distinct RCPT TO addresses
    repeated: int = 0  # RCPT TO of an address already seen
    unexpected: int = 0  # distinct addresses that are not bench recipients 1..N
    first_message_at: float | None = None  # time.monotonic() of the first accepted message


class Sink:
    """A running ``smtp-sink -v`` on loopback and the counts read from its output."""

    def __init__(self, host: str = "127.0.0.1", backlog: int = 1024) -> None:
        program = find_program("smtp-sink")
        if program is None:
            raise SinkError("smtp-sink not found: install Postfix (package `postfix`)")
        self.host = host
        self.port = free_port(host)
        command = [program, "-v"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # it refuses to run as root otherwise
        command += [f"{host}:{self.port}", str(backlog)]
        self.command = command
        self._lock = threading.Lock()
        self._counts = SinkCounts()
        self._bitmap = bytearray()
        self._others: set[bytes] = set()
        # Own session: a Ctrl-C on the terminal reaches the bench, which stops the sink itself.
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="smtp-sink-reader", daemon=True)
        self._reader.start()
        self._wait_listening()

    @property
    def url(self) -> str:
        """``NEWSLETTER_SMTP_URL`` for the sink."""
        return f"smtp://{self.host}:{self.port}"

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SinkError(f"smtp-sink exited with {self._process.returncode}: {self.command}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            # That probe was a session of its own; it has no message, so counts stay 0.
            return
        raise SinkError(f"smtp-sink does not listen on {self.host}:{self.port}")

    def expect(self, recipients: int) -> None:
        """Start counting afresh, for bench recipients numbered 1..``recipients``."""
        with self._lock:
            self._counts = SinkCounts()
            self._bitmap = bytearray(recipients + 1)
            self._others = set()

    def counts(self) -> SinkCounts:
        """A copy of the counts so far."""
        with self._lock:
            return SinkCounts(**vars(self._counts))

    def wait_for_messages(self, count: int, timeout: float) -> SinkCounts:
        """Wait until the sink has reported ``count`` messages (its output trails the
        replies a little); return the counts either way."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if counts.messages >= count or time.monotonic() >= deadline:
                return counts
            if self._process.poll() is not None and not self._reader.is_alive():
                return counts
            time.sleep(0.02)

    def _read(self) -> None:
        stream = self._process.stderr
        assert stream is not None
        fd = stream.fileno()
        pending = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut:
                self._count(pending[:cut])
                pending = pending[cut:]

    def _count(self, lines: bytes) -> None:
        # Whole chunks at a time with C-level searches: millions of lines cost little CPU.
        dots = lines.count(_DOT_LINE)
        addresses = _RCPT.findall(lines)
        now = time.monotonic()
        with self._lock:
            counts = self._counts
            if dots and counts.first_message_at is None:
                counts.first_message_at = now
            counts.messages += dots
            for address in addresses:
                self._note(address)

    def _note(self, address: bytes) -> None:
        counts = self._counts
        match = _BENCH_ADDRESS.match(address)
        number = int(match.group(1)) if match else 0
        if 0 < number < len(self._bitmap):
            if self._bitmap[number]:
                counts.repeated += 1
            else:
                self._bitmap[number] = 1
                counts.distinct += 1
            return
        if address in self._others:
            counts.repeated += 1
            return
        counts.distinct += 1
        counts.unexpected += 1
        if len(self._others) < _MAX_OTHERS:
            self._others.add(address)

    def stop(self) -> None:
        """Stop the sink (idempotent)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(5)
        if self._process.stderr is not None:
            self._process.stderr.close()


@dataclass(frozen=True)
class RawResult:
    """``smtp-source`` against the sink: the machine's limit for this message size."""

    messages: int
    seconds: float
    command: str

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def measure_raw(sink: Sink, *, connections: int, messages: int, size: int) -> RawResult:
    """Time ``smtp-source -d -s C -m M -l SIZE`` against the sink (same sink, same options).

    :raises SinkError: smtp-source is missing or fails.
    """
    program = find_program("smtp-source")
    if program is None:
        raise SinkError("smtp-source not found: install Postfix (package `postfix`)")
    command = [
        program, "-d", "-s", str(connections), "-m", str(messages), "-l", str(size),
        "-f", "bench@bench.invalid", "-t", "raw@bench.invalid", "-M", "bench.invalid",
        f"{sink.host}:{sink.port}",
    ]  # fmt: skip
    sink.expect(0)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SinkError(f"smtp-source failed ({done.returncode}): {done.stderr.strip()[:300]}")
    # Let the sink's output catch up, so these messages are not counted as the send's.
    sink.wait_for_messages(messages, timeout=30)
    return RawResult(messages=messages, seconds=seconds, command=" ".join(command[:9]))
