"""Hosts of their own on one machine: Linux network namespaces on a bridge, for the many-hosts
test (tests/ops/test_many_hosts.py).

Each "host" is a namespace with one veth link to a bridge on the machine, and an address of
its own on a /24 nobody else uses here. The services the hosts need (PostgreSQL, RabbitMQ,
Redis) listen on loopback only; ``forward`` runs a ``socat`` on the bridge's address that
passes a port through to loopback, for this test only (no service is reconfigured).
Everything is removed by ``remove``, whatever state the test left it in.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path


class NamespacesUnavailable(Exception):
    """Network namespaces cannot be made here (not Linux, not root, no ``ip``)."""


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)
    except subprocess.CalledProcessError as error:
        raise NamespacesUnavailable(f"ip {' '.join(args)}: {error.stderr.strip()}") from None


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no address or route on this machine is in."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(50):
        subnet = ipaddress.ip_network(f"10.{random.randint(64, 250)}.{random.randint(1, 250)}.0/24")
        prefix = ".".join(str(subnet.network_address).split(".")[:3]) + "."
        if prefix not in used:
            return subnet
    raise NamespacesUnavailable("no free 10.x.y.0/24 subnet")


class Hosts:
    """Namespaces ``names`` on a bridge whose address (``gateway``) is the machine's."""

    def __init__(self, names: list[str]) -> None:
        self.tag = f"nl{secrets.token_hex(2)}"
        self.names = names
        self.bridge = f"{self.tag}br"
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self.address = {name: str(hosts[10 + n]) for n, name in enumerate(names)}
        self._forwarders: list[subprocess.Popen[bytes]] = []
        self._made: list[str] = []

    def namespace(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def link(self, name: str) -> str:
        """The host's end of the namespace's veth link."""
        return f"{self.tag}{name}h"

    def make(self) -> None:
        """Create the bridge and every namespace with its link and address.

        :raises NamespacesUnavailable: the machine does not let us.
        """
        if not (os.name == "posix" and Path("/proc/self/ns/net").exists()):
            raise NamespacesUnavailable("not Linux: no network namespaces")
        if shutil.which("ip") is None or shutil.which("socat") is None:
            raise NamespacesUnavailable("needs the ip (iproute2) and socat commands")
        if os.geteuid() != 0:
            raise NamespacesUnavailable("making network namespaces needs root")
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append("bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for name in self.names:
            namespace, host_end, inner = self.namespace(name), self.link(name), f"{self.tag}{name}n"
            _ip("netns", "add", namespace)
            self._made.append(namespace)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", inner)
            _ip("link", "set", host_end, "master", self.bridge, "up")
            _ip("link", "set", inner, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{self.address[name]}/24", "dev", inner)
            _ip("-n", namespace, "link", "set", inner, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")

    def forward(self, target_port: int, target_host: str = "127.0.0.1") -> int:
        """Listen on a port of ``gateway`` and pass each connection to the target; the port."""
        port = _free_port()
        process = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind={self.gateway},fork,reuseaddr",
             f"TCP:{target_host}:{target_port}"],  # fmt: skip
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self._forwarders.append(process)
        _wait_listening(self.gateway, port, process)
        return port

    def command(self, name: str, args: list[str]) -> list[str]:
        """``args`` run inside the host ``name``."""
        return ["ip", "netns", "exec", self.namespace(name), *args]

    def cut(self, name: str) -> None:
        """Take the host's link down: nothing goes in or out of it any more."""
        _ip("link", "set", self.link(name), "down")

    def remove(self) -> None:
        """Stop the forwarders (their children too) and delete namespaces and bridge."""
        for process in self._forwarders:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        self._forwarders.clear()
        for made in reversed(self._made):
            if made == "bridge":
                subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            else:  # its veth goes with it, and the peer on the bridge with the veth
                subprocess.run(["ip", "netns", "del", made], capture_output=True)
        self._made.clear()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    """Until something listens on ``host:port`` (read from /proc: connecting would be
    refused by the suite's network guard)."""
    import time

    wanted = f"{_hex_address(host)}:{port:04X}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NamespacesUnavailable(f"socat on {host}:{port} exited with {process.returncode}")
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == wanted and fields[3] == "0A":  # LISTEN
                    return
        time.sleep(0.05)
    raise NamespacesUnavailable(f"socat did not listen on {host}:{port}")


def _hex_address(host: str) -> str:
    return "".join(f"{part:02X}" for part in reversed(ipaddress.ip_address(host).packed))
