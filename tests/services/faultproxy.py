"""A fault-injecting HTTP proxy in front of a real emulator (moto server, fake-gcs-server).

The client (boto3's ``endpoint_url``, ``STORAGE_EMULATOR_HOST``) talks to the
proxy; the proxy forwards each request to the emulator and, for a seeded
share of requests (``rate``), answers with a fault instead:

* ``429`` / ``503``: throttling answers in the flavour of the service (S3 XML
  ``SlowDown``, GCS JSON), the request never reaches the emulator;
* ``reset``: the connection is reset (RST); half of these after the request was
  forwarded, so the write landed but its answer is lost;
* ``stall``: the request is forwarded, then nothing is answered for ``stall``
  seconds (past the client's read timeout), then the connection closes.

``down = True`` answers every request with 503 (a region down; with ``down_only``,
only the requests whose path holds it: one bucket down while the same emulator's
other services answer); ``hang = True``
accepts connections and never answers (a partition that is not an HTTP error).
:meth:`fail_after` makes an ordering deterministic: requests for one object
wait until a request for another has been answered, then get 503;
:meth:`fail_next` answers 503 to the next few requests for one object.
Counters per fault kind say what was injected, and ``answers`` what every request
was answered. Everything is on 127.0.0.1.

``authorize`` makes it an authenticating front end for an emulator that checks
no credentials (fake-gcs-server): it is given each request's ``Authorization``
header and returns why it is refused, or None. A refused request never reaches
the emulator and gets 401 in the service's form (for GCS, the JSON error with
reason ``authError`` Google sends for an invalid or revoked token). See
``tests/services/gauth.py`` for the token endpoint whose tokens it checks.

Links in answers (a resumable session's ``Location``) are rewritten to the
proxy, so the client keeps talking to it. ``rewrite_links = True`` does the same
inside JSON answers: fake-gcs-server's ``mediaLink``, which google-cloud-storage
follows to download a whole object, so those downloads come through the proxy
too (without it they go straight to the emulator).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

KINDS = ("429", "503", "reset", "stall")
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 11,
        flavor: str = "s3",
        stall: float = 3.0,
        latency: float = 0.0,
        kinds: tuple[str, ...] = KINDS,
        authorize: Callable[[str | None], str | None] | None = None,
        rewrite_links: bool = False,
    ) -> None:
        u = urlparse(upstream)
        self.upstream_host, self.upstream_port = u.hostname or "127.0.0.1", u.port or 80
        self.upstream = upstream.rstrip("/")
        self.rate, self.flavor, self.stall, self.kinds = rate, flavor, stall, kinds
        #: seconds added before every answer: a region's round trip, not loopback's
        self.latency = latency
        self.down = False
        #: with ``down``: refuse only the requests whose path holds this
        self.down_only: str | None = None
        self.authorize = authorize
        self.rewrite_links = rewrite_links
        #: "METHOD path: why" of every request refused by ``authorize``, in order
        self.refused: list[str] = []
        self.hang = False
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        #: "METHOD path fault" of every request, in order
        self.log: list[str] = []
        #: (method, path, HTTP status) of every request answered, in order
        self.answers: list[tuple[str, str, int]] = []
        #: (path part, event): requests whose path holds the part wait for the event,
        #: then get 503 (fail_after)
        self._rules: list[tuple[str, threading.Event]] = []
        #: (path part, event) set once a request whose path holds the part is answered
        self._signals: list[tuple[str, threading.Event]] = []
        #: "METHOD part": the next such request's answer is lost (lose_answer)
        self._lose: list[str] = []
        #: "METHOD part" once per request to answer 503 (fail_next)
        self._fail: list[str] = []
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_after(self, part: str, *, after: str, method: str = "PUT") -> None:
        """Answer 503 to every request whose path contains ``part``, and hold each one
        until a ``method`` request whose path contains ``after`` has been answered."""
        done = threading.Event()
        self._signals.append((f"{method} {after}", done))
        self._rules.append((part, done))

    def lose_answer(self, part: str, *, method: str = "PUT") -> None:
        """The next ``method`` request whose path contains ``part`` is forwarded, then
        its connection reset: the write landed, its answer is lost."""
        with self.lock:
            self._lose.append(f"{method} {part}")

    def fail_next(self, part: str, *, times: int, method: str = "PUT") -> None:
        """The next ``times`` ``method`` requests whose path contains ``part`` get 503
        SlowDown; the requests for every other object are forwarded as usual."""
        with self.lock:
            self._fail.extend([f"{method} {part}"] * times)

    def clear_rules(self) -> None:
        """Forget every fail_after rule: those requests are forwarded again."""
        self._rules.clear()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ one request

    def _pick(self, h: BaseHTTPRequestHandler) -> str | None:
        with self.lock:
            self.requests += 1
            if self.down and (self.down_only is None or self.down_only in h.path):
                kind: str | None = "503"
            elif self.rng.random() < self.rate:
                kind = self.rng.choice(self.kinds)
            else:
                kind = None
            if kind == "reset" and self.rng.random() < 0.5:
                kind = "reset-after"
            for rule in self._fail:
                method, _, part = rule.partition(" ")
                if h.command == method and part in h.path:
                    self._fail.remove(rule)
                    kind = "503"
                    break
            for rule in self._lose:
                method, _, part = rule.partition(" ")
                if h.command == method and part in h.path:
                    self._lose.remove(rule)
                    kind = "reset-after"
                    break
            if kind:
                self.injected[kind] += 1
            self.log.append(f"{h.command} {h.path} {kind or '-'}")
            return kind

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        if self.latency:
            time.sleep(self.latency)
        if self.hang:
            self._stop.wait(600)  # never answer; the client must time out
            h.close_connection = True
            return
        for part, done in self._rules:
            if part in h.path:
                done.wait(60)
                self._throttle(h, 503)
                return
        if self.authorize is not None:
            why = self.authorize(h.headers.get("Authorization"))
            if why is not None:
                self._refuse(h, why)
                return
        kind = self._pick(h)
        if kind in ("429", "503"):
            self._throttle(h, int(kind))
            return
        if kind == "reset":
            _reset(h)
            return
        status, headers, data = self._forward(h, body)
        if self.rewrite_links and any(
            k.lower() == "content-type" and "json" in v for k, v in headers
        ):  # JSON only: an object's bytes are never touched
            data = data.replace(self.upstream.encode(), self.url.encode())
        if kind == "reset-after":
            _reset(h)
            return
        if kind == "stall":
            self._stop.wait(self.stall)
            h.close_connection = True
            return
        h.send_response(status)
        head = h.command == "HEAD"  # its Content-Length is the object's, not this body's
        for k, v in headers:
            if k.lower() not in _HOP and (head or k.lower() != "content-length"):
                h.send_header(k, v.replace(self.upstream, self.url))
        if not head:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()
        self._answered(h, status)
        for what, done in self._signals:
            method, _, part = what.partition(" ")
            if h.command == method and part in h.path:
                done.set()

    def _forward(
        self, h: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(h.command, h.path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def _answered(self, h: BaseHTTPRequestHandler, status: int) -> None:
        with self.lock:
            self.answers.append((h.command, h.path, status))

    def _refuse(self, h: BaseHTTPRequestHandler, why: str) -> None:
        with self.lock:
            self.requests += 1
            self.refused.append(f"{h.command} {h.path}: {why}")
            self.log.append(f"{h.command} {h.path} 401")
        # what Google's front end answers for a bad or revoked bearer token
        error = {"message": "Invalid Credentials", "domain": "global", "reason": "authError"}
        error |= {"locationType": "header", "location": "Authorization"}
        data = json.dumps(
            {"error": {"code": 401, "message": "Invalid Credentials", "errors": [error]}}
        ).encode()
        h.send_response(401)
        h.send_header("Content-Type", "application/json; charset=UTF-8")
        h.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        self._answered(h, 401)

    def _throttle(self, h: BaseHTTPRequestHandler, status: int) -> None:
        if self.flavor == "s3":
            code = "SlowDown" if status == 503 else "TooManyRequests"
            data = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                "<Message>injected by the fault proxy</Message></Error>"
            ).encode()
            ctype = "application/xml"
        else:
            data = (
                f'{{"error": {{"code": {status}, "message": "injected by the fault proxy"}}}}'
            ).encode()
            ctype = "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        self._answered(h, status)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a reset or stalled connection is the point, not an error of the proxy


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close with RST (SO_LINGER 0), as a middlebox or a crashed frontend does."""
    sock: socket.socket = h.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True
    h.rfile.close()  # the socket closes (with RST) once no file object refers to it
    sock.close()


def wait_until(cond: object, timeout: float = 60.0) -> None:
    """Poll ``cond()`` until true (tests' own deadline, not a performance threshold)."""
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)
