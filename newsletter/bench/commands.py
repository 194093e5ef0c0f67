"""``newsletter bench send``: how fast does a send go, compared with the wire? And
``newsletter bench pages``: how fast are the admin pages at size?"""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter.bench.imports import run_import_bench
from newsletter.bench.pages import BenchPagesError, PagesOptions, run_pages, summary_line
from newsletter.bench.run import BenchError, BenchOptions, run_bench
from newsletter.bench.sink import SinkError
from newsletter.bench.subscribers import bench_subscribers
from newsletter.bench.workers import WorkerError

bench_group = AppGroup("bench", help="Measure delivery speed against Postfix's smtp-sink.")


def register(app: Flask) -> None:
    """Add ``bench`` to ``app.cli``."""
    app.cli.add_command(bench_group)


@bench_group.command("send")
@click.option(
    "--recipients",
    "-n",
    required=True,
    type=click.IntRange(min=1),
    help="Subscribers to seed and send to.",
)
@click.option(
    "--connections",
    "-c",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="SMTP connections in total, for smtp-source and for the workers.",
)
@click.option(
    "--processes",
    "-p",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes sharing the connections [default: min(connections, CPUs)].",
)
@click.option(
    "--dkim/--no-dkim",
    default=False,
    show_default=True,
    help="Sign every message with a throwaway DKIM key.",
)
@click.option(
    "--keep", is_flag=True, help="Leave the bench database (schema or file) in place afterwards."
)
@click.option(
    "--raw-messages",
    default=None,
    type=click.IntRange(min=1),
    help="Messages for the smtp-source run [default: recipients, 10,000 to 100,000].",
)
@click.option(
    "--segment",
    default=None,
    metavar="QUERY",
    help='Narrow the issue by a segment, e.g. \'attributes.city = "Madrid"\' (the seeded '
    "subscribers get a city, one in ten Madrid, and a number n from 0 to 99).",
)
def send_command(
    recipients: int,
    connections: int,
    processes: int | None,
    dkim: bool,
    keep: bool,
    raw_messages: int | None,
    segment: str | None,
) -> None:
    """Seed RECIPIENTS subscribers, measure smtp-source against smtp-sink, then send a 20 KB
    issue to them through the configured database and broker and compare.

    Writes only to a database of its own beside the configured one (a `<schema>_bench`
    schema on PostgreSQL, a `-bench.db` file on SQLite). The last line is key=value pairs.
    """

    options = BenchOptions(
        recipients=recipients,
        connections=connections,
        processes=processes or min(connections, os.cpu_count() or 1),
        dkim=dkim,
        keep=keep,
        raw_messages=raw_messages,
        segment=segment,
    )
    try:
        result = run_bench(current_app.config, options, lambda line: click.echo(line, err=True))
    except (BenchError, SinkError, WorkerError) as error:
        raise click.ClickException(str(error)) from None
    for line in result.summary():
        click.echo(line)


@bench_group.command("pages")
@click.option("--subscribers", default=1_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--lists", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--issues", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--deliveries", default=10_000_000, show_default=True, type=click.IntRange(min=1),
              help="Delivery rows in all, spread over the issues.")
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1),
              help="Requests per page; the median is printed.")
@click.option("--keep", is_flag=True, help="Leave the bench schema in place afterwards.")
@click.option("--reuse", is_flag=True,
              help="Time the data set a --keep run left (seed only if there is none); keeps it.")
def pages_command(
    subscribers: int, lists: int, issues: int, deliveries: int, repeat: int, keep: bool,
    reuse: bool,
) -> None:
    """Seed a large data set in a schema of its own (PostgreSQL), then time every admin page
    and API listing. Prints each page's median; the last line is key=value pairs."""
    options = PagesOptions(subscribers=subscribers, lists=lists, issues=issues,
                           deliveries=deliveries, repeat=repeat, keep=keep,
                           reuse=reuse)
    try:
        times = run_pages(current_app.config, options, click.echo)
    except BenchPagesError as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary_line(times))


bench_group.add_command(bench_subscribers)  # the admin's subscriber pages


@bench_group.command("import")
@click.option("--rows", "-n", required=True, type=click.IntRange(min=1),
              help="Rows of the generated CSV file.")
@click.option("--keep", is_flag=True, help="Leave the bench schemas in place afterwards.")
def import_command(rows: int, keep: bool) -> None:
    """Generate a CSV of ROWS rows (some repeated, some invalid), load it the pure-SQL way
    with psql (\\copy, INSERT … SELECT DISTINCT … ON CONFLICT DO NOTHING, memberships),
    then import it with every address validated, and compare.

    PostgreSQL only; writes to schemas of its own. The last line is key=value pairs.
    """
    try:
        result = run_import_bench(
            current_app.config, rows, keep=keep, echo=lambda line: click.echo(line, err=True)
        )
    except BenchError as error:
        raise click.ClickException(str(error)) from None
    click.echo(result.line())
