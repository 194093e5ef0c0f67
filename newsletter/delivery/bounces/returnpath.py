"""The return path: ``LOCAL+TOKEN@DOMAIN`` of ``BOUNCE_ADDRESS``, one per delivery.

With ``NEWSLETTER_BOUNCE_ADDRESS=bounces@example.org`` each issue message's envelope sender
is ``bounces+TOKEN@example.org``. A bounce comes back to that address, so its TOKEN names the
delivery (hence the issue and the subscriber) whatever the bounce itself says.

TOKEN is opaque and signed, and never contains the address: a kind byte, the delivery's id
(big-endian, as few bytes as it needs) and the first 80 bits of an HMAC-SHA256 of them under a
key derived from ``SECRET_KEY``, in lower-case hex (MTAs and mailboxes may fold the case of a
local part; hex survives that, and ``bytes.hex`` is C where ``base64.b32encode`` is a Python
loop). The HMAC's keyed state is made once per key and copied per token: a token costs about
a microsecond, and an id of 4 bytes makes a token of 30 characters.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from email.utils import parseaddr

from newsletter.audience.addresses import ascii_address

#: bytes of the MAC kept: 80 bits, far beyond guessing a delivery's token by trial
MAC_BYTES = 10
#: the first byte says what the id is: a delivery of an issue, or a transactional message
KIND_DELIVERY = b"d"
KIND_TRANSACTIONAL = b"t"
#: the longest token read (anything longer is not one of ours)
MAX_TOKEN = 64


@functools.lru_cache(maxsize=8)
def _keyed(secret_key: str) -> hmac.HMAC:
    # A key of its own: a return-path token can never be replayed as any other signature.
    key = hashlib.sha256(b"newsletter.returnpath\x00" + secret_key.encode("utf-8")).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _mac(secret_key: str, body: bytes) -> bytes:
    mac = _keyed(secret_key).copy()
    mac.update(body)
    return mac.digest()[:MAC_BYTES]


def make_token(delivery_id: int, secret_key: str, *, kind: bytes = KIND_DELIVERY) -> str:
    """The signed token naming ``delivery_id`` (or, with ``kind=KIND_TRANSACTIONAL``, a
    transactional message's id)."""
    body = kind + delivery_id.to_bytes((delivery_id.bit_length() + 7) // 8 or 1, "big")
    return (body + _mac(secret_key, body)).hex()


def read_token(token: str, secret_key: str, *, kind: bytes = KIND_DELIVERY) -> int | None:
    """The id a token made by :func:`make_token` with this ``kind`` names; None when the
    token is malformed, of another kind, or its signature does not match (tampered, or
    another installation's)."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN:
        return None
    try:
        signed = bytes.fromhex(token)
    except ValueError:
        return None
    body, mac = signed[:-MAC_BYTES], signed[-MAC_BYTES:]
    if len(body) < 2 or body[:1] != kind:
        return None
    if not hmac.compare_digest(mac, _mac(secret_key, body)):
        return None
    return int.from_bytes(body[1:], "big")


class ReturnPath:
    """Makes the envelope sender of each delivery from ``BOUNCE_ADDRESS`` (built once per
    batch: the per-message work is the token alone)."""

    def __init__(self, bounce_address: str, secret_key: str) -> None:
        """:param bounce_address: ``local@domain`` (a display name is ignored)."""
        address = ascii_address(parseaddr(bounce_address)[1] or bounce_address.strip())
        local, _, domain = address.rpartition("@")
        self._prefix = f"{local}+"
        self._suffix = f"@{domain}"
        self._secret_key = secret_key

    def for_delivery(self, delivery_id: int) -> str:
        """``LOCAL+TOKEN@DOMAIN`` for this delivery."""
        return self._prefix + make_token(delivery_id, self._secret_key) + self._suffix

    def for_transactional(self, tx_id: int) -> str:
        """``LOCAL+TOKEN@DOMAIN`` for this transactional message."""
        token = make_token(tx_id, self._secret_key, kind=KIND_TRANSACTIONAL)
        return self._prefix + token + self._suffix


def from_config(config: object) -> ReturnPath | None:
    """The return path the settings ask for, or None when ``BOUNCE_ADDRESS`` is unset (the
    envelope sender is then the From address)."""
    get = config.get  # type: ignore[attr-defined]
    address = get("BOUNCE_ADDRESS")
    if not address:
        return None
    return ReturnPath(str(address), str(get("SECRET_KEY")))


def delivery_of(
    envelope_recipient: str | None,
    token: str | None,
    secret_key: str,
    *,
    kind: bytes = KIND_DELIVERY,
) -> int | None:
    """The delivery (or, with ``kind``, the transactional message) named by ``token``, or
    else by the ``+TOKEN`` of ``envelope_recipient`` (the return path the bounce came back
    to); None when neither holds a valid token."""
    candidates = [token] if token else []
    if envelope_recipient:
        local = envelope_recipient.strip().strip("<>").rpartition("@")[0]
        if "+" in local:
            candidates.append(local.split("+", 1)[1])
    for candidate in candidates:
        found = read_token(candidate, secret_key, kind=kind)
        if found is not None:
            return found
    return None
