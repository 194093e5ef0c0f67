"""A real IMAP server over TLS on loopback: Debian's dovecot, run from a configuration of
the test's own (``dovecot -c``), never the system's.

One user (``bounces``, from a passwd-file), its Maildir in a temporary folder, a
self-signed certificate made in the test, IMAPS only (no plaintext listener). Missing
dovecot skips the tests locally and fails them in CI (``require_service``); install it with
``apt-get install dovecot-imapd``.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port, require_service
from tests.tls import Certificate, make_certificate

USER = "bounces"
PASSWORD = "a password for the bounce mailbox"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = newsletter-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
log_path = {base}/dovecot.log
first_valid_uid = 1
default_internal_user = {internal}
default_login_user = {login}
auth_mechanisms = plain
disable_plaintext_auth = yes
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
mail_location = maildir:{base}/mail/%u/Maildir
"""


def dovecot_binary() -> str:
    """The dovecot program, or skip (fail in CI) when it is not installed."""
    found = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if found is None:
        require_service("dovecot", "install it with `apt-get install dovecot-imapd`")
    assert found is not None
    return found


class ImapServer:
    """dovecot on 127.0.0.1:``port`` over TLS; ``ca_file`` is its certificate."""

    def __init__(self) -> None:
        self.binary = dovecot_binary()
        # Short: dovecot's unix sockets live under it (a socket path has ~100 characters).
        self.base = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
        self.port = free_port()
        self.certificate: Certificate = make_certificate(self.base / "tls")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> str:
        return str(self.certificate.cert_path)

    def url(self, folder: str = "INBOX", password: str = PASSWORD) -> str:
        return f"imaps://{USER}:{password.replace(' ', '%20')}@localhost:{self.port}/{folder}"

    def start(self) -> ImapServer:
        uid, gid, internal, login = self._users()
        mail = self.base / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            self.base.chmod(0o711)  # the mail user must reach its folder
            os.chown(mail, uid, gid)
        (self.base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        config = self.base / "dovecot.conf"
        config.write_text(CONFIG.format(
            base=self.base, port=self.port, cert=self.certificate.cert_path,
            key=self.certificate.key_path, uid=uid, gid=gid, internal=internal, login=login,
        ))  # fmt: skip
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_until_listening()
        return self

    def _users(self) -> tuple[int, int, str, str]:
        """(mail uid, gid, internal user, login user): as root, dovecot's own users and
        ``nobody`` for the mail (dovecot refuses uid 0); otherwise the current user for all."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid, "dovecot", "dovenull"

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"dovecot exited: {output}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)  # dovecot is starting: the port is not open yet
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- a client, as the test sees the mailbox -----------------------------------------

    def client(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=self.ca_file)
        imap = imaplib.IMAP4_SSL("localhost", self.port, ssl_context=context, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Put ``messages`` in ``folder``, as the MTA would have."""
        imap = self.client()
        try:
            for raw in messages:
                status, _ = imap.append(folder, None, None, raw)
                assert status == "OK"
        finally:
            imap.logout()

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The messages in ``folder`` that are not flagged deleted."""
        imap = self.client()
        try:
            imap.select(folder)
            _, found = imap.uid("SEARCH", "UNDELETED")
            raws = []
            for uid in (found[0] or b"").split():
                _, data = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raws += [bytes(item[1]) for item in data if isinstance(item, tuple)]
            return raws
        finally:
            imap.logout()

    def empty(self, *folders: str) -> None:
        """Remove every message of ``folders`` (INBOX when none is named)."""
        imap = self.client()
        try:
            for folder in folders or ("INBOX",):
                if imap.select(folder)[0] != "OK":
                    continue
                _, found = imap.uid("SEARCH", "ALL")
                for uid in (found[0] or b"").split():
                    imap.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)")
                imap.expunge()
                imap.close()
        finally:
            imap.logout()

    def create_folder(self, folder: str) -> None:
        imap = self.client()
        try:
            imap.create(folder)
        finally:
            imap.logout()
