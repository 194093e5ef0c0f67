"""``newsletter backup`` and ``newsletter restore``: everything an installation needs to be
itself again on another machine, in one folder.

The folder holds the database (PostgreSQL: ``pg_dump``'s custom format, one consistent
snapshot taken while the app runs; SQLite: a copy made with SQLite's online backup API,
consistent while the app writes), the secret key when the instance folder keeps it (it
signs every link in mail already sent: without it they all stop working) and the DKIM keys
(their public halves are in DNS). The outbox and the media are not in it; see
docs/operations.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import inspect, update
from sqlalchemy.engine import make_url

from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db
from newsletter.models import utcnow
from newsletter.schema import schema_state

SQLITE_FILE = "newsletter.db"
PG_FILE = "database.pgdump"
MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    """What a backup folder holds."""

    folder: Path
    database: str  # "sqlite" or "postgresql"
    secret_key: bool
    dkim_keys: int


def backup(app: Flask, folder: Path) -> Backup:
    """Write a backup of the app's installation into ``folder`` (new or empty), readable by
    its owner alone.

    :raises BackupError: the folder is not empty, or the database cannot be dumped.
    """
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty; give a new folder")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = make_url(app.config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        _backup_sqlite(str(url.database), folder / SQLITE_FILE)
        kind = "sqlite"
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={folder / PG_FILE}",
              _libpq_url(app)], "pg_dump", app)  # fmt: skip
        kind = "postgresql"
    key_file = Path(app.instance_path) / "secret_key"
    has_key = key_file.is_file()
    if has_key:
        shutil.copy2(key_file, folder / "secret_key")
    dkim_dir = Path(str(app.config["DKIM_KEY_DIR"]))
    keys = 0
    if dkim_dir.is_dir():
        shutil.copytree(dkim_dir, folder / "dkim")
        keys = sum(1 for _ in (folder / "dkim").rglob("*.private"))
    manifest = {
        "created_at": utcnow().isoformat(),
        "database": kind,
        "schema": schema_state().value,
        "secret_key": has_key,
        "dkim_keys": keys,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    return Backup(folder, kind, has_key, keys)


def restore(app: Flask, folder: Path) -> Backup:
    """Bring a backup back into the app's (empty) database and instance folder, then hand the
    claims that were under lease back to the queue, so an interrupted send goes on at once.

    :raises BackupError: not a backup folder, another kind of database, or a database that
        is not empty (nothing is overwritten).
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupError(f"{folder} is not a backup made by `newsletter backup`") from None
    url = make_url(app.config["DATABASE_URL"])
    kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    if manifest.get("database") != kind:
        raise BackupError(f"this backup holds a {manifest.get('database')} database; the "
                          f"configured one is {kind} (NEWSLETTER_DATABASE_URL)")
    if inspect(db.engine).get_table_names():
        raise BackupError("the configured database is not empty; restore into a new one")
    db.engine.dispose()
    if kind == "sqlite":
        shutil.copy2(folder / SQLITE_FILE, str(url.database))
    else:
        _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq_url(app)}",
              str(folder / PG_FILE)], "pg_restore", app)  # fmt: skip
    instance = Path(app.instance_path)
    if (folder / "secret_key").is_file() and not (instance / "secret_key").exists():
        shutil.copy2(folder / "secret_key", instance / "secret_key")
    dkim_dir = Path(str(app.config["DKIM_KEY_DIR"]))
    if (folder / "dkim").is_dir():
        shutil.copytree(folder / "dkim", dkim_dir, dirs_exist_ok=True)
    release_leases()
    return Backup(folder, kind, bool(manifest.get("secret_key")), int(manifest.get("dkim_keys", 0)))


def release_leases() -> int:
    """Clear the leases of rows still to send: the workers that held them are gone with the
    old machine, and waiting out the leases would only delay the send. Returns how many."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.lease_until.is_not(None))
        .values(lease_until=None)
    )
    db.session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _backup_sqlite(path: str, destination: Path) -> None:
    """SQLite's online backup: a consistent copy while other connections keep writing."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(destination)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()


def _libpq_url(app: Flask) -> str:
    """The database URL as libpq's tools read it: no SQLAlchemy driver name, and no password
    (a command line is visible to every user of the machine; ``_run`` passes it in the
    environment)."""
    url = make_url(app.config["DATABASE_URL"]).set(drivername="postgresql", password=None)
    return url.render_as_string(hide_password=False)


def _run(command: list[str], tool: str, app: Flask) -> None:
    env = dict(os.environ)
    password = make_url(app.config["DATABASE_URL"]).password
    if password:
        env["PGPASSWORD"] = str(password)
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    except FileNotFoundError:
        raise BackupError(f"{tool} is not installed (Debian: apt-get install "
                          "postgresql-client)") from None
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or "").strip().splitlines()
        raise BackupError(f"{tool} failed: {reason[-1] if reason else error.returncode}") from None
