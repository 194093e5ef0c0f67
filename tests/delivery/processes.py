"""Running the ``newsletter`` command in a subprocess against the test's database and queue."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask


def newsletter_command() -> list[str]:
    """The installed ``newsletter`` script beside this Python (what an operator runs)."""
    script = Path(sys.executable).parent / "newsletter"
    if script.exists():
        return [str(script)]
    found = shutil.which("newsletter")
    if found:
        return [found]
    return [sys.executable, "-c", "from newsletter.cli import entry_point; entry_point()"]


def newsletter_env(app: Flask, **settings: Any) -> dict[str, str]:
    """An environment whose ``NEWSLETTER_*`` settings point at the app's database, queue,
    relay and instance folder; ``settings`` override or add (None removes one)."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("NEWSLETTER_", "FLASK_"))
    }
    values: dict[str, Any] = {
        "INSTANCE_PATH": app.instance_path,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "BROKER_URL": app.config.get("BROKER_URL"),
        "SMTP_URL": app.config.get("SMTP_URL"),
        "BASE_URL": app.config["BASE_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "FROM_ADDRESS": app.config["FROM_ADDRESS"],
    }
    values.update(settings)
    for key, value in values.items():
        if value is not None:
            env[f"NEWSLETTER_{key}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def instance_env(instance: Path, **settings: Any) -> dict[str, str]:
    """An environment for a fresh instance in the folder ``instance``: every other setting
    unset (the embedded default) unless ``settings`` give it."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("NEWSLETTER_", "FLASK_"))
    }
    env["NEWSLETTER_INSTANCE_PATH"] = str(instance)
    for key, value in settings.items():
        if value is not None:
            env[f"NEWSLETTER_{key}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``newsletter ARGS…`` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            newsletter_command() + args, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run(
    args: list[str], env: dict[str, str], timeout: float = 120, input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``newsletter ARGS…`` to the end (``input`` on its stdin) and return its output."""
    return subprocess.run(
        newsletter_command() + args, env=env, capture_output=True, text=True, timeout=timeout,
        input=input,
    )


SERVING = re.compile(r"^Serving on http://\S+:(\d+)/", re.MULTILINE)


def served_port(server: subprocess.Popen[bytes], log: Path) -> int:
    """Wait until ``newsletter run`` (output in ``log``) serves; the port it serves on."""
    wait_until(
        lambda: SERVING.search(log.read_text()) is not None or server.poll() is not None,
        what="the server to start",
    )
    found = SERVING.search(log.read_text())
    assert found, log.read_text()
    return int(found.group(1))


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the process and its children; return its exit status."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    return process.wait(timeout=60)


def wait_until(condition: Callable[[], bool], *, timeout: float = 60, what: str = "") -> None:
    """Poll ``condition`` until true: only for other processes, which run_jobs cannot join."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.1)


def start_send(
    app: Flask, issue_id: int, env: dict[str, str], logs: Path, *,
    workers: int = 1, resume: bool = False,
) -> list[subprocess.Popen[bytes]]:
    """Send the issue with real processes, as an operator would; return them.

    On the embedded queue (stub broker) that is one ``newsletter issues send ID --wait``: its
    worker threads do the work and the queue lives and dies with it. With a broker it is
    ``workers`` × ``newsletter worker`` (each ready, i.e. consuming, before the send is
    requested from this process). ``resume``: the issue is already sending; the embedded
    command resumes it, and workers resume it at start-up. Logs go to ``logs``/*.log.
    """
    from newsletter.broker import is_embedded
    from newsletter.delivery.send import dispatcher

    logs.mkdir(parents=True, exist_ok=True)
    if is_embedded(app):
        return [start(["issues", "send", str(issue_id), "--wait"], env, _next_log(logs, "send"))]
    started = []
    for _ in range(workers):
        log = _next_log(logs, "worker")
        started.append((start(["worker"], env, log), log))
    for process, log in started:
        wait_until(
            lambda p=process, lg=log: "consuming with" in lg.read_text() or p.poll() is not None,
            timeout=60, what=f"worker {process.pid} to start",
        )
        assert process.poll() is None, log.read_text()
    if not resume:
        dispatcher.request_send(issue_id)
    return [process for process, _ in started]


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 30) -> list[int]:
    """Let a ``… --wait`` command end by itself; SIGTERM workers, all at once (they stop
    cleanly, each in about two seconds). Return the exit statuses."""
    for process in processes:
        if "--wait" not in process.args and process.poll() is None:  # type: ignore[operator]
            _signal_group(process, signal.SIGTERM)
    statuses = []
    for process in processes:
        try:
            statuses.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            statuses.append(kill_group(process, signal.SIGTERM))
    return statuses


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def logs_text(logs: Path) -> str:
    """Every log in the folder, for a failure message."""
    return "\n".join(f"--- {log.name}\n{log.read_text()}" for log in sorted(logs.glob("*.log")))


def _next_log(logs: Path, stem: str) -> Path:
    n = 1 + len(list(logs.glob(f"{stem}-*.log")))
    return logs / f"{stem}-{n}.log"
