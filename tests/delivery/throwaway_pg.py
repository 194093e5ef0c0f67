"""A PostgreSQL cluster of the test's own, in a temporary folder on a free port: one it may
restart (the shared server on 5432 serves every other test and helper)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, require_service

INSTALL_ROOT = Path("/usr/lib/postgresql")


def server_binaries() -> Path | None:
    """The ``bin`` folder of the newest PostgreSQL installed (Debian layout), or of the
    ``pg_ctl`` on PATH; None when there is none."""
    versions = [
        path for path in INSTALL_ROOT.glob("*/bin") if (path / "pg_ctl").exists()
    ] if INSTALL_ROOT.is_dir() else []
    if versions:
        return max(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


@dataclass
class ThrowawayPostgres:
    bin: Path
    data: Path
    port: int
    user: str | None  # run the server as this user (root may not); None: as ourselves

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
        return result

    def init_and_start(self) -> None:
        self._run("initdb", "-D", str(self.data / "db"), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        self.come_back()

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, then the server is back."""
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", "fast", "-w", "restart")

    def go_down(self) -> None:
        """The first half of ``pg_ctl restart -m fast``: cut every connection and stop."""
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", "fast", "-w", "stop")

    def come_back(self) -> None:
        """Start (again): on our port, loopback only, socket in our folder, no fsync."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data / "db"), "-l", str(self.data / "server.log"),
                  "-o", options, "-w", "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "db" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data / "db"), "-m", "immediate", "-w", "stop")


@contextmanager
def throwaway_cluster() -> Iterator[ThrowawayPostgres]:
    """A fresh cluster, stopped and removed at the end. Missing binaries skip the test
    (or fail it under CI, whose set-up installs PostgreSQL)."""
    binaries = server_binaries()
    if binaries is None:
        require_service("PostgreSQL server binaries", "no pg_ctl/initdb installed")
    assert binaries is not None
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require_service("PostgreSQL server binaries", "no postgres user to run them as")
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    if user:
        shutil.chown(folder, user, user)
    cluster = ThrowawayPostgres(bin=binaries, data=folder, port=free_port(), user=user)
    try:
        cluster.init_and_start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
