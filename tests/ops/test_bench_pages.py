"""``newsletter bench pages``: seeds its own schema, times every page, prints the contract line."""

from __future__ import annotations

import re

from flask import Flask

from tests.helpers import TEST_DATABASE_URL


def test_bench_pages_times_every_admin_page_and_api_listing(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=[
        "bench", "pages", "--subscribers", "300", "--deliveries", "600", "--issues", "3",
        "--repeat", "1",
    ])
    if not TEST_DATABASE_URL:
        assert result.exit_code != 0
        assert "bench pages needs PostgreSQL" in result.output
        return
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    last = lines[-1]
    found = re.fullmatch(
        r"pages=(\d+) slowest_ms=(\d+) slowest=(\S+) baseline_ms=([\d.]+)", last
    )
    assert found, last
    timed = [line.split()[-1] for line in lines if re.match(r"^\s*[\d.]+ ms  \d{3}  /", line)]
    assert int(found.group(1)) == len(timed) - 1  # /healthz is the baseline, not a page
    assert {"/admin/subscribers", "/admin/issues", "/api/v1/subscribers"} <= set(timed)
    assert all(f" 200  {path}" in result.output for path in ("/admin/subscribers", "/admin/"))
    assert found.group(3) in timed
