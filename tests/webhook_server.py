"""A real HTTP server on loopback that receives webhooks, for the webhook tests.

Every POST is kept (path, headers, the raw body) in ``received``. What a path answers is
scripted: ``answers[path]`` is a list of ``(status, headers)`` taken one per request (the
last one repeats); unscripted paths answer 204. ``wait_for(n)`` waits, on a condition, until
``n`` requests have come. ``/stall`` answers nothing until the server stops (or 10 s).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: when it came (``time.monotonic()``)
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.arrived = threading.Condition()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                script = receiver.answers.get(self.path) or [(204, {})]
                status, headers = script.pop(0) if len(script) > 1 else script[0]
                with receiver.arrived:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.arrived.notify_all()
                if self.path == "/stall":
                    receiver.release.wait(10)
                    return
                answer = f"answer {status}".encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def wait_for(self, count: int, timeout: float = 30) -> None:
        """Until ``count`` requests have come (fails the test after ``timeout`` seconds)."""
        with self.arrived:
            done = self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        assert done, f"{len(self.received)} webhook requests came, not {count}"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
