"""The bench's workers: ``newsletter worker`` subprocesses, or threads in this process on the
embedded queue, and their peak memory read from ``/proc``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from newsletter.broker import start_worker_threads, stop_worker

#: how long workers may take to stop cleanly before they are killed
STOP_SECONDS = 15.0
READY_LINE = "consuming with"


class WorkerError(RuntimeError):
    """A worker did not start, or died during the send."""


def plan(connections: int, processes: int) -> list[int]:
    """Threads for each worker process so that they add up to ``connections``
    (each sending thread holds one SMTP connection)."""
    processes = max(1, min(processes, connections))
    base, extra = divmod(connections, processes)
    return [base + (1 if n < extra else 0) for n in range(processes)]


def worker_command() -> list[str]:
    """How to run ``newsletter …`` with this interpreter."""
    script = Path(sys.executable).with_name("newsletter")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from newsletter.cli import main; main()"]


def peak_rss_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process and its children, in KiB; 0 if gone."""
    peak = _vm_hwm(pid)
    for child in _children(pid):
        peak = max(peak, peak_rss_kb(child))
    return peak


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listing:
                children += [int(child) for child in listing.read().split()]
    except (OSError, ValueError):
        pass
    return children


def reset_peak_rss() -> None:
    """Start this process's VmHWM afresh (seeding memory is not the workers')."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the figure then includes seeding


class WorkerProcesses:
    """``newsletter worker --processes 1 --threads T`` per entry of the plan."""

    def __init__(self, threads: list[int], env: dict[str, str], log_dir: Path) -> None:
        self.threads = threads
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.peak_kb = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start every worker and wait until each consumes."""
        for number, threads in enumerate(self.threads, start=1):
            log = open(self.log_path(number), "wb")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            command = [*worker_command(), "worker", "--processes", "1", "--threads", str(threads)]
            # Own session: Ctrl-C reaches the bench, which stops them itself.
            self.processes.append(
                subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        waiting = set(range(1, len(self.threads) + 1))
        while waiting:
            self.check_alive()
            waiting = {n for n in waiting if READY_LINE not in self.log_tail(n)}
            if waiting and time.monotonic() > deadline:
                late = min(waiting)
                raise WorkerError(f"worker {late} did not start:\n{self.log_tail(late, 2000)}")
            time.sleep(0.05)

    def log_path(self, number: int) -> Path:
        return self.log_dir / f"worker-{number}.log"

    def log_tail(self, number: int, size: int = 4000) -> str:
        try:
            with open(self.log_path(number), "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - size))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        """:raises WorkerError: a worker exited (with the end of its log)."""
        for number, process in enumerate(self.processes, start=1):
            if process.poll() is not None:
                tail = self.log_tail(number, 2000)
                raise WorkerError(f"worker {number} exited with {process.returncode}:\n{tail}")

    def sample(self) -> int:
        """Read every live worker's peak RSS; return the highest seen so far, in KiB."""
        for process in self.processes:
            if process.poll() is None:
                self.peak_kb = max(self.peak_kb, peak_rss_kb(process.pid))
        return self.peak_kb

    def stop(self) -> None:
        """SIGTERM every worker, then SIGKILL whoever is still there after a while."""
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for log in self._logs:
            log.close()


def _signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    # The worker's own process group: its spawned children (--processes > 1) go too.
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


class WorkerThreads:
    """The embedded queue: Dramatiq worker threads in this process."""

    def __init__(self, app: Any, threads: int) -> None:
        self.app = app
        self.threads = threads
        self.worker: Any = None
        self.peak_kb = 0

    def start(self) -> None:

        reset_peak_rss()
        self.worker = start_worker_threads(self.app, threads=self.threads)

    def check_alive(self) -> None:
        """Threads die with the process; nothing to check."""

    def sample(self) -> int:
        self.peak_kb = max(self.peak_kb, _vm_hwm(os.getpid()))
        return self.peak_kb

    def stop(self) -> None:

        if self.worker is not None:
            stop_worker(self.worker, 10_000)
            self.worker = None
