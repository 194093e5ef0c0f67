"""``newsletter bench send --segment QUERY``: the issue narrowed by a segment on the
seeded attributes, every matching recipient reached once, the others not at all."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.bench.sink import find_program
from tests.helpers import require_service


def test_bench_send_with_a_segment_reaches_only_the_matching_recipients(
    app: Flask, runner: FlaskCliRunner
) -> None:
    for program in ("smtp-sink", "smtp-source"):
        if find_program(program) is None:
            require_service(program, "install Postfix (package `postfix`)")

    result = runner.invoke(
        args=["bench", "send", "--recipients", "200", "--connections", "2",
              "--raw-messages", "300", "--segment", 'attributes.city = "Madrid"']
    )  # fmt: skip

    busy = ("other client(s) of this broker are live", "jobs are waiting on this broker")
    if any(reason in result.output for reason in busy):
        pytest.skip("another test session uses this Redis database right now")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    pairs = dict(pair.split("=", 1) for pair in last.split())
    # one in ten bench subscribers lives in Madrid
    assert (pairs["recipients"], pairs["distinct"]) == ("20", "20")
    assert (pairs["seeded"], pairs["segment"]) == ("200", "on")
    assert 0 <= float(pairs["first_message_s"]) < 30
    assert "20 messages, 20 distinct recipients of 20 (0 repeated, 0 unexpected)" in result.output


def test_bench_send_refuses_a_bad_segment(app: Flask, runner: FlaskCliRunner) -> None:
    for program in ("smtp-sink", "smtp-source"):
        if find_program(program) is None:
            require_service(program, "install Postfix (package `postfix`)")
    result = runner.invoke(
        args=["bench", "send", "--recipients", "10", "--raw-messages", "100",
              "--segment", "attributes.city ="]
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--segment: at column 18" in result.output
