"""The importing process's memory: what an operator's ``newsletter subscribers import``
peaks at stays under the issue's 150 MB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from newsletter.bench.imports import generate_csv
from tests.delivery.processes import instance_env, newsletter_command

LIMIT_MB = 150
ROWS = 30_000  # several chunks: the memory a chunk takes is freed before the next

# A small parent runs the command and reports its peak from ``wait4``: a child forked
# straight from pytest would report pytest's own size, which it held until its exec.
MEASURE = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(process.pid, 0)
print(f"peak_kb={usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _newsletter(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(newsletter_command() + args, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def _peak_mb(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``newsletter ARGS…`` to its end: its result and peak resident memory (MB)."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *newsletter_command(), *args],
                            env=env, capture_output=True, text=True, check=False, timeout=300)
    peak_kb = int(result.stderr.rsplit("peak_kb=", 1)[1])
    return result, peak_kb // 1024


def test_importing_a_large_file_from_the_command_line_stays_under_150_mb(
    tmp_path: Path, empty_database_url: str,
) -> None:
    csv_path = tmp_path / "people.csv"
    generate_csv(csv_path, ROWS)
    env = instance_env(tmp_path / "instance", DATABASE_URL=empty_database_url)
    assert _newsletter(["db", "upgrade"], env).returncode == 0
    made = _newsletter(["lists", "create", "news", "--name", "News", "--single-optin"], env)
    assert made.returncode == 0, made.stderr

    result, peak_mb = _peak_mb(
        ["subscribers", "import", str(csv_path), "--list", "news", "--mode", "subscribe"], env
    )

    assert result.returncode == 0, result.stderr
    created = int(result.stdout.split("created=", 1)[1].split()[0])
    assert created > ROWS * 0.95  # the rows were imported, not refused
    assert peak_mb < LIMIT_MB, f"the import peaked at {peak_mb} MB"
