"""A command's confirmation mails on the embedded queue: queued in the command's own
process, they are sent before it exits, not lost with it."""

from __future__ import annotations

import mailbox
import subprocess
from pathlib import Path

from tests.delivery.processes import instance_env, newsletter_command


def _newsletter(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(newsletter_command() + args, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def test_an_unconfirmed_import_from_the_command_line_mails_its_confirmations(
    tmp_path: Path, empty_database_url: str,
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("email,name\nhal@example.com,Hal\nada@example.org,Ada\n")
    instance = tmp_path / "instance"
    env = instance_env(instance, DATABASE_URL=empty_database_url,
                       BASE_URL="https://news.example.org")
    assert _newsletter(["db", "upgrade"], env).returncode == 0
    assert _newsletter(["lists", "create", "news", "--name", "News"], env).returncode == 0

    result = _newsletter(["subscribers", "import", str(people), "--list", "news",
                          "--mode", "unconfirmed", "--send-confirmations"], env)

    assert result.returncode == 0, result.stderr
    assert "Queued 2 confirmation mails." in result.stdout
    outbox = mailbox.Maildir(str(instance / "outbox"), create=False)
    recipients = sorted(str(message["To"]) for message in outbox)
    assert recipients == ["ada@example.org", "hal@example.com"]
    for message in outbox:
        body = message.get_payload(0).get_payload(decode=True).decode()
        assert "https://news.example.org/confirm/" in body
