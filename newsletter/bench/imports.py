"""``newsletter bench import``: our CSV import against the database's own bulk path.

1. Generate a CSV of N rows (``email,name,city``; about 1 % repeats of an earlier address in
   another case, about 1 % invalid addresses).
2. The pure-SQL path, the machine's limit: ``psql`` ``\\copy`` into a staging table, then
   ``INSERT … SELECT DISTINCT … ON CONFLICT DO NOTHING`` into ``subscribers`` (its unique
   index is on ``lower(email)``), then one ``subscriptions`` row each: the same tables and
   the same end state as the import, in a freshly migrated scratch schema. It validates
   nothing.
3. Our import (every address validated) into a fresh bench database, in a child process
   whose peak resident memory is read with ``wait4``.

Both schemas are dropped at the end unless ``keep``. PostgreSQL only: on SQLite there is no
bulk path to compare with.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from newsletter import create_app
from newsletter.audience.importer import ImportMode, ImportOptions, import_file
from newsletter.bench import seed
from newsletter.bench.run import (
    BenchDatabase,
    BenchError,
    bench_app,
    bench_database,
    worker_env,
)
from newsletter.extensions import db
from newsletter.schema import upgrade_database

Echo = Callable[[str], None]
#: the child prints this, then the seconds the import took
CHILD_MARK = "import_s="
PEAK_MARK = "peak_kb="


@dataclass
class ImportBenchResult:
    rows: int
    import_s: float
    pure_sql_s: float
    peak_rss_kb: int
    output: str

    @property
    def ratio(self) -> float:
        return self.import_s / self.pure_sql_s if self.pure_sql_s > 0 else 0.0

    def line(self) -> str:
        """The key=value line."""
        return (
            f"rows={self.rows} import_s={self.import_s:.2f} pure_sql_s={self.pure_sql_s:.2f} "
            f"ratio={self.ratio:.2f} peak_rss_mb={self.peak_rss_kb / 1024:.0f}"
        )


def generate_csv(path: Path, rows: int, *, seed_value: int = 1) -> None:
    """Write the bench's CSV: ``rows`` data rows, some repeated, some invalid."""
    chooser = random.Random(seed_value)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,city\n")
        lines = []
        for number in range(1, rows + 1):
            draw = chooser.random()
            if draw < 0.01 and number > 1:
                repeat = chooser.randrange(1, number)
                email = seed.address(repeat).upper()  # the same person, in capitals
            elif draw < 0.02:
                email = f"not-an-address-{number}"
            else:
                email = seed.address(number)
            lines.append(f"{email},Reader {number},City {number % 97}\n")
            if len(lines) >= 10_000:
                out.write("".join(lines))
                lines = []
        out.write("".join(lines))


def _libpq_url(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.set(query={}).render_as_string(hide_password=False)


def pure_sql(psql: str, configured_url: str, schema: str, csv_path: Path, list_id: int
             ) -> float:
    """Seconds for psql to load the file the bulk way into the real tables of ``schema``
    (freshly migrated): the same end state as the import, without validating anything."""
    script = f"""
\\set ON_ERROR_STOP on
SET search_path TO "{schema}";
CREATE TEMP TABLE stage (email text, name text, city text);
\\timing on
\\copy stage FROM '{csv_path}' WITH (FORMAT csv, HEADER true)
INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at, token_version)
  SELECT email, name, json_build_object('city', city), 'active', now(), now(), 0
  FROM (SELECT DISTINCT email, name, city FROM stage) AS distinct_rows
  ON CONFLICT DO NOTHING;
INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, created_at,
                           confirmed_at)
  SELECT id, {int(list_id)}, 'confirmed', 'import', now(), now() FROM subscribers;
"""
    process = subprocess.Popen(
        [psql, "-X", "-q", "-d", _libpq_url(configured_url), "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # psql's own timing: the three statements only, not its start or the staging table.
    output, errors = process.communicate(script)
    if process.returncode != 0:
        raise BenchError(f"psql failed: {errors.strip() or output.strip()}")
    milliseconds = sum(
        float(line.split()[1]) for line in output.splitlines() if line.startswith("Time:")
    )
    return milliseconds / 1000


def _fresh_schema(config: Any, url: str) -> int:
    """Migrate the (new, empty) schema of ``url`` and make the bench's list; its id."""
    app = bench_app(config, {"DATABASE_URL": url})
    with app.app_context():
        try:
            upgrade_database()
            return seed.create_list()
        finally:
            db.session.remove()
            db.engine.dispose()


def _child_command(csv_path: Path) -> list[str]:
    code = ("import sys; from newsletter.bench.imports import child_main; "
            "sys.exit(child_main(sys.argv[1]))")
    return [sys.executable, "-c", code, str(csv_path)]


def child_main(csv_path: str) -> int:
    """In the child: import the file into the configured (bench) database, print the time
    and the peak memory."""
    app = create_app()
    with app.app_context(), open(csv_path, "rb") as stream:
        started = time.perf_counter()
        result = import_file(stream, ImportOptions(list_slug=seed.LIST_SLUG,
                                                   mode=ImportMode.SUBSCRIBE))
        seconds = time.perf_counter() - started
        print(f"created={result.created} merged={result.merged} bad={result.bad} "
              f"subscribed={result.subscribed}")
        print(f"{CHILD_MARK}{seconds:.3f}", flush=True)
    print(f"{PEAK_MARK}{own_peak_kb()}", flush=True)
    return 0


def own_peak_kb() -> int:
    """This process's peak resident memory (KiB) since it started its program.

    Linux's ``VmHWM``: ``ru_maxrss`` would also count the parent's pages the child held
    between fork and exec, so a child of a big parent would report the parent's size.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_import_bench(config: Any, rows: int, *, keep: bool, echo: Echo) -> ImportBenchResult:
    """Run both paths on ``rows`` rows; clean up whatever happens."""
    configured = str(config["DATABASE_URL"])
    if make_url(configured).get_backend_name() != "postgresql":
        raise BenchError(
            "bench import needs PostgreSQL (NEWSLETTER_DATABASE_URL=postgresql+psycopg://…): "
            "its yardstick is PostgreSQL's own bulk path, psql's \\copy"
        )
    psql = shutil.which("psql") or ("/usr/bin/psql" if Path("/usr/bin/psql").exists() else None)
    if psql is None:
        raise BenchError("bench import needs psql (package postgresql-client)")
    database = bench_database(configured)
    sql_schema = f"{database.schema}_sql"
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="nl-bench-")))
        csv_path = workdir / "people.csv"
        started = time.monotonic()
        generate_csv(csv_path, rows)
        echo(f"generated {rows} rows ({csv_path.stat().st_size / 1e6:.1f} MB) in "
             f"{time.monotonic() - started:.1f} s")
        sql_database = bench_database(configured)
        sql_database = BenchDatabase(
            url=sql_database.url.replace(f"{database.schema}", sql_schema),
            configured_url=configured,
            schema=sql_schema,
        )
        sql_database.create()
        if not keep:
            cleanup.callback(sql_database.drop)
        list_id = _fresh_schema(config, sql_database.url)
        pure_sql_s = pure_sql(psql, configured, sql_schema, csv_path, list_id)
        echo(f"pure SQL (psql \\copy, INSERT … SELECT DISTINCT, memberships, into the same "
             f"tables): {pure_sql_s:.2f} s")

        database.create()
        if not keep:
            cleanup.callback(database.drop)
        _fresh_schema(config, database.url)
        env = worker_env(config, {"NEWSLETTER_DATABASE_URL": database.url})
        output = _run_child(_child_command(csv_path), env, workdir)
        peak_kb = next(
            int(line[len(PEAK_MARK):]) for line in output.splitlines()
            if line.startswith(PEAK_MARK)
        )
        seconds = next(
            float(line[len(CHILD_MARK):]) for line in output.splitlines()
            if line.startswith(CHILD_MARK)
        )
        echo(output.strip().splitlines()[0])
        cpu = output.strip().splitlines()[-1]
        echo(f"our import (every address validated): {seconds:.2f} s ({cpu}, the child's "
             "CPU time from its start; the rest is waiting for the database)")
        return ImportBenchResult(rows, seconds, pure_sql_s, peak_kb, output)
    raise AssertionError("unreachable")  # pragma: no cover


def _run_child(command: list[str], env: dict[str, str], workdir: Path) -> str:
    """Run the child to its end; its output, and its CPU time from ``wait4`` (so the child
    is reaped here, not by ``subprocess``)."""
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchError(f"the import failed: {err_path.read_text()[-2000:].strip()}")
    cpu = usage.ru_utime + usage.ru_stime
    return f"{out_path.read_text()}cpu_s={cpu:.2f}\n"
