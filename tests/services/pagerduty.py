"""A PagerDuty Events API v2 stand-in on 127.0.0.1 for the alert tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver:
    """An Events API stand-in: records every POSTed event; can fail or hang on demand."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 503 to this many requests first
        self.hang = threading.Event()  # while set, requests wait for `release`
        self.release = threading.Event()
        self.waiting = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.hang.is_set():
                    outer.waiting.set()
                    outer.release.wait(60)
                if outer.fail_next:
                    outer.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.events.append(body)
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"success","message":"Event processed"}')

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v2/enqueue"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def actions(self) -> list[tuple[str, str]]:
        return [(e["event_action"], e["dedup_key"]) for e in self.events]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
