"""Send start refreshes the planner's statistics only when they are stale: after a big
import they are (the table grew), right after an ANALYZE they are not (it took seconds of
the first message's wait at a million subscribers)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from newsletter.delivery.send import snapshot
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.helpers import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="planner statistics are PostgreSQL's")


def _analysed_at() -> object:
    return db.session.execute(
        text(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relid = to_regclass('subscribers')"
        )
    ).scalar()


def test_statistics_are_refreshed_when_stale_and_left_alone_when_fresh(app: Flask) -> None:
    news = make_list("news")
    make_subscriber("ada@example.org", lists=(news,))
    assert snapshot._statistics_stale("subscribers")  # never gathered

    snapshot.refresh_statistics("subscribers")
    assert not snapshot._statistics_stale("subscribers")

    # An import much larger than the table: its size on disk says so at once.
    db.session.execute(
        text(
            "INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at, "
            "token_version) SELECT 'reader' || g || '@example.org', '', '{}', 'active', now(), "
            "now(), 0 FROM generate_series(1, 5000) AS g"
        )
    )
    db.session.commit()
    assert snapshot._statistics_stale("subscribers")
    snapshot.refresh_statistics("subscribers")
    assert not snapshot._statistics_stale("subscribers")
    reltuples = db.session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('subscribers')")
    ).scalar()
    assert reltuples is not None and float(reltuples) > 4000
