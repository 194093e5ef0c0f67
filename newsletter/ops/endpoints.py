"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, orchestrators and
Prometheus, not for people.

``/metrics`` tells how much mail goes where, so it is not public: a scraper shows the
``NEWSLETTER_METRICS_TOKEN`` as a bearer token, or, with no token set, comes from an address
in ``NEWSLETTER_METRICS_ALLOW`` (loopback unless set otherwise).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import text

from newsletter.extensions import db
from newsletter.ops import metrics

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and answers (nothing else is asked of it)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready for traffic: the database and the broker answer, the migrations are applied."""
    checks = {
        "database": _database_state(),
        "broker": _broker_state(),
        "migrations": _migrations_state(),
    }
    ready = all(state in ("ok", "current") for state in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus() -> Response | tuple[str, int]:
    """The Prometheus text exposition, for a scraper with the token or an allowed address."""
    if not _scraper_allowed():
        return "not allowed\n", 403
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8")


def _database_state() -> str:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready; the logs say why
        current_app.logger.warning("readyz: the database does not answer", exc_info=True)
        return "unreachable"
    return "ok"


def _broker_state() -> str:
    broker: Any = current_app.extensions["dramatiq"]
    try:
        if hasattr(broker, "client"):  # Redis
            broker.client.ping()
        elif hasattr(broker, "connection"):  # RabbitMQ: opening the connection is the test
            broker.connection  # noqa: B018
    except Exception:  # noqa: BLE001
        current_app.logger.warning("readyz: the broker does not answer", exc_info=True)
        return "unreachable"
    return "ok"


def _migrations_state() -> str:
    # Imported when asked: the schema check loads Alembic (about 11 MB), which a web
    # process otherwise never needs.
    from newsletter.schema import SchemaState, schema_state

    try:
        state = schema_state()
    except Exception:  # noqa: BLE001 - the database is down: said by its own check
        return "unknown"
    # A schema made from the models (the tests, `create_all`) has no revision to compare.
    return "current" if state in (SchemaState.CURRENT, SchemaState.UNVERSIONED) else state.value


def _scraper_allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(client in network for network in allowed_networks(current_app.config))


def allowed_networks(config: dict[str, Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks ``METRICS_ALLOW`` names (comma-separated addresses or CIDR blocks)."""
    value = config.get("METRICS_ALLOW") or ""
    parts = [part.strip() for part in value.split(",")]
    return [ipaddress.ip_network(part, strict=False) for part in parts if part]
