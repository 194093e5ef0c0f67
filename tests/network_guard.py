"""The suite's network guard (a pytest plugin, loaded by tests/conftest.py): tests talk to
loopback only. A connection to any other address is refused before it is tried, so nothing
leaves the machine, and the test that tried fails, even when the code under test caught the
refusal (a worker thread, a relay failover) and went on.

Guarded: ``connect``, ``connect_ex`` and ``sendto`` of every Python socket of the internet
families, in this process and its threads. Unix sockets pass. Subprocesses (``newsletter``
commands, PostgreSQL's C client, Chromium) are outside its reach. pytest-socket does the
same job but only raises, and a refusal swallowed by the code under test would pass unseen.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

#: the internet families; every other one (AF_UNIX, netlink) stays on the machine
INTERNET = (socket.AF_INET, socket.AF_INET6)


class OutsideLoopback(ConnectionRefusedError):
    """Raised instead of connecting to an address outside loopback."""


#: every address refused since the last test that checked ("host:port")
refused: list[str] = []

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and the name localhost. Any
    other name is refused: resolving it would already ask the network."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # an IPv6 scope: fe80::1%eth0
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _refuse(sock: socket.socket, address: Any) -> OutsideLoopback | None:
    """The error to raise instead of reaching ``address``, or None when it may be reached."""
    if sock.family not in INTERNET or not isinstance(address, tuple):
        return None
    host = str(address[0])
    if is_loopback(host):
        return None
    where = f"{host}:{address[1]}"
    refused.append(where)
    return OutsideLoopback(errno.ECONNREFUSED, f"tests may reach loopback only, not {where}")


def _connect(self: socket.socket, address: Any) -> None:
    error = _refuse(self, address)
    if error is not None:
        raise error
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    if _refuse(self, address) is not None:
        return errno.ECONNREFUSED
    return int(_real_connect_ex(self, address))


def _sendto(self: socket.socket, data: Any, *flags_and_address: Any) -> int:
    error = _refuse(self, flags_and_address[-1])
    if error is not None:
        raise error
    return int(_real_sendto(self, data, *flags_and_address))


def install() -> None:
    """Guard every socket of this process from now on."""
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    """Give the sockets their own methods back."""
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _real_sendto  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that tried fails as the test itself (a test that failed anyway keeps its own
    failure, and the attempts are reported at its teardown)."""
    result = yield
    _fail_if_refused()
    return result


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[list[str]]:
    """Fail the test if anything in it (or since the last test: session fixtures, threads
    that went on) tried to reach beyond loopback. It yields the list of those attempts; a
    test of the guard itself empties it once it has checked it."""
    yield refused
    _fail_if_refused()


def _fail_if_refused() -> None:
    attempts, refused[:] = list(refused), []
    if attempts:
        pytest.fail(
            "the test tried to reach beyond loopback (tests may reach 127.0.0.0/8 and ::1 "
            f"only): {', '.join(attempts)}",
            pytrace=False,
        )
