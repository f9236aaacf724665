"""A small fault-injecting HTTP proxy between a Kubernetes client and the real API server (test tooling).

The client talks plain HTTP to the proxy (a kubeconfig from `write_kubeconfig` points it there); the
proxy forwards every request over HTTPS to the real API server, verifying it with the cluster's CA, and
passes the client's `Authorization` header on (or adds the token it was given). Rules decide, per
request, what goes wrong:

    proxy.add(Rule("status", method="PATCH", path=r"/networkpolicies/", status=403))
    proxy.add(Rule("status", probability=0.3, status=503, retry_after=0))
    proxy.add(Rule("drop", method="PATCH", path=r"/resourcequotas/", first=1))   # write happens, answer lost
    proxy.add(Rule("delay", method="PATCH", path=r"/limitranges/", delay=5))
    proxy.add(Rule("reset", path=r"/secrets/", first=2))                         # TCP reset, nothing forwarded

The first rule that matches a request (method, and a regex searched in the path with its query) and
fires (within its first N matches, or with its probability) applies. `proxy.log` records every
request: method, path, the fault applied and the status the real server answered.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ACTIONS = ("status", "drop", "delay", "reset")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "host"}


@dataclass
class Rule:
    """One fault: `action` is status (answer `status` without forwarding), drop (forward, then close
    the connection without answering), delay (wait `delay` seconds, then forward) or reset (TCP reset
    without forwarding)."""

    action: str
    method: str = "*"
    path: str = ".*"
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    first: int | None = None
    probability: float | None = None
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {ACTIONS}")
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and bool(self._pattern.search(path))


@dataclass
class Entry:
    method: str
    path: str
    fault: str = ""
    upstream_status: int | None = None
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    """The proxy; `start()` listens on a free loopback port (`url`), `stop()` shuts it down."""

    def __init__(self, upstream: str, *, ca_file: str, token: str | None = None, seed: int = 0):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 443
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file)
        self.rules: list[Rule] = []
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 (reproducible faults, not cryptography)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def entries(self, method: str | None = None, path: str = ".*") -> list[Entry]:
        pattern = re.compile(path)
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method) and pattern.search(e.path)]

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- per request --------------------------------------------------------------------------------------

    def _decide(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.matched += 1
                if rule.first is not None and rule.matched > rule.first:
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def _record(self, entry: Entry) -> None:
        with self._lock:
            self.log.append(entry)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, list, bytes]:
        conn = http.client.HTTPSConnection(self.upstream_host, self.upstream_port, context=self.context, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            if self.token and not any(k.lower() == "authorization" for k in out):
                out["Authorization"] = f"Bearer {self.token}"
            conn.request(method, path, body=body or None, headers=out)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass

    def _any(self) -> None:
        proxy = self.owner
        method, path = self.command, self.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule = proxy._decide(method, path)
        entry = Entry(method, path, fault=rule.action if rule else "")
        proxy._record(entry)  # at once: a test may act while the request is held (delay)
        if rule is not None and rule.action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if rule is not None and rule.action == "status":
            entry.fault = f"status {rule.status}"
            payload = json.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"injected fault: {rule.status}",
                    "reason": "InjectedFault",
                    "code": rule.status,
                }
            ).encode()
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if rule.retry_after is not None:
                self.send_header("Retry-After", f"{rule.retry_after:g}")
            self.end_headers()
            self.wfile.write(payload)
            return
        if rule is not None and rule.action == "delay":
            time.sleep(rule.delay)
        try:
            status, reason, headers, data = proxy.forward(method, path, dict(self.headers.items()), body)
        except OSError as exc:
            entry.fault = entry.fault or f"upstream error {exc.__class__.__name__}"
            self.send_error(502)
            return
        entry.upstream_status = status
        if rule is not None and rule.action == "drop":
            # The server did the work; the client never hears about it.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
            return
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    """A kubeconfig that sends the client to `server` (the proxy) with `token`."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "faulty", "cluster": {"server": server}}],
                "users": [{"name": "leasehold", "user": {"token": token}}],
                "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "leasehold"}}],
                "current-context": "faulty",
            }
        )
    )
    path.chmod(0o600)
    return path
