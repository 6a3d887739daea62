"""A request head as the wire parsed it, and what routes and balancers ask of it (host, headers, cookies)."""

from __future__ import annotations

import time


class Request:
    """A request head, plus what balancers and routes ask of it."""

    __slots__ = (
        "_cookies",
        "block",
        "chunked",
        "client",
        "client_bytes",
        "expect",
        "head_size",
        "headers",
        "host",
        "host_bytes",
        "hosts",
        "keep_alive",
        "length",
        "method",
        "path",
        "pool",
        "request_id",
        "route",
        "secure",
        "special",
        "started",
        "upgrade",
        "url",
        "version",
        "xff",
    )

    def __init__(self, client: str, secure: bool = False, client_bytes: bytes | None = None):
        self.client = client
        self.client_bytes = client.encode() if client_bytes is None else client_bytes
        self.secure = secure              # arrived over TLS: sticky cookies get `Secure`
        self.url = b""
        self.method = b"-"
        self.headers: list[tuple[bytes, bytes]] = []
        self._cookies: dict[str, str] | None = None
        self.started = time.monotonic()
        self.route = self.pool = "-"     # metric labels, set once routed
        self.host = ""                   # the Host header, lowercase (routes match it)
        self.host_bytes = b""            # the same as bytes (the access log, X-Forwarded-Host)
        self.hosts = 0                   # Host headers seen (more than one is refused)
        self.path = "/"
        self.special: list[tuple[bytes, bytes, bytes]] = []   # (lowercase name, name, value) the proxy reads
        self.block: bytes | None = None  # the header lines as received, when they can pass through
        self.chunked = False
        self.length: int | None = None
        self.xff: bytes | None = None
        self.request_id: bytes | None = None   # X-Request-ID as the client sent it
        self.expect = False              # Expect: 100-continue
        self.version = "1.1"
        self.keep_alive = True
        self.upgrade = False
        self.head_size = 0

    def header(self, name: str) -> str | None:
        """The first header called `name` (any case), as text; None when absent."""
        key = name.lower().encode()
        if not self.headers and self.block:      # read from the raw head: no (name, value) list was made
            lowered = self.block.lower()
            needle = b"\r\n" + key + b":"
            i = lowered.find(needle)
            if i < 0:
                return None
            j = lowered.find(b"\r\n", i + 2)
            return self.block[i + len(needle):j if j >= 0 else len(lowered)].strip(b" \t").decode("latin-1")
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            self._cookies = {}
            raw = self.header("cookie") or ""
            for part in raw.split(";"):
                k, _, v = part.strip().partition("=")
                if k:
                    self._cookies[k] = v
        return self._cookies.get(name)
