"""``newsletter dkim keygen DOMAIN`` and ``newsletter dkim records``: DKIM keys and their DNS."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter.errors import ConfigError
from newsletter.mail.dkim import (
    DkimKey,
    all_keys,
    domain_keys,
    generate_key,
    normalise_domain,
)

dkim_group = AppGroup("dkim", help="DKIM keys for signing outgoing mail.")


def register(app: Flask) -> None:
    """Add the ``dkim`` commands to ``app.cli``."""
    app.cli.add_command(dkim_group)


def _key_dir() -> Path:
    return Path(current_app.config["DKIM_KEY_DIR"])


@dkim_group.command("keygen")
@click.argument("domain")
@click.option("--selector", "-s", default=None,
              help="DNS selector [default: ALGORITHM-YYYYMM, e.g. rsa-202611].")
@click.option("--algorithm", "-a", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True, help="Key type; run twice to sign with both.")
@click.option("--bits", "-b", type=int, default=2048, show_default=True,
              help="RSA key size.")
@click.option("--force", is_flag=True, help="Replace an existing key with this selector.")
def keygen_command(
    domain: str, selector: str | None, algorithm: str, bits: int, force: bool
) -> None:
    """Write a new private key for DOMAIN and print the DNS TXT record to publish."""
    selector = selector or f"{algorithm}-{time.strftime('%Y%m')}"
    try:
        key = generate_key(
            _key_dir(), domain, selector=selector, algorithm=algorithm, bits=bits, force=force
        )
    except (ValueError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    size = f", {key.bits} bits" if key.algorithm == "rsa" else ""
    click.echo(f"Wrote {key.path} ({key.algorithm}{size}, mode 600).")
    click.echo("Publish this DNS TXT record; mail from this domain is signed from now on:")
    _print_record(key)
    others = [other for other in domain_keys(_key_dir(), key.domain) if other.path != key.path]
    if others:
        listed = ", ".join(f"{other.selector} ({other.algorithm})" for other in others)
        click.echo(
            f"Note: {key.domain} has other keys that sign too: {listed}. Remove a key's file "
            "to stop signing with it (keep its DNS record a few days for mail in transit)."
        )


@dkim_group.command("records")
@click.argument("domain", required=False)
def records_command(domain: str | None) -> None:
    """Print the DNS TXT records for the keys in the key folder (of DOMAIN, or all)."""
    try:
        keys = (
            domain_keys(_key_dir(), normalise_domain(domain)) if domain else all_keys(_key_dir())
        )
    except (ValueError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    if not keys:
        raise click.ClickException(
            f"no DKIM keys in {_key_dir()}; make one with `newsletter dkim keygen DOMAIN`"
        )
    for key in keys:
        click.echo(f"# {key.path} ({key.algorithm})")
        _print_record(key)


def _print_record(key: DkimKey) -> None:
    # Zone files and most DNS servers take the quoted 255-character strings; web DNS panels
    # usually want the value in one piece (the strings joined without quotes).
    quoted = " ".join(f'"{part}"' for part in key.dns_strings())
    click.echo(f"  name:  {key.dns_name}")
    click.echo(f"  value: {quoted}")
