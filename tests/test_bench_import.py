"""``newsletter bench import``: a small real run of both paths, on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, inspect, make_url

from newsletter.bench.imports import generate_csv

KEYS = ["rows", "import_s", "pure_sql_s", "ratio", "peak_rss_mb"]


def _postgresql(app: Flask) -> bool:
    return make_url(str(app.config["DATABASE_URL"])).get_backend_name() == "postgresql"


def test_bench_import_prints_the_contract_line(app: Flask, runner: FlaskCliRunner) -> None:
    if not _postgresql(app):
        pytest.skip("the import bench compares with PostgreSQL's bulk path (see the SQLite test)")
    result = runner.invoke(args=["bench", "import", "--rows", "2000"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    pairs = dict(pair.split("=", 1) for pair in last.split())
    assert list(pairs) == KEYS
    assert pairs["rows"] == "2000"
    assert float(pairs["import_s"]) > 0 and float(pairs["pure_sql_s"]) > 0
    assert float(pairs["ratio"]) > 0 and 0 < int(pairs["peak_rss_mb"]) < 1000
    # Both scratch schemas are gone again.
    engine = create_engine(str(app.config["DATABASE_URL"]))
    try:
        schemas = inspect(engine).get_schema_names()
    finally:
        engine.dispose()
    assert not [schema for schema in schemas if schema.endswith(("_bench", "_bench_sql"))
                and schema.startswith("nl_test_")]


def test_bench_import_says_it_needs_postgresql(app: Flask, runner: FlaskCliRunner) -> None:
    if _postgresql(app):
        pytest.skip("on PostgreSQL the bench runs (see above)")
    result = runner.invoke(args=["bench", "import", "--rows", "10"])
    assert result.exit_code == 1
    assert "needs PostgreSQL" in result.output and "Traceback" not in result.output


def test_the_generated_file_has_repeats_and_invalid_rows(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    generate_csv(path, 5000)
    lines = path.read_text().splitlines()
    assert lines[0] == "email,name,city" and len(lines) == 5001
    emails = [line.split(",")[0] for line in lines[1:]]
    assert 10 < sum(1 for e in emails if "@" not in e) < 150
    assert 10 < len(emails) - len({e.lower() for e in emails}) < 150
