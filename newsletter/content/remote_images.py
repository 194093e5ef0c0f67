"""Remote images in archived issues: replaced by links, or served through this site.

A public page must make no request to another site (the reader's address would go with
it). ``ARCHIVE_REMOTE_IMAGES`` decides what becomes of an ``<img>`` whose source is on
another site:

- ``link`` (the default): the image is replaced by a link to it, with its alt text;
- ``proxy``: its source becomes ``/archive/image?u=URL&s=SIGNATURE`` on this site, and
  ``fetch_image`` gets it: signed URLs only (so the proxy is not open to anyone's URLs),
  http(s) on the default ports, no private, loopback or link-local address (checked on the
  address actually connected to, so a DNS answer cannot swap it afterwards) unless
  ``ARCHIVE_IMAGE_ALLOW_PRIVATE``, no redirects, a timeout, a size cap and an image
  content type (not SVG, which can carry script).
"""

from __future__ import annotations

import hashlib
import hmac
import html as html_lib
import http.client
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urlsplit

from newsletter.errors import NewsletterError

#: the image types the proxy passes on (no SVG: it may hold script)
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"}
)
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
MAX_URL = 2048


class RemoteImageError(NewsletterError):
    """A remote image that the proxy will not or cannot pass on (``reason`` says why)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"image {url!r}: {reason}")
        self.url = url
        self.reason = reason


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs = {name: value or "" for name, value in attrs}

    handle_startendtag = handle_starttag


def _attributes(tag: str) -> dict[str, str]:
    parser = _Attributes()
    parser.feed(tag)
    parser.close()
    return parser.attrs


def is_remote(src: str, base_url: str) -> bool:
    """True when ``src`` is an absolute http(s) URL (or ``//host``) on another site."""
    parts = urlsplit(src.strip())
    if parts.scheme not in ("http", "https", "") or not parts.netloc:
        return False
    own = urlsplit(base_url)
    return (parts.netloc.lower(), parts.scheme or own.scheme) != (
        own.netloc.lower(), own.scheme
    )


def signature(url: str, secret_key: str) -> str:
    """The proxy's signature of ``url`` (HMAC-SHA256 with the site's secret key)."""
    digest = hmac.new(secret_key.encode("utf-8"), b"archive-image\x00" + url.encode("utf-8"),
                      hashlib.sha256)
    return digest.hexdigest()[:32]


def check_signature(url: str, given: str, secret_key: str) -> bool:
    """True when ``given`` is the signature of ``url``."""
    return hmac.compare_digest(signature(url, secret_key), given or "")


def proxied_url(url: str, *, proxy_path: str, secret_key: str) -> str:
    """The path on this site that serves the remote image ``url``."""
    return f"{proxy_path}?{urlencode({'u': url, 's': signature(url, secret_key)})}"


def rewrite_images(html: str, *, mode: str, base_url: str, proxy_path: str,
                   secret_key: str) -> str:
    """``html`` (already cleaned) with every remote image linked (``link``) or proxied
    (``proxy``); images on this site, and ``data:`` images, stay as they are."""

    def replace(match: re.Match[str]) -> str:
        attrs = _attributes(match.group(0))
        src = attrs.get("src", "")
        if not is_remote(src, base_url):
            return match.group(0)
        url = ("https:" + src) if src.startswith("//") else src
        alt = attrs.get("alt", "").strip()
        if mode == "proxy" and len(url) <= MAX_URL:
            new_src = proxied_url(url, proxy_path=proxy_path, secret_key=secret_key)
            keep = "".join(
                f' {name}="{html_lib.escape(attrs[name], quote=True)}"'
                for name in ("alt", "title", "width", "height") if name in attrs
            )
            return f'<img src="{html_lib.escape(new_src, quote=True)}"{keep} loading="lazy">'
        host = urlsplit(url).hostname or "another site"
        label = f"Image: {alt}" if alt else "An image"
        return (
            f'<a class="remote-image" href="{html_lib.escape(url, quote=True)}" '
            f'rel="noopener noreferrer nofollow">{html_lib.escape(label)} '
            f'<span class="muted">(on {html_lib.escape(host)})</span></a>'
        )

    return _IMG.sub(replace, html)


# --- the proxy's fetch -----------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedImage:
    content_type: str
    body: bytes


def _allowed_address(address: str, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not (ip.is_multicast or ip.is_unspecified)
    return bool(ip.is_global)


def _resolve(host: str, port: int, allow_private: bool, url: str) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise RemoteImageError(url, f"the host does not resolve: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    # Every address must be allowed: a name that resolves to a public and a private one
    # could otherwise reach the private one on a later connection.
    if not addresses or not all(_allowed_address(a, allow_private) for a in addresses):
        raise RemoteImageError(url, "it is on a private or local address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an address chosen (and checked) beforehand."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address, verifying the certificate of the host."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(host, context=ssl.create_default_context(), **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def fetch_image(url: str, *, max_bytes: int, timeout: float,
                allow_private: bool = False) -> FetchedImage:
    """GET one remote image for the proxy.

    :raises RemoteImageError: not http(s), a private address (unless ``allow_private``), a
        redirect or an error status, not an image type we pass on, or larger than
        ``max_bytes`` (``reason`` says which).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteImageError(url, "only http and https images are fetched")
    if parts.username or parts.password:
        raise RemoteImageError(url, "URLs with credentials are not fetched")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RemoteImageError(url, "the port is not a number") from None
    address = _resolve(parts.hostname, port, allow_private, url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else \
        _PinnedHTTPConnection
    connection = connection_class(parts.hostname, address, port=port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("GET", path, headers={
            "User-Agent": "newsletter-archive-image-proxy", "Accept": "image/*",
        })
        response = connection.getresponse()
        if response.status != 200:
            raise RemoteImageError(url, f"the site answered {response.status}")
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in IMAGE_TYPES:
            raise RemoteImageError(url, f"{content_type or 'no type'} is not an image we pass on")
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise RemoteImageError(url, f"it is larger than {max_bytes} bytes")
        body = response.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise RemoteImageError(url, f"it is larger than {max_bytes} bytes")
        return FetchedImage(content_type=content_type, body=body)
    except (OSError, http.client.HTTPException) as error:
        raise RemoteImageError(url, f"it could not be fetched: {error}") from None
    finally:
        connection.close()
