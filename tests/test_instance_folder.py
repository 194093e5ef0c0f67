"""The instance folder (database, outbox, keys) is for the account that runs the app alone:
nothing in it is open to the group or to others."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import create_app
from newsletter.extensions import db
from tests.delivery.processes import instance_env, kill_group, run, served_port, start, wait_until
from tests.factories import make_list
from tests.helpers import sign_up

# Runs once, in the embedded pass (Makefile): every instance here is the embedded default,
# whatever database and broker the pass tests.
pytestmark = pytest.mark.once


def open_to_others(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (and itself) that the group or others may use."""
    paths = [folder, *folder.rglob("*")]
    return {
        str(path.relative_to(folder)): stat.filemode(path.stat().st_mode)
        for path in paths
        if path.stat().st_mode & 0o077
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_app_makes_its_instance_folder_and_database_for_its_owner_only(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    app = create_app({"INSTANCE_PATH": str(instance)})  # SQLite, outbox, generated key
    with app.app_context():
        db.create_all()
        make_list("news")  # a write: SQLite opens its -wal and -shm files
        files = {path.name for path in instance.iterdir()}
        closed = open_to_others(instance)
        db.engine.dispose()

    assert {"newsletter.db", "newsletter.db-wal", "newsletter.db-shm", "secret_key",
            "outbox"} <= files
    assert closed == {}
    assert mode(instance) == 0o700
    assert [mode(instance / "outbox" / sub) for sub in ("new", "cur", "tmp")] == [0o700] * 3


def test_an_instance_folder_left_open_by_an_older_version_is_closed(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    for name in ("newsletter.db", "newsletter.db-wal", "secret_key"):
        (instance / name).touch(mode=0o644)
    (instance / "secret_key").write_text("an old generated key")
    for path in [instance, *instance.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # whatever the umask did

    create_app({"INSTANCE_PATH": str(instance)})

    assert open_to_others(instance) == {}


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask of most shells (022), which the commands started meanwhile inherit."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_newsletter_commands_and_run_keep_everything_they_write_to_their_owner(
    tmp_path: Path, usual_umask: None,
) -> None:
    instance = tmp_path / "instance"
    env = instance_env(instance)
    made = run(["lists", "create", "news", "--name", "News"], env)
    keyed = run(["dkim", "keygen", "example.org", "--selector", "s1", "--bits", "1024"], env)
    assert made.returncode == 0 and keyed.returncode == 0, made.stderr + keyed.stderr
    log = tmp_path / "run.log"

    server = start(["run", "--port", "0"], env, log)
    try:
        sign_up(f"http://127.0.0.1:{served_port(server, log)}", "ada@example.org", "news")
        wait_until(lambda: any((instance / "outbox" / "new").iterdir()), what="the mail")
        written = {str(path.relative_to(instance)) for path in instance.rglob("*")}
        closed = open_to_others(instance)  # while it runs: the -wal and -shm files are there
    finally:
        kill_group(server, signal.SIGTERM)

    assert {"newsletter.db-wal", "secret_key", "dkim/example.org/s1.private"} <= written
    assert closed == {}
