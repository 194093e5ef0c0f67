"""Counts for pages that must stay fast at millions of rows: exact when small, else the
planner's own estimate, shown as "about N".

``count(*)`` over a million subscribers reads every row (hundreds of milliseconds, more on a
loaded machine) on every look at the dashboard. PostgreSQL keeps what ANALYZE (and
autovacuum) last measured: ``pg_class.reltuples`` for a table's size, and the multivariate
MCV list of an extended statistics object (``CREATE STATISTICS … (mcv)``) for how often
each combination of two columns occurs. Those are read in a millisecond, and are within a
percent or so of the truth for the large figures they stand for. Below ``EXACT_BELOW`` rows
(and always on SQLite, whose databases are small) the count is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select, text

from newsletter.extensions import db

#: below this many rows (as estimated) a count is taken exactly: cheap, and a small figure
#: that is off by a few would be noticed
EXACT_BELOW = 50_000


@dataclass(frozen=True)
class Tally:
    """A count, and whether it is exact or an estimate."""

    value: int
    exact: bool = True

    def __str__(self) -> str:
        # An exact figure reads as it always did; an estimate says so, rounded to what
        # it is worth (three significant digits).
        if self.exact:
            return str(self.value)
        return f"about {_round(self.value):,}"

    def __int__(self) -> int:
        return self.value


def _round(value: int) -> int:
    digits = len(str(abs(value)))
    step = 10 ** max(0, digits - 3)
    return int(round(value / step) * step)


def is_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def estimated_rows(table: Table) -> int | None:
    """PostgreSQL's estimate of ``table``'s rows (None: never measured, or not PostgreSQL).

    ``reltuples`` scaled to the table's current size, as the planner does, so rows added
    since the last ANALYZE are seen too.
    """
    if not is_postgresql():
        return None
    row = db.session.execute(
        text(
            "SELECT reltuples, relpages, "
            "pg_relation_size(oid) / current_setting('block_size')::int "
            "FROM pg_class WHERE oid = to_regclass(:name)"
        ),
        {"name": table.name},  # resolved on the search path, like the table itself
    ).first()
    if row is None or row[0] is None or float(row[0]) < 0:
        return None
    reltuples, relpages, pages_now = float(row[0]), int(row[1] or 0), int(row[2] or 0)
    if relpages > 0 and pages_now > 0:
        return int(reltuples / relpages * pages_now)
    return int(reltuples)


def table_count(table: Table) -> Tally:
    """How many rows ``table`` holds: exact below ``EXACT_BELOW``, else estimated."""
    estimate = estimated_rows(table)
    if estimate is not None and estimate >= EXACT_BELOW:
        return Tally(estimate, exact=False)
    return Tally(int(db.session.scalar(select(func.count()).select_from(table)) or 0))


def pair_frequencies(table: Table, statistics: str) -> dict[tuple[str, str], float] | None:
    """The share of ``table``'s rows holding each of the most common pairs of values of the
    extended statistics object ``statistics`` (two columns, kind ``mcv``), as text.

    None when PostgreSQL has no such statistics (not PostgreSQL, not made, or never
    analysed).
    """
    if not is_postgresql():
        return None
    row = db.session.execute(
        text(
            "SELECT most_common_vals, most_common_freqs FROM pg_stats_ext "
            "WHERE statistics_name = :name AND tablename = :table "
            "AND schemaname = current_schema()"
        ),
        {"name": statistics, "table": table.name},
    ).first()
    if row is None or row[0] is None:
        return None
    pairs: dict[tuple[str, str], float] = {}
    for values, frequency in zip(_pairs(row[0]), row[1], strict=False):
        pairs[values] = float(frequency)
    return pairs


def _pairs(values: Any) -> list[tuple[str, str]]:
    """``most_common_vals`` as pairs: psycopg gives a two-dimensional array as nested lists."""
    return [(str(first), str(second)) for first, second in values]
