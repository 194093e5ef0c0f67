"""A real HTTP server on loopback serving RSS and Atom feeds, for the feed tests.

It honours ``If-None-Match`` and ``If-Modified-Since`` as a real server does (304), counts
every request with its headers, and has paths that misbehave: one that stalls, one that
streams past any cap, one that declares a huge length, one that fails with a 500.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Document:
    body: bytes
    content_type: str = "application/rss+xml"
    etag: str | None = None
    last_modified: str | None = None


class FeedServer:
    """``documents`` by path; ``requests`` holds (path, headers) of each request served."""

    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()  # ends the stalling handler at shutdown
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append((self.path, dict(self.headers.items())))
                if self.path == "/stall":
                    server.release.wait(10)
                    return
                if self.path == "/error":
                    self._send(500, b"broken", "text/plain")
                    return
                if self.path == "/huge-declared":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(10**9))
                    self.end_headers()
                    return
                if self.path == "/endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(200):  # bounded: 200 × 4 KiB
                            self.wfile.write(b"<rss>" + b" " * 4091)
                            self.wfile.flush()
                    except OSError:
                        pass  # the client stopped reading, as it should
                    return
                document = server.documents.get(self.path)
                if document is None:
                    self._send(404, b"not found", "text/plain")
                    return
                if document.etag and self.headers.get("If-None-Match") == document.etag:
                    self._not_modified(document)
                    return
                since = self.headers.get("If-Modified-Since")
                if not document.etag and document.last_modified and since == document.last_modified:
                    self._not_modified(document)
                    return
                self._send(200, document.body, document.content_type, document)

            def _not_modified(self, document: Document) -> None:
                self.send_response(304)
                if document.etag:
                    self.send_header("ETag", document.etag)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(
                self, status: int, body: bytes, content_type: str, document: Document | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if document and document.etag:
                    self.send_header("ETag", document.etag)
                if document and document.last_modified:
                    self.send_header("Last-Modified", document.last_modified)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def count(self, path: str) -> int:
        return sum(1 for seen, _ in self.requests if seen == path)

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def rss(items: list[dict[str, str]], *, title: str = "Tenants' Union news") -> bytes:
    """An RSS 2.0 document with these items (``guid``, ``title``, ``link``, ``html``)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>',
        f"<title>{title}</title><link>https://tenants.example.org/</link>",
        "<description>News</description>",
    ]
    for item in items:
        published = item.get("date", "Tue, 15 Jun 2021 10:00:00 GMT")
        parts.append(
            f"<item><guid>{item['guid']}</guid><title>{item['title']}</title>"
            f"<link>{item['link']}</link><pubDate>{published}"
            f"</pubDate><content:encoded><![CDATA[{item['html']}]]></content:encoded></item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def atom(entries: list[dict[str, str]]) -> bytes:
    """An Atom 1.0 document with these entries (``id``, ``title``, ``link``, ``html``)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom news</title>',
        "<id>urn:uuid:feed</id><updated>2021-06-15T10:00:00Z</updated>",
    ]
    for entry in entries:
        parts.append(
            f"<entry><id>{entry['id']}</id><title>{entry['title']}</title>"
            f'<link href="{entry["link"]}"/><updated>2021-06-15T10:00:00Z</updated>'
            f'<author><name>Atom Author</name></author>'
            f'<content type="html"><![CDATA[{entry["html"]}]]></content></entry>'
        )
    parts.append("</feed>")
    return "\n".join(parts).encode()
