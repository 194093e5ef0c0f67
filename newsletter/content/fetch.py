"""Fetching a feed over HTTP: a timeout, a size cap, and no private addresses (SSRF).

The address is checked where the connection is made, on every address the name resolves
to and on every redirect, so a name that resolves to ``127.0.0.1`` (or changes between a
check and the connection) cannot reach the machine's own services, its network or a cloud
metadata endpoint; ``NEWSLETTER_FEEDS_ALLOW_PRIVATE`` turns that off (tests, intranets).
Built on the standard library's urllib (no proxies from the environment, only http and
https); the body is read in chunks and the fetch stops past the cap or the deadline.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from newsletter.errors import NewsletterError

USER_AGENT = "newsletter-feed-reader/1.0 (+conditional GET)"
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


class FetchError(NewsletterError):
    """A feed that could not be fetched; ``reason`` says why, for the feed's page."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}", field="url")
        self.url = url
        self.reason = reason


class AddressRefused(FetchError):
    """The feed's host is a private, loopback or link-local address (SSRF)."""


@dataclass
class Fetched:
    """An answer: 200 with the body, or 304 (not modified) without one."""

    status: int
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a feed may be fetched from this address: globally routable, not loopback,
    private, link-local (169.254.x: cloud metadata), multicast, reserved or unspecified."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _guarded_connect(allow_private: bool) -> Any:
    """``socket.create_connection`` that refuses addresses that are not public."""

    def create_connection(
        address: tuple[str, int], timeout: float | None = None,
        source_address: tuple[str, int] | None = None, **_kwargs: Any,
    ) -> socket.socket:  # fmt: skip
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise FetchError(host, f"the name does not resolve ({error.strerror})") from None
        refused: list[str] = []
        last_error: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if not allow_private and not is_public(ip):
                refused.append(str(ip))
                continue
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as error:
                sock.close()
                last_error = error
        if last_error is not None:
            raise last_error
        raise AddressRefused(
            host,
            f"{host} resolves to {', '.join(sorted(set(refused)))}, a private, loopback or "
            "link-local address; feeds are fetched from public addresses only "
            "(NEWSLETTER_FEEDS_ALLOW_PRIVATE)",
        )

    return create_connection


def _connection_class(base: type[http.client.HTTPConnection], allow_private: bool) -> Any:
    class Guarded(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = _guarded_connect(allow_private)

    return Guarded


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._connection = _connection_class(http.client.HTTPConnection, allow_private)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._connection = _connection_class(http.client.HTTPSConnection, allow_private)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = getattr(self, "_context", None)  # the default verifying TLS context
        return self.do_open(self._connection, req, context=context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise FetchError(req.full_url, f"redirected to {newurl!r}, not an http(s) address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def guarded_handlers(allow_private: bool) -> list[urllib.request.BaseHandler]:
    """The http and https handlers that connect to public addresses only (every address the
    name resolves to is checked where the connection is made), for an opener of one's own:
    the outgoing webhooks use them without any redirect handler.
    """
    return [_HTTPHandler(allow_private), _HTTPSHandler(allow_private)]


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    # Built by hand: build_opener would add file:, ftp:, data: and the environment's proxies.
    opener = urllib.request.OpenerDirector()
    for handler in (
        _HTTPHandler(allow_private), _HTTPSHandler(allow_private), _Redirects(),
        urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):  # fmt: skip
        opener.add_handler(handler)
    return opener


def check_url(url: str) -> str:
    """The address, trimmed, if it is one a feed can have (absolute http or https).

    :raises FetchError: it is not.
    """
    value = url.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(value, "a feed's address starts with http:// or https://")
    if len(value) > 2000:
        raise FetchError(value[:80], "the address is longer than 2000 characters")
    return value


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = 5 * 1024 * 1024,
    allow_private: bool = False,
) -> Fetched:
    """GET ``url`` with ``If-None-Match``/``If-Modified-Since`` when given.

    ``timeout`` bounds each connect and read; the whole fetch gets twice that.

    :raises AddressRefused: the host (or a redirect's) is not a public address.
    :raises FetchError: anything else: no answer in time, a 4xx/5xx, a body past
        ``max_bytes``, a name that does not resolve; ``reason`` says which.
    """
    url = check_url(url)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
               "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, "
                         "text/xml;q=0.8, */*;q=0.1"}  # fmt: skip
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + 2 * timeout
    try:
        response = _opener(allow_private).open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 304:
            return Fetched(304, b"", url, etag, last_modified)
        raise FetchError(url, f"the server answered {error.code} {error.reason}") from None
    except FetchError:
        raise
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, FetchError):
            raise reason from None
        if isinstance(reason, TimeoutError | socket.timeout):
            raise FetchError(url, f"no answer within {timeout:g} seconds") from None
        raise FetchError(url, f"cannot connect ({reason})") from None
    except TimeoutError:
        raise FetchError(url, f"no answer within {timeout:g} seconds") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise FetchError(url, f"cannot fetch ({error.__class__.__name__}: {error})") from None
    with response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchError(url, f"the feed is larger than {max_bytes:,} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.read1(_CHUNK):  # what has come, so the deadline holds
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(url, f"the feed is larger than {max_bytes:,} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(url, f"the feed took longer than {2 * timeout:g} seconds")
                chunks.append(chunk)
        except TimeoutError:
            raise FetchError(url, f"the answer stalled for {timeout:g} seconds") from None
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(url, f"the answer broke off ({error.__class__.__name__})") from None
        return Fetched(
            status=response.status,
            body=b"".join(chunks),
            url=response.geturl(),
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            content_type=response.headers.get("Content-Type", ""),
        )
