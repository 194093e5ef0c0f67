"""Settings: defaults, then ``NEWSLETTER_*`` environment variables, then test overrides.

Unset, the app runs on the embedded default: SQLite and a Maildir outbox in the instance
folder, and the Dramatiq stub broker with worker threads inside ``newsletter run``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy.engine import make_url

from newsletter.delivery.bounces.poller import parse_imap_url
from newsletter.delivery.relays.domains import parse_domain_connections
from newsletter.delivery.relays.limits import redis_url
from newsletter.delivery.relays.routing import parse_relay_options
from newsletter.errors import ConfigError
from newsletter.mail.dkim_settings import complete_settings

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None: SQLite file in the instance folder
    "BROKER_URL": None,  # None: Dramatiq's stub broker, worker threads in-process
    "SMTP_URL": None,  # None: Maildir outbox in the instance folder; several: comma-separated
    "BASE_URL": None,  # None: where `newsletter run` serves, else DEFAULT_BASE_URL
    "SECRET_KEY": None,  # None: generated once and kept in the instance folder
    "FROM_ADDRESS": "Newsletter <newsletter@localhost>",
    "SITE_NAME": None,  # None: the From address's display name
    "CHECK_DELIVERABILITY": False,  # DNS look-ups when validating addresses
    "CONFIRM_MAX_AGE": 7 * 24 * 3600,
    "UNSUBSCRIBE_MAX_AGE": 400 * 24 * 3600,  # links in old mail must keep working
    "MANAGE_MAX_AGE": 30 * 24 * 3600,  # the preferences page shows and changes more
    "SETUP_MAX_AGE": 24 * 3600,
    "CONFIRMATION_COOLDOWN": 10 * 60,  # at most one confirmation mail per address this often
    "INVITE_MAX_AGE": 7 * 24 * 3600,  # an invitation link to the admin pages
    "RESET_MAX_AGE": 3600,  # a password-reset link
    "SESSION_IDLE_MINUTES": 30,  # an admin session unused this long ends
    "SESSION_MAX_HOURS": 12,  # an admin session ends this long after the login, used or not
    "MAX_CONTENT_LENGTH": 24 * 1024 * 1024,  # request bodies; the CSV import takes up to 20 MiB
    "API_MAX_CONTENT_LENGTH": 1024 * 1024,  # API bodies (a statement); most calls take less
    "BATCH_SIZE": 500,
    "WORKER_THREADS": 2,
    "LEASE_SECONDS": 300,
    "MAX_ATTEMPTS": 5,
    "RETRY_BACKOFF_SECONDS": 60,  # first wait after a 4xx; doubles with each attempt
    "SWEEP_SECONDS": 10,  # how often workers look for unfinished sends in the database
    # a tracked click this soon after its message was sent is a link scanner's, not a reader's
    "TRACKING_SCANNER_SECONDS": 10,
    "HEARTBEAT_SECONDS": 5,  # how often each worker process tells the database it is alive
    "HEARTBEAT_TIMEOUT_SECONDS": 20,  # silent this long: its claims go to the other workers
    "STALL_SECONDS": 60,  # a send with due rows and no progress this long is queued again
    "RELAY_COOLDOWN_SECONDS": 60,  # a relay failing 3 times in a row rests this long
    "SMTP_TIMEOUT": 30,
    "SMTP_HELO_NAME": None,  # None: the host of BASE_URL
    "REDIS_URL": None,  # shared rate limits and domain slots; None: the broker's, if Redis
    "DOMAIN_CONNECTIONS": None,  # e.g. "gmail.com=5,*=20": transactions at once per domain
    "REDIS_PREFIX": "newsletter",  # of those keys; one per installation sharing a Redis
    "RATELIMIT_SUBSCRIBE": "20 per hour",  # sign-ups per client (its address, hashed)
    "RATELIMIT_SUBSCRIBE_GLOBAL": "600 per hour",  # sign-ups from everyone together
    "CONFIRMATIONS_PER_DAY": 3,  # confirmation mails per address and UTC day (and cool-down)
    "SIGNUP_CHALLENGE": "off",  # off, or altcha: a proof-of-work the sign-up forms solve
    "SIGNUP_CHALLENGE_COST": 20_000,  # the largest number: ~10,000 hashes, ~1.4 s on average
    "BABEL_DEFAULT_LOCALE": "en",  # public pages and subscribers' mail: en or es
    "RATELIMIT_LOGIN": "10 per minute",
    "RATELIMIT_RESET": "5 per hour",  # "forgot password" requests per client address
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted
    # (0: none). Behind one proxy (nginx), set 1, or every visitor looks like the proxy.
    "TRUSTED_PROXIES": 0,
    "DKIM": "on",  # on: sign with the From domain's keys when it has any; off: never
    "DKIM_KEY_DIR": None,  # None: "dkim" in the instance folder, a folder per domain
    # The audit log keeps the client's IP address only when this is turned on.
    "STORE_IP": False,
    "AUDIT_RETENTION_DAYS": 365,  # older audit events are deleted; 0 keeps them all
    # /metrics: a scraper shows this bearer token; unset, it must come from METRICS_ALLOW.
    "METRICS_TOKEN": None,
    "METRICS_ALLOW": "127.0.0.1,::1",  # addresses or CIDR blocks, comma-separated
    "WORKER_METRICS_PORT": None,  # `newsletter worker` serves its processes' metrics here
    "WORKER_METRICS_HOST": "127.0.0.1",
    "LOG_FORMAT": "text",  # text, or json: one JSON object a line, with a request or job id
    # Logs never show an address or a token unless this is turned on, to debug.
    "LOG_SENSITIVE": False,
    "DNS_RESOLVER": None,  # newsletter doctor asks these host[:port] servers; None: the system's
    # Bounce intake by provider webhooks (POST /api/v1/bounces/<provider>): each provider
    # is off until its secret is set (delivery/bounces/providers/).
    "BOUNCE_SES_TOPICS": None,  # SNS topic ARNs whose SES notifications are taken
    "BOUNCE_SNS_CERT_HOSTS": None,  # None: sns.<region>.amazonaws.com only (regexes)
    "BOUNCE_SNS_CA_FILE": None,  # None: the system's CAs, for the certificate fetch
    "BOUNCE_SNS_AUTO_CONFIRM": True,  # off: a subscription's confirm URL is only logged
    "BOUNCE_POSTMARK_USER": "postmark",  # basic auth in the webhook URL Postmark calls
    "BOUNCE_POSTMARK_PASSWORD": None,
    "BOUNCE_SENDGRID_PUBLIC_KEY": None,  # the Event Webhook's verification key (base64)
    "BOUNCE_MAILGUN_SIGNING_KEY": None,  # the HTTP webhook signing key
    "BOUNCE_WEBHOOK_MAX_AGE": 3600,  # seconds: a signed request older than this is refused
    "BOUNCE_WEBHOOK_TIMEOUT": 5,  # seconds for fetching SNS's certificate
    # The bounce mailbox poller (delivery/bounces/poller.py), on the workers' sweep: an
    # IMAP mailbox over TLS (imaps://user:pass@host:993/INBOX) or a Maildir folder.
    "BOUNCE_IMAP_URL": None,
    "BOUNCE_IMAP_CA_FILE": None,  # None: the system's CAs
    "BOUNCE_IMAP_DONE_FOLDER": None,  # None: taken messages are deleted; else moved there
    "BOUNCE_MAILDIR": None,
    "BOUNCE_POLL_SECONDS": 300,  # between two polls of the mailbox
    "BOUNCE_POLL_MAX_MESSAGES": 500,  # taken per poll (the rest wait for the next one)
    # The media library (content/media.py): images in the instance folder, or in an
    # S3-compatible bucket when MEDIA_S3_BUCKET is set.
    "MEDIA_PATH": None,  # None: "media" in the instance folder
    "MEDIA_MAX_BYTES": 5 * 1024 * 1024,  # an upload larger than this is refused
    "MEDIA_MAX_PIXELS": 4096,  # the longest side an image may have
    "MEDIA_S3_BUCKET": None,
    "MEDIA_S3_ENDPOINT": None,  # None: AWS; e.g. http://127.0.0.1:9000 for MinIO
    "MEDIA_S3_ACCESS_KEY": None,
    "MEDIA_S3_SECRET_KEY": None,
    "MEDIA_S3_REGION": "us-east-1",
    "MEDIA_S3_PUBLIC_URL": None,  # None: the endpoint's path-style URL of the bucket
    # The canned ACL each object gets so readers' mail apps can load it; "" sends none (a
    # bucket whose policy already makes it public, or one that refuses ACLs).
    "MEDIA_S3_ACL": "public-read",
    # What a subscription keeps of the person's IP address and browser (user agent):
    # off (nothing), truncated (the /24 or /48 network, and the user agent), full.
    "CONSENT_IP": "off",
    # Remote images in archived issues: "link" replaces each by a link to it; "proxy" serves
    # it through /archive/image (signed URLs, size cap, timeout, no private addresses
    # unless ARCHIVE_IMAGE_ALLOW_PRIVATE). Public pages never make a request elsewhere.
    "ARCHIVE_REMOTE_IMAGES": "link",
    "ARCHIVE_IMAGE_MAX_BYTES": 5 * 1024 * 1024,
    "ARCHIVE_IMAGE_TIMEOUT": 5,
    "ARCHIVE_IMAGE_ALLOW_PRIVATE": False,
    # The Jekyll site statements come from, e.g. "https://example.org/blog": its origin is
    # `site.url`, its path `site.baseurl`; relative links and images resolve against it.
    "SITE_URL": None,
    # Zip files of posts (CLI, admin, API): caps checked on the headers and while reading.
    "IMPORT_ZIP_MAX_BYTES": 20 * 1024 * 1024,  # all the files read, unpacked
    "IMPORT_ZIP_MAX_FILE_BYTES": 1024 * 1024,  # one file, unpacked
    "IMPORT_ZIP_MAX_FILES": 2000,  # entries in the zip, folders included
    # Feeds (RSS/Atom) that become statements.
    "FEEDS_ALLOW_PRIVATE": False,  # on: feeds may be on loopback and private addresses
    "FEEDS_TIMEOUT": 10,  # seconds for each connect/read, and twice that for a whole fetch
    "FEEDS_MAX_BYTES": 5 * 1024 * 1024,  # a feed longer than this is refused
    "FEEDS_INTERVAL": 3600,  # seconds between polls of a new feed
    "FEEDS_RETRY_SECONDS": 300,  # first wait after a failed poll; doubles with each failure
    "FEEDS_MAX_BACKOFF": 24 * 3600,
    # Bounces (delivery/bounces): the return path, when set, is LOCAL+TOKEN@DOMAIN of it.
    "BOUNCE_ADDRESS": None,  # None: the envelope sender is the From address
    "BOUNCE_SCORE_THRESHOLD": 5,  # soft bounces (one a day at most) that stop an address
    "BOUNCE_STALE_DAYS": 7,  # a soft bounce older than this no longer counts
    "BOUNCE_MAX_BYTES": 2 * 1024 * 1024,  # a message to the bounce address larger is refused
    # Outgoing webhooks (delivery/webhooks/): signed POSTs to the URLs an admin registers.
    "WEBHOOKS_ALLOW_PRIVATE": False,  # on: endpoints may be on loopback and private addresses
    "WEBHOOKS_TIMEOUT": 15,  # seconds for the connect and each read; twice that in all
    "WEBHOOKS_MAX_RESPONSE_BYTES": 64 * 1024,  # read no more of an endpoint's answer
    # Seconds before each retry (the Standard Webhooks example: about three days in all);
    # a message is given up after one attempt more than there are entries.
    "WEBHOOKS_RETRY_SCHEDULE": "5,300,1800,7200,18000,36000,50400,72000,86400",
    "WEBHOOKS_LOG_DAYS": 30,  # delivered and failed messages are kept this long
}

CONSENT_IP_MODES = ("off", "truncated", "full")

#: the base URL, unset, of a process other than `newsletter run` (workers, gunicorn, commands)
DEFAULT_BASE_URL = "http://127.0.0.1:5000"

SETTINGS = (
    "DATABASE_URL",
    "BROKER_URL",
    "SMTP_URL",
    "BASE_URL",
    "SECRET_KEY",
    "FROM_ADDRESS",
    "INSTANCE_PATH",
)


def instance_path_from_env() -> str | None:
    """The instance folder named by ``NEWSLETTER_INSTANCE_PATH``, made absolute."""
    value = os.environ.get("NEWSLETTER_INSTANCE_PATH")
    return str(Path(value).resolve()) if value else None


def configure(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Load defaults, then the environment, then ``test_config``; check and complete them.

    :raises ConfigError: a setting that cannot work, naming it and why.
    """
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("NEWSLETTER", loads=_loads)
    if test_config:
        app.config.update(test_config)
    _make_private_folder(Path(app.instance_path))
    _complete_database(app)
    _complete_secret_key(app)
    _check_broker(app)
    _check_smtp(app)
    _check_base_url(app)
    _check_site_url(app)
    _check_from_address(app)
    _complete_site_name(app)
    _check_lease(app)
    _check_dkim(app)
    _check_sessions(app)
    _check_operations(app)
    _check_consent_ip(app)
    _check_archive_images(app)
    _check_signup(app)
    _check_bounce_mailbox(app)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(app.config["DATABASE_URL"]))
    app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_storage(app))
    # Keys of their own per installation sharing a Redis (and per test)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", str(app.config["REDIS_PREFIX"]))
    app.config.setdefault("OUTBOX_PATH", str(Path(app.instance_path) / "outbox"))
    if not app.config.get("SMTP_URL"):
        _make_private_outbox(Path(app.config["OUTBOX_PATH"]))


def follow_served_address(app: Flask, host: str, port: int) -> None:
    """Unless ``NEWSLETTER_BASE_URL`` is set, make the base URL the address this process
    serves, so the first-admin link and every link in mail point where the app answers."""
    if app.config["BASE_URL_FOLLOWS_SERVER"]:
        _set_base_url(app, served_url(host, port))


def served_url(host: str, port: int) -> str:
    """The http URL of ``host:port`` as a browser on this machine opens it: an address that
    means every interface (0.0.0.0, ::) is reached on loopback."""
    return http_url(_EVERY_INTERFACE.get(host, host), port)


def http_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listens_everywhere(host: str) -> bool:
    """True for the addresses that mean every interface."""
    return host in _EVERY_INTERFACE


#: the addresses that mean every interface, and the loopback address that reaches each
_EVERY_INTERFACE = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def _loads(value: str) -> Any:
    """Environment values are plain strings, except numbers and booleans."""
    lowered = value.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    return value


def _complete_database(app: Flask) -> None:
    url = app.config.get("DATABASE_URL")
    if not url:
        url = "sqlite:///" + str(Path(app.instance_path) / "newsletter.db")
    scheme = urlsplit(url).scheme
    if scheme.startswith("postgres") and "+" not in scheme:
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = url.replace(scheme, "postgresql+psycopg", 1)
        scheme = "postgresql+psycopg"
    if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
        raise ConfigError(
            "NEWSLETTER_DATABASE_URL",
            f"unsupported scheme {scheme!r}; use sqlite:///PATH or postgresql+psycopg://…",
        )
    app.config["DATABASE_URL"] = url
    if scheme.startswith("sqlite"):
        _make_private_database(app, url)


def _make_private_database(app: Flask, url: str) -> None:
    """Create the SQLite file readable by its owner alone: SQLite gives its -wal and -shm
    files the mode of the database file, and would create that one 0644."""
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(app.instance_path, name)  # Flask-SQLAlchemy: relative to the instance folder
    if path.parent.is_dir() and not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for companion in ("", "-wal", "-shm", "-journal"):
        _take_away_others(path.with_name(path.name + companion))


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Web threads and worker threads share the file; wait for the lock rather than fail.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _complete_secret_key(app: Flask) -> None:
    if app.config.get("SECRET_KEY"):
        return
    key_file = Path(app.instance_path) / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(48))
    _take_away_others(key_file)
    app.config["SECRET_KEY"] = key_file.read_text().strip()


def _make_private_folder(path: Path) -> None:
    """The instance folder holds the database, the outbox and the keys: only its owner may
    look inside (an older version left it 0755, so an existing one is closed too)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _take_away_others(path)


def _make_private_outbox(path: Path) -> None:
    """The Maildir outbox holds the mail and its links (confirm, unsubscribe): owner only."""
    for folder in (path, path / "tmp", path / "new", path / "cur"):
        if folder.parent.is_dir():
            folder.mkdir(mode=0o700, exist_ok=True)
            _take_away_others(folder)


def _take_away_others(path: Path) -> None:
    """Remove group and world permissions from ``path``, if it exists and is ours."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077 and status.st_uid == os.geteuid():
        path.chmod(mode & 0o700)


def _check_broker(app: Flask) -> None:
    url = app.config.get("BROKER_URL")
    if url and urlsplit(url).scheme not in {"redis", "rediss", "amqp", "amqps", "stub"}:
        raise ConfigError(
            "NEWSLETTER_BROKER_URL", f"unsupported scheme in {url!r}; use redis:// or amqp://"
        )
    redis = app.config.get("REDIS_URL")
    if redis and urlsplit(redis).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("NEWSLETTER_REDIS_URL", f"unsupported scheme in {redis!r}; use redis://")


def _check_smtp(app: Flask) -> None:

    try:
        parse_relay_options(app.config.get("SMTP_URL"))  # the URLs and each relay's options
    except ValueError as error:
        raise ConfigError("NEWSLETTER_SMTP_URL", str(error)) from None
    try:
        parse_domain_connections(app.config.get("DOMAIN_CONNECTIONS"))
    except ValueError as error:
        raise ConfigError("NEWSLETTER_DOMAIN_CONNECTIONS", str(error)) from None


def _check_base_url(app: Flask) -> None:
    given = app.config.get("BASE_URL")
    app.config["BASE_URL_FOLLOWS_SERVER"] = not given
    _set_base_url(app, str(given or DEFAULT_BASE_URL))


def _set_base_url(app: Flask, url: str) -> None:
    base = url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError("NEWSLETTER_BASE_URL", f"{base!r} is not an http(s) URL")
    app.config["BASE_URL"] = base
    # Flask's own defaults (http, insecure cookies) give way to what BASE_URL says.
    https = parts.scheme == "https"
    app.config["PREFERRED_URL_SCHEME"] = parts.scheme
    # Served over https, the session and remember-me cookies never travel in clear.
    app.config["SESSION_COOKIE_SECURE"] = app.config["SESSION_COOKIE_SECURE"] or https
    app.config["REMEMBER_COOKIE_SECURE"] = app.config.get("REMEMBER_COOKIE_SECURE") or https
    app.config["SESSION_COOKIE_SAMESITE"] = app.config["SESSION_COOKIE_SAMESITE"] or "Lax"


def _check_from_address(app: Flask) -> None:
    _, address = parseaddr(str(app.config["FROM_ADDRESS"]))
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ConfigError(
            "NEWSLETTER_FROM_ADDRESS",
            f"{app.config['FROM_ADDRESS']!r} has no address like name@domain",
        )


def _check_lease(app: Flask) -> None:
    """A lease is renewed between messages; one slow message must not outlive it, or another
    worker could claim the rows and mail them again."""
    lease, timeout = float(app.config["LEASE_SECONDS"]), float(app.config["SMTP_TIMEOUT"])
    if lease < 2 * timeout:
        raise ConfigError(
            "NEWSLETTER_LEASE_SECONDS",
            f"{lease:g} is too short for NEWSLETTER_SMTP_TIMEOUT={timeout:g}; "
            f"use at least {2 * timeout:g}",
        )


def _check_dkim(app: Flask) -> None:

    complete_settings(app.config, app.instance_path)


def _check_operations(app: Flask) -> None:
    """The metrics' allowed addresses parse, the log format is known, the port is a port."""
    for part in str(app.config.get("METRICS_ALLOW") or "").split(","):
        try:
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                "NEWSLETTER_METRICS_ALLOW", f"{part.strip()!r} is not an address or CIDR block"
            ) from None
    if app.config.get("LOG_FORMAT") not in ("text", "json"):
        value = app.config.get("LOG_FORMAT")
        raise ConfigError("NEWSLETTER_LOG_FORMAT", f"{value!r}: use text or json")
    port = app.config.get("WORKER_METRICS_PORT")
    if port not in (None, ""):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError("NEWSLETTER_WORKER_METRICS_PORT", f"{port!r} is not a port number")


def _check_sessions(app: Flask) -> None:
    """The session timeouts and link lifetimes are positive numbers (read as floats)."""
    for name in ("SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS", "INVITE_MAX_AGE", "RESET_MAX_AGE"):
        value = app.config[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = 0.0
        if not number > 0 or isinstance(value, bool):
            raise ConfigError(f"NEWSLETTER_{name}", f"{value!r} is not a positive number")
        app.config[name] = number


def _check_consent_ip(app: Flask) -> None:
    value = app.config.get("CONSENT_IP")
    mode = "off" if value is False or value is None else str(value).strip().lower()
    if mode not in CONSENT_IP_MODES:
        raise ConfigError(
            "NEWSLETTER_CONSENT_IP", f"{value!r} is not one of {', '.join(CONSENT_IP_MODES)}"
        )
    app.config["CONSENT_IP"] = mode

def _check_signup(app: Flask) -> None:
    """The sign-up challenge is ``off`` or ``altcha``; the daily cap is a whole number."""
    challenge = str(app.config["SIGNUP_CHALLENGE"]).strip().lower()
    if challenge not in {"off", "altcha"}:
        raise ConfigError("NEWSLETTER_SIGNUP_CHALLENGE", f"{challenge!r}: use off or altcha")
    app.config["SIGNUP_CHALLENGE"] = challenge
    for name in ("CONFIRMATIONS_PER_DAY", "SIGNUP_CHALLENGE_COST"):
        value = app.config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"NEWSLETTER_{name}", f"{value!r} is not a positive whole number")


def _check_site_url(app: Flask) -> None:
    """NEWSLETTER_SITE_URL is an absolute http(s) address (a path is the site's baseurl)."""
    value = app.config.get("SITE_URL")
    if not value:
        app.config["SITE_URL"] = None
        return
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "SITE_URL", f"{value!r} is not an http(s) address like https://example.org/blog"
        )
    app.config["SITE_URL"] = str(value).rstrip("/")


def _complete_site_name(app: Flask) -> None:
    """What pages and mail call the newsletter: SITE_NAME, else the From display name."""
    if not app.config.get("SITE_NAME"):
        display, _ = parseaddr(str(app.config["FROM_ADDRESS"]))
        app.config["SITE_NAME"] = display or "Newsletter"


def _check_bounce_mailbox(app: Flask) -> None:
    """A bounce mailbox URL that cannot work stops start-up (``delivery/bounces/poller``)."""
    if app.config.get("BOUNCE_IMAP_URL"):
        parse_imap_url(str(app.config["BOUNCE_IMAP_URL"]))


def _limiter_storage(app: Flask) -> str:
    """Flask-Limiter's counters (per client address) live where the login throttle's do."""
    url = redis_url(app.config)
    if url is None:
        return "memory://"
    return "redis+" + url if url.startswith("unix://") else url


def _check_archive_images(app: Flask) -> None:
    mode = str(app.config["ARCHIVE_REMOTE_IMAGES"]).strip().lower()
    if mode not in ("link", "proxy"):
        raise ConfigError("NEWSLETTER_ARCHIVE_REMOTE_IMAGES", f"{mode!r}: use link or proxy")
    app.config["ARCHIVE_REMOTE_IMAGES"] = mode
