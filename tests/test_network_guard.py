"""The network guard: tests reach loopback only; anything else is refused before it is tried,
and the test that tried fails."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import network_guard as guard

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The addresses that reached a socket's own connect, connect_ex or sendto: those the
    guard let through."""
    seen: list[Any] = []
    for name in ("_real_connect", "_real_connect_ex", "_real_sendto"):
        monkeypatch.setattr(guard, name, _recording(getattr(guard, name), seen))
    return seen


def _recording(method: Callable[..., Any], seen: list[Any]) -> Callable[..., Any]:
    def record(sock: socket.socket, *args: Any) -> Any:
        seen.append(args[-1])
        return method(sock, *args)

    return record


def _tcp(host: str, port: int) -> None:
    socket.create_connection((host, port), timeout=5).close()


def _udp(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.sendto(b"query", (host, port))


def _connect_ex(host: str, port: int) -> None:
    with socket.socket() as sock:
        code = sock.connect_ex((host, port))
    if code:
        raise ConnectionRefusedError(code, "connect_ex")


# Documentation ranges (RFC 5737, RFC 3849): nothing there would answer anyway.
@pytest.mark.parametrize(("reach", "host"), [
    (_tcp, "192.0.2.1"),
    (_tcp, "2001:db8::1"),
    (_tcp, "::ffff:192.0.2.1"),
    (_udp, "192.0.2.1"),
    (_udp, "2001:db8::1"),
    (_connect_ex, "192.0.2.1"),
])
def test_an_address_beyond_loopback_is_refused_before_it_is_tried(
    reach: Callable[[str, int], None], host: str, reached: list[Any], network_guard: list[str],
) -> None:
    with pytest.raises(OSError):
        reach(host, 25)

    assert reached == []
    assert network_guard == [f"{host}:25"]
    network_guard.clear()  # seen: the test of the guard itself passes


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost"])
def test_loopback_is_reached(host: str, reached: list[Any]) -> None:
    with socket.create_server((host, 0)) as server:
        port = server.getsockname()[1]
        _tcp(host, port)

    assert [address[1] for address in reached] == [port]


def test_unix_sockets_pass(tmp_path: Path, reached: list[Any]) -> None:
    path = str(tmp_path / "socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)

    assert reached == [path]


def test_a_test_that_reaches_beyond_loopback_fails_even_if_it_catches_the_refusal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_inner="""
        import socket

        def test_quietly_reaches_out():
            try:
                socket.create_connection(("192.0.2.1", 25), timeout=1)
            except OSError:
                pass  # as a relay failover would

        def test_stays_on_loopback():
            with socket.create_server(("127.0.0.1", 0)) as server:
                socket.create_connection(server.getsockname(), timeout=5).close()
    """)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    result = pytester.runpytest_subprocess("-p", "tests.network_guard", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*the test tried to reach beyond loopback*: 192.0.2.1:25",
        "FAILED test_inner.py::test_quietly_reaches_out*",
    ])
