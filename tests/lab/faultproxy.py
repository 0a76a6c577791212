"""A scriptable fault-injecting HTTP reverse proxy on 127.0.0.1, in front of a lab registry.

Integration tests need a real registry that misbehaves on cue (5xx, 429, cut connections, corrupt or short
bodies, redirects to another host); distribution itself never does. The proxy forwards everything to the
upstream unless a :class:`Rule` matches, and records every request in ``seen`` so tests can check what a
client actually sent (retries, Authorization on redirects, ...)::

    with FaultProxy(upstream_url=lab.url, upstream_ca=lab.ca_path) as proxy:
        rule = proxy.add(Rule(action="status", method="GET", path=r"/manifests/", status=503, times=2))
        ...  # point the client at proxy.url
        assert rule.hits == 2

Standard library only, so it runs wherever the lab does. Not a general proxy: request bodies are buffered
(test-scale), and only origin-form request targets are expected.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from re import search
from urllib.parse import urlsplit

ACTIONS = ("status", "delay", "reset", "truncate", "flip", "replace_body", "drop_request", "redirect")
CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 60.0
# Hop-by-hop headers (RFC 9110 7.6.1) describe one connection, never the one on the other side of the proxy.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "transfer-encoding", "upgrade"))
_BODY_METHODS = ("POST", "PUT", "PATCH")


@dataclass
class Rule:
    """One scripted fault; ``action`` is one of :data:`ACTIONS` (see ``_Handler`` for what each does).

    Matches when ``method`` (None: any) and the regex ``path`` (``re.search`` on path+query) match. The first
    ``skip`` matching requests pass (and evaluation goes on with later rules), the next ``times`` (0: all)
    get the fault; ``hits`` counts the faults applied.
    """

    action: str
    method: str | None = None
    path: str = ""
    times: int = 1
    skip: int = 0
    status: int = 503
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    body_size: int = 0
    delay: float = 0.0
    after_bytes: int = 0
    redirect_to: str = ""
    hits: int = 0
    _matched: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {ACTIONS}")


@dataclass
class Seen:
    """One request as received from the client; ``status`` is None when the connection was cut before a status."""

    method: str
    path: str
    headers: dict
    fault: str | None = None
    status: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the test process alive
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """Clients hanging up (often on purpose, after a fault) are normal here; anything else is a proxy bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FaultProxy:
    """Reverse proxy to ``upstream_url``; serving from construction until :meth:`close`."""

    def __init__(self, upstream_url: str, upstream_ca: str | None = None,
                 upstream_basic: tuple[str, str] | None = None, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate, key) PEM paths to serve HTTPS instead of plain HTTP (another host that a client
        reaches by default, as it does any host it has no URL for)."""
        split = urlsplit(upstream_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"upstream_url must be http(s)://host:port, not {upstream_url!r}")
        self.upstream_scheme = split.scheme
        self.upstream_host = split.hostname
        self.upstream_port = split.port or (443 if split.scheme == "https" else 80)
        self.upstream_netloc = split.netloc
        self.upstream_origin = f"{split.scheme}://{split.netloc}"
        self.ssl_context = None
        if split.scheme == "https":
            self.ssl_context = ssl.create_default_context(cafile=upstream_ca)
        self.upstream_auth = None
        if upstream_basic:
            token = base64.b64encode(f"{upstream_basic[0]}:{upstream_basic[1]}".encode()).decode()
            self.upstream_auth = f"Basic {token}"
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def close(self) -> None:
        """Stop accepting, and wake handler threads blocked on idle keep-alive connections so they exit."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- used by the handler ------------------------------------------------------------------

    def _match(self, method: str, path: str) -> Rule | None:
        """First rule with faults left; skip/times bookkeeping under the lock (handlers run concurrently)."""
        with self._lock:
            for rule in self.rules:
                if rule.method is not None and rule.method.upper() != method.upper():
                    continue
                if rule.path and not search(rule.path, path):
                    continue
                if rule.times and rule.hits >= rule.times:
                    continue
                rule._matched += 1
                if rule._matched <= rule.skip:
                    continue
                rule.hits += 1
                return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(sock)

    def _rewrite(self, value: str) -> str:
        """The registry builds absolute upload URLs from its own origin: point them back at the proxy."""
        return value.replace(self.upstream_origin, self.url)

    def _connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT)


class _Handler(BaseHTTPRequestHandler):
    """One client connection. Actions of a matching rule:

    status: answer ``status``/``headers``/``body`` (or ``body_size`` bytes of b"a"), not forwarded.
    delay: sleep ``delay`` s, then forward. redirect: 307 to ``redirect_to`` + path, not forwarded.
    reset / truncate: forward, send headers (full Content-Length) and ``after_bytes`` of the body, then RST / FIN.
    flip: forward with one body byte XOR 0x01 (at ``after_bytes`` if inside the body, else the middle one).
    replace_body: forward, upstream status and headers with ``body`` instead of the upstream body.
    drop_request: read ``after_bytes`` of the request body, then RST; nothing reaches the upstream.
    """

    protocol_version = "HTTP/1.1"  # keep-alive with the client, as a real registry offers
    server_version = "faultproxy"

    def setup(self) -> None:
        super().setup()
        self.proxy: FaultProxy = self.server.proxy
        self.proxy._track(self.connection, True)
        self._seen: Seen | None = None
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        self.proxy._track(self.connection, False)
        if self._upstream is not None:
            self._upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args) -> None:  # noqa: A002 - base class signature
        """Quiet: tests read ``seen`` instead."""

    def send_response_only(self, code, message=None) -> None:
        if code >= 200 and self._seen is not None:
            self._seen.status = code
        super().send_response_only(code, message)

    def do_any(self) -> None:
        target = self.path
        if target.startswith(("http://", "https://")):  # absolute-form: keep path and query only
            split = urlsplit(target)
            target = split.path + (f"?{split.query}" if split.query else "")
        self.target = target
        self._seen = Seen(self.command, target, dict(self.headers.items()))
        self.proxy._record(self._seen)
        rule = self.proxy._match(self.command, target)
        if rule is not None:
            self._seen.fault = rule.action
        try:
            if rule is not None and rule.action == "drop_request":
                self._read_body(limit=rule.after_bytes)
                return self._abort()
            body = self._read_body()
            if rule is None or rule.action == "delay":
                if rule is not None:
                    time.sleep(rule.delay)
                return self._forward(body)
            if rule.action == "status":
                return self._answer_status(rule)
            if rule.action == "redirect":
                self.send_response(307)
                self.send_header("Location", rule.redirect_to.rstrip("/") + target)
                self.send_header("Content-Length", "0")
                return self.end_headers()
            return self._forward(body, rule)
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # a side went away mid-exchange (or we cut it): nothing more to say

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_any

    # --- request body --------------------------------------------------------------------------

    def _read_body(self, limit: int | None = None) -> bytes:
        """The whole request body (Content-Length or chunked, decoded), or at most ``limit`` raw bytes of it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            if limit is not None:
                return self.rfile.read(limit) if limit > 0 else b""
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self._read_exact(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            length = min(length, limit)
        return self._read_exact(length)

    def _read_exact(self, size: int) -> bytes:
        data = self.rfile.read(size) if size > 0 else b""
        if len(data) < size:
            raise ConnectionResetError("client closed the connection mid-body")
        return data

    # --- faults that never reach the upstream ----------------------------------------------------

    def _answer_status(self, rule: Rule) -> None:
        self.send_response(rule.status)
        for name, value in rule.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        length = rule.body_size if rule.body_size > 0 else len(rule.body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if rule.body_size > 0:
            piece = b"a" * CHUNK
            left = rule.body_size
            while left > 0:  # generated piece by piece: an "oversized" body must not cost the test memory
                self.wfile.write(piece if left >= CHUNK else piece[:left])
                left -= CHUNK
        elif rule.body:
            self.wfile.write(rule.body)

    def _abort(self) -> None:
        """TCP RST instead of FIN: SO_LINGER on with a zero timeout makes close() reset the connection."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # makefile() holds a reference: the fd (and so the RST) goes only with the last one
        self.connection.close()

    # --- forwarding ------------------------------------------------------------------------------

    def _upstream_headers(self) -> dict:
        connection_tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        headers = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in connection_tokens or lower in ("host", "content-length", "expect"):
                continue
            if lower == "authorization" and self.proxy.upstream_auth:
                continue
            headers[name] = value
        headers["Host"] = self.proxy.upstream_netloc
        if self.proxy.upstream_auth:
            headers["Authorization"] = self.proxy.upstream_auth  # a mirror host: credentials are the proxy's
        return headers

    def _send_upstream(self, body: bytes) -> http.client.HTTPResponse:
        """Reuse this client connection's upstream connection; retry once on a fresh one if a reused one had
        gone stale (the body is buffered, so resending is possible)."""
        payload = body if body or self.command in _BODY_METHODS else None
        headers = self._upstream_headers()
        for attempt in (0, 1):
            reused = self._upstream is not None
            if not reused:
                self._upstream = self.proxy._connect()
            try:
                self._upstream.request(self.command, self.target, body=payload, headers=headers)
                return self._upstream.getresponse()
            except (http.client.HTTPException, OSError):
                self._upstream.close()
                self._upstream = None
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")

    def _forward(self, body: bytes, rule: Rule | None = None) -> None:
        try:
            response = self._send_upstream(body)
        except (http.client.HTTPException, OSError) as exc:
            message = f"faultproxy: upstream {self.proxy.upstream_origin} failed: {exc}\n".encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(message)
            return
        try:
            self._relay(response, rule)
        finally:
            if response.will_close or not response.isclosed():
                self._upstream.close()  # unread or close-delimited: this connection cannot be reused
                self._upstream = None

    def _relay(self, response: http.client.HTTPResponse, rule: Rule | None) -> None:
        action = rule.action if rule is not None and rule.action != "delay" else None
        headers = []
        upstream_length = None
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "content-length":
                upstream_length = value
                continue
            if action == "replace_body" and lower == "content-encoding":
                continue
            if lower in ("location", "link"):
                value = self.proxy._rewrite(value)
            headers.append((name, value))
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200

        body = None
        if action == "replace_body":
            response.read()
            body = rule.body
        elif no_body:
            response.read()
        elif action in ("flip", "truncate", "reset") or response.length is None:
            body = response.read()  # chunked/close-delimited upstream, or a fault that needs the whole body
            if action == "flip" and body:
                offset = rule.after_bytes if 0 <= rule.after_bytes < len(body) else len(body) // 2
                body = body[:offset] + bytes([body[offset] ^ 0x01]) + body[offset + 1:]

        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        elif upstream_length is not None:
            self.send_header("Content-Length", upstream_length)  # HEAD too: it describes the GET body
        elif not no_body:
            self.send_header("Content-Length", str(response.length or 0))
        self.end_headers()

        if action in ("truncate", "reset"):
            if not no_body:
                self.wfile.write(body[:max(0, rule.after_bytes)])
            if action == "reset":
                return self._abort()
            self.close_connection = True  # graceful FIN after a short body
            return
        if no_body:
            return
        if body is not None:
            self.wfile.write(body)
            return
        while True:
            piece = response.read(CHUNK)
            if not piece:
                break
            self.wfile.write(piece)
