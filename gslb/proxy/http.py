"""The proxy's data path: asyncio Protocols with httptools parsers on both sides, streaming bodies.

ClientConnection  one per client connection: parses requests, asks the policy (policy.Policy: begin,
                  retry, finish) where each goes, forwards.
Exchange          one request/response in flight: client <-> one UpstreamConnection.
UpstreamConnection one keep-alive connection to a backend, reused across exchanges.

Bodies stream both ways chunk by chunk; each side's write buffer pauses the other side's reading.
Requests on one client connection are answered in order: a request that arrives while an earlier one
is answered waits (Waiting), and the client is not read further until its turn.

Header lines pass through as they arrived (raw_block): the proxy finds the few it reads or drops with
one regex scan of the head (request_special, response_lines) and cuts those lines out; it never splits
every header into a name and a value in Python. The request head is rebuilt from parsed headers only
when it did not begin at the start of a read (a pipeline, a head in pieces)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import re
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from gslb.proxy.policy import Pick, Policy, Refusal
from gslb.proxy.request import Request
from gslb.proxy.state import MAX_IDLE

if TYPE_CHECKING:
    from gslb.proxy.state import BackendState

log = logging.getLogger("gslb.proxy")

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection"})
PENDING_LIMIT = 256 * 1024          # request body held while connecting to the backend
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
# Tried on every other backend of the pool when a connection is refused or reset before any byte of
# the response came (nginx's `proxy_next_upstream error`): safe to send twice, and nothing was answered.
NEXT_UPSTREAM = frozenset({b"GET", b"HEAD"})
# The proxy's own shortage, not the backend's fault: never counted against a backend.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})
VERSIONS = frozenset({"1.0", "1.1"})
# Request headers the proxy reads, replaces or drops; any other header passes through as the client sent it.
REQUEST_DROP = HOP_BY_HOP | {b"expect", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                             b"x-request-id"}
REQUEST_SPECIAL = REQUEST_DROP | {b"host", b"content-length"}


def _lines_named(names: frozenset[bytes]) -> re.Pattern[bytes]:
    """Lines of these headers in a lowercased block of header lines: group 1 the name, 2 the value."""
    alternatives = b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rb"\r\n(" + alternatives + rb"):[ \t]*([^\r]*)")


# One scan in C finds the few headers the proxy reads or drops; the others are not looked at.
REQUEST_LINES = _lines_named(REQUEST_SPECIAL)
RESPONSE_LINES = _lines_named(HOP_BY_HOP | {b"content-length"})
REASONS = {400: "Bad Request", 404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 505: "HTTP Version Not Supported"}


def simple_response(status: int, text: str, close: bool = False, extra: bytes = b"") -> bytes:
    body = (text + "\n").encode()
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n".encode() + extra +
            (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)


def raw_block(data: bytes | None, count: int | None) -> bytes | None:
    """The header lines of the head at the start of `data`, as received ("\r\nName: value" each), when they
    can pass through unparsed: the head lies in `data` and has one line per parsed header (no obs-fold, no
    stray line). None otherwise (the head is then rebuilt from the parsed headers)."""
    if data is None:
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0 or count is not None and data.count(b"\r\n", 0, end + 2) != count + 1:
        return None
    return data[data.find(b"\r\n"):end]


def header_spans(lowered: bytes, needle: bytes) -> list[tuple[int, int]]:
    """Where the lines of one header lie in a lowercased block of header lines ("\r\nname: value" each):
    (start of its CRLF, end of its value) per line. `needle` is b"\r\nname:"."""
    spans = []
    i = lowered.find(needle)
    while i >= 0:
        j = lowered.find(b"\r\n", i + 2)
        if j < 0:
            j = len(lowered)
        spans.append((i, j))
        i = lowered.find(needle, j)
    return spans


def cut(block: bytes, spans: list[tuple[int, int]]) -> bytes:
    """`block` without the given (start, end) ranges."""
    parts = []
    at = 0
    for i, j in sorted(spans):
        parts.append(block[at:i])
        at = j
    parts.append(block[at:])
    return b"".join(parts)


PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close", b"upgrade", b"Upgrade"})


def connection_tokens(values: list[bytes]) -> set[bytes]:
    """Header names listed in Connection values (lowercase), without close, keep-alive and upgrade."""
    if all(value in PLAIN_CONNECTION for value in values):
        return set()                             # the usual `Connection: keep-alive` names no header
    named = {t.strip().lower() for value in values for t in value.split(b",")}
    named.difference_update((b"close", b"keep-alive", b"upgrade", b""))
    return named


def response_lines(block: bytes, status: int) -> tuple[bytes, bool, bool]:
    """A backend's header lines as received -> (the lines to forward, chunked, has Content-Length).
    Only hop-by-hop lines (and those Connection names) are cut; every other line passes through byte for
    byte, never split into names and values in Python."""
    lowered = block.lower()
    drop: list[tuple[int, int]] = []
    chunked = has_length = False
    connection: list[bytes] = []
    for m in RESPONSE_LINES.finditer(lowered):
        name = m[1]
        if name == b"content-length":
            has_length = True
            continue
        if name == b"transfer-encoding":
            chunked = chunked or b"chunked" in m[2]
        elif name == b"connection":
            connection.append(m[2])
        elif name == b"upgrade" and status == 101:
            continue
        drop.append(m.span())
    if connection:
        for name in connection_tokens(connection):
            drop.extend(header_spans(lowered, b"\r\n" + name + b":"))
    return (cut(block, drop) if drop else block), chunked, has_length


def request_special(block: bytes) -> list[tuple[bytes, bytes, bytes, tuple[int, int] | None]]:
    """(lowercase name, name, value, span in `block`) of the headers in `block` (see raw_block) the proxy
    reads or drops, in their order."""
    return [(m[1], block[m.start(1):m.end(1)], block[m.start(2):m.end(2)].rstrip(b" \t"), m.span())
            for m in REQUEST_LINES.finditer(block.lower())]


def refused(exc: BaseException) -> bool:
    """A connection refused, reset or aborted by the other side: that backend answers nothing now."""
    return isinstance(exc, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError))


BAD_HOST = re.compile(r"[ \t/@\\,]")


def host_problem(req: Request) -> str | None:
    """Why the request's Host is unacceptable (RFC 9112 3.2: exactly one Host in HTTP/1.1), or None."""
    if req.hosts > 1:
        return "more than one Host header"
    if not req.hosts and req.version == "1.1":
        return "no Host header"
    if req.hosts and BAD_HOST.search(req.host):
        return "invalid Host header"
    return None


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class HeadCallbacks:
    """A client connection's parser callbacks without on_header (see ClientConnection.head_parser)."""

    __slots__ = ("on_body", "on_headers_complete", "on_message_begin", "on_message_complete", "on_url")

    def __init__(self, conn: ClientConnection):
        self.on_message_begin, self.on_url = conn.on_message_begin, conn.on_url
        self.on_headers_complete, self.on_body = conn.on_headers_complete, conn.on_body
        self.on_message_complete = conn.on_message_complete


class Waiting:
    """A pipelined request parsed while an earlier one is still being answered: it starts in its turn, so
    responses leave in the order the requests came. Its body (at most one read's worth) is kept until then."""

    __slots__ = ("body", "done", "req")

    def __init__(self, req: Request):
        self.req = req
        self.body: list[bytes] = []
        self.done = False


class ClientConnection(asyncio.Protocol):
    """One client TCP (or TLS) connection."""

    # slots: faster attribute access on the request path, no dict per object
    __slots__ = (
        "blocked",
        "body_bytes",
        "client",
        "client_bytes",
        "closed",
        "exchange",
        "full_parser",
        "head_count",
        "head_parser",
        "head_seen",
        "headers",
        "idle_since",
        "in_head",
        "parser",
        "paused",
        "policy",
        "raw",
        "request",
        "scheme",
        "target",
        "tls",
        "transport",
        "tunnel",
        "waiting",
    )

    def __init__(self, policy: Policy, tls: bool):
        self.policy = policy
        self.tls = tls
        self.scheme = b"https" if tls else b"http"
        self.transport: asyncio.Transport | None = None
        self.parser = self.full_parser = httptools.HttpRequestParser(self)
        # The same callbacks but on_header: for a read that is exactly one request head (no body, no
        # pipeline), whose header lines are then read from the raw head in one pass (request_special).
        self.head_parser = httptools.HttpRequestParser(HeadCallbacks(self))
        self.request: Request | None = None          # the request being parsed
        self.exchange: Exchange | None = None        # the request being answered
        self.target: Exchange | Waiting | None = None  # where the parsed request's body goes
        self.waiting: deque[Waiting] = deque()
        self.tunnel: UpstreamConnection | None = None
        self.client = "?"
        self.client_bytes = b"?"
        self.headers: list[tuple[bytes, bytes]] = []
        self.body_bytes = 0
        self.in_head = False                   # between a request's first byte and the end of its head
        self.head_seen = 0                     # bytes of reads that were all head (see data_received)
        self.head_count = 0                    # requests begun: tells whether a read began a new one
        self.closed = False
        self.blocked = False                   # our writes to the client wait: its reader is slow
        self.paused = False                    # we stopped reading the client (requests answered in order)
        self.raw: bytes | None = None          # the read a request head began at the start of (raw_block)
        self.idle_since = time.monotonic()     # the proxy's sweep closes connections idle too long

    # -- connection -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else "?"
        self.client_bytes = self.client.encode()
        self.policy.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.policy.connections.discard(self)
        if self.exchange is not None:
            self.exchange.client_gone()
        if self.tunnel is not None:
            self.tunnel.close()

    def idle_for(self, now: float) -> float:
        """Seconds without a request being answered (0 while one is); a slow request head counts as idle."""
        return 0.0 if self.exchange is not None else now - self.idle_since

    def pause_writing(self) -> None:
        self.blocked = True
        if self.exchange and self.exchange.upstream and self.exchange.upstream.transport:
            self.exchange.upstream.transport.pause_reading()
        if self.tunnel and self.tunnel.transport:
            self.tunnel.transport.pause_reading()

    def resume_writing(self) -> None:
        self.blocked = False
        if self.exchange and self.exchange.upstream and self.exchange.upstream.transport:
            self.exchange.activity = time.monotonic()     # the backend was waiting for us, not silent
            self.exchange.upstream.transport.resume_reading()
        if self.tunnel and self.tunnel.transport:
            self.tunnel.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        begun = self.head_count
        if self.request is None:
            # a request that begins at the start of this read may pass its header lines through as they
            # are; and a read that is exactly one head needs no callback per header
            self.raw = data
            end = len(data) - 4
            self.parser = self.head_parser if end > 0 and data.find(b"\r\n\r\n") == end \
                and not data.startswith(b"\r\n") else self.full_parser
        else:
            self.raw = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            if isinstance(self.target, Exchange):
                self.target.upgrade_data(data[offset:])
        except httptools.HttpParserError as exc:
            if self.exchange is not None:
                self.transport.close()
            elif "HTTP version" in str(exc) or "PRI" in str(exc):    # HTTP/3.0, HTTP/1.2, the h2 preface
                self.reply(505, "HTTP version not supported: use HTTP/1.1", close=True)
            else:
                self.reply(400, "bad request", close=True)
            return
        if self.in_head and self.head_count == begun:
            # The whole read was head: httptools keeps a header it has not finished in memory and calls
            # back only at its end, so a head is measured here, read by read, to bound it.
            self.head_seen += len(data)
            if self.head_seen > self.policy.limits.max_header_size and not self.closed:
                self.reply(431, "request headers too large", close=True)

    def reply(self, status: int, text: str, close: bool = False, extra: bytes = b"",
              req: Request | None = None) -> None:
        """A short response from the proxy itself (404, 429, 503 ...)."""
        if self.closed:
            return
        self.transport.write(simple_response(status, text, close, extra))
        req = req or self.request
        if req is not None:
            self.policy.finish(req, None, status, None)
        if close:
            self.transport.close()

    # -- httptools callbacks --------------------------------------------------------------------------
    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def on_message_begin(self) -> None:
        self.request = Request(self.client, self.tls, self.client_bytes)
        self.headers = self.request.headers
        self.body_bytes = 0
        self.in_head = True
        self.head_seen = 0
        self.head_count += 1

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))      # all the work per header: the head is read as a whole

    def on_headers_complete(self) -> None:
        self.in_head = False
        req = self.request
        parser = self.parser
        req.method = parser.get_method()
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive()
        req.upgrade = parser.should_upgrade()
        headers = req.headers
        block = raw_block(self.raw, None if parser is self.head_parser else len(headers))
        if block is not None:
            req.special = request_special(block)
            req.head_size = len(req.url) + len(block) + 16
        else:                                    # the head came in pieces or behind another request
            req.special = [(name.lower(), name, value, None) for name, value in headers
                           if name.lower() in REQUEST_SPECIAL]
            req.head_size = len(req.url) + sum(len(n) + len(v) + 4 for n, v in headers)
        req.block = block
        hosts = 0
        for low, _, value, _ in req.special:    # only the headers the proxy reads: a few, often just Host
            if low == b"host":
                hosts += 1
                if hosts == 1:
                    req.host_bytes = value.lower()
                    req.host = req.host_bytes.decode("latin-1")
            elif low == b"transfer-encoding":
                req.chunked = req.chunked or b"chunked" in value.lower()
            elif low == b"content-length":
                if req.length is None:
                    req.length = int(value) if value.isdigit() else None
            elif low == b"x-forwarded-for":
                req.xff = value if req.xff is None else req.xff     # the first, as before
            elif low == b"x-request-id":
                if req.request_id is None:
                    req.request_id = value
            elif low == b"expect":
                req.expect = req.expect or value.lower() == b"100-continue"
        req.hosts = hosts
        url = req.url
        cut = url.find(b"?")
        req.path = (url if cut < 0 else url[:cut]).decode("latin-1")
        if self.exchange is not None or self.waiting:
            if req.upgrade:
                self.transport.close()            # no tunnel behind a pipeline
                return
            waiting = Waiting(req)
            self.waiting.append(waiting)
            self.target = waiting
            return
        self.target = self._begin(req)

    def _begin(self, req: Request) -> Exchange | None:
        """Answer a request from the proxy (limits, routes, rate) or start forwarding it."""
        limits = self.policy.limits
        if req.version not in VERSIONS:          # HTTP/2.0 or 0.9 in a request line: not spoken here
            self.reply(505, "HTTP version not supported: use HTTP/1.1", close=True, req=req)
            return None
        if req.head_size > limits.max_header_size:
            self.reply(431, "request headers too large", close=True, req=req)
            return None
        problem = host_problem(req)
        if problem is not None:                  # two Hosts could route by one and reach a backend by the other
            self.reply(400, f"bad request: {problem}", close=True, req=req)
            return None
        if req.length is not None and req.length > limits.max_body_size:
            self.reply(413, "request body too large", close=True, req=req)
            return None
        if req.expect:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        decision = self.policy.begin(req)
        if type(decision) is Refusal:
            # a client that said Connection: close (or HTTP/1.0 without keep-alive) is closed after it
            self.reply(decision.status, decision.text, close=decision.close or not req.keep_alive,
                       extra=decision.extra, req=req)
            return None
        self.exchange = Exchange(self.policy, self, req, decision)
        return self.exchange

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        target = self.target
        if self.body_bytes > self.policy.limits.max_body_size:
            if target is not None and target is self.exchange and not target.head_sent:
                target.abort()
                self.exchange = self.target = None
                self.reply(413, "request body too large", close=True)
            else:                                  # a response is under way: no room for a 413
                self.transport.close()
            return
        if target is None:
            return
        if type(target) is Waiting:
            target.body.append(body)
            self.pause()                           # one read's worth waits, no more
        else:
            target.request_body(body)

    def on_message_complete(self) -> None:
        target, self.target = self.target, None
        self.request = None
        self.raw = None                            # a next request in this read does not begin at its start
        if target is None:
            return
        if type(target) is Waiting:
            target.done = True
            self.pause()                           # answer requests in order
        else:
            # Reading goes on while the response is due (no pause/resume pair per request): bytes of a
            # next, pipelined request make a Waiting, which pauses reading until its turn.
            target.request_done()

    def exchange_done(self, keep_alive: bool) -> None:
        self.exchange = None
        if self.closed:
            return
        if not keep_alive:
            self.transport.close()
            return
        self.idle_since = time.monotonic()
        while self.waiting:
            waiting = self.waiting.popleft()
            exchange = self._begin(waiting.req)
            if self.transport.is_closing():
                return
            if exchange is None:
                if self.target is waiting:
                    self.target = None
                continue                            # answered by the proxy itself: the next one
            if self.target is waiting:
                self.target = exchange
            for piece in waiting.body:
                exchange.request_body(piece)
            if waiting.done:
                exchange.request_done()
                return                              # reading stays paused until this one is answered
            break                                   # its body is still arriving
        self.resume()


class Exchange:
    """One request in flight between a client connection and a backend."""

    # slots: faster attribute access on the request path, no dict per object
    __slots__ = (
        "activity",
        "attempts",
        "backend",
        "batch",
        "blame",
        "body_done",
        "client",
        "client_close",
        "finished",
        "head_sent",
        "held",
        "pending",
        "pending_bytes",
        "pick",
        "policy",
        "req",
        "request_id",
        "response_chunked",
        "response_close",
        "retried",
        "reused",
        "set_cookie",
        "started",
        "status",
        "tried",
        "upstream",
    )

    def __init__(self, policy: Policy, client: ClientConnection, req: Request, pick: Pick):
        self.policy, self.client, self.req, self.pick = policy, client, req, pick
        self.backend = backend = pick.backend
        self.set_cookie = pick.cookie
        self.upstream: UpstreamConnection | None = None
        self.pending: list[bytes] | None = None   # request body that arrived before the upstream connection
        self.pending_bytes = 0
        self.held = False                # client reading paused: pending is full
        self.body_done = False
        self.head_sent = False
        self.finished = False
        self.status = 0
        self.attempts = 0
        self.retried = 0               # attempts counted against `retries` (not next-upstream ones)
        self.tried: list[BackendState] | None = None    # made on the first switch to another backend
        self.blame = True              # whether this exchange's outcome counts for the backend's passive health
        self.reused = False            # on a pooled keep-alive connection, which the backend may have closed
        self.response_chunked = False
        self.response_close = False     # the backend ends the body by closing
        self.client_close = False       # so must we, or the client cannot tell where the body ends
        self.started = self.activity = time.monotonic()
        self.batch: list[bytes] | None = None   # client writes collected while one upstream read is parsed
        policy.inflight.add(self)
        # getrandbits, not os.urandom: no system call per request, and an ID need not be a secret
        self.request_id = req.request_id or b"%016x" % random.getrandbits(64)
        backend.active += 1
        self._connect()

    # -- request side -----------------------------------------------------------------------------------
    def _head(self) -> bytes:
        """The request head for the backend: the client's header lines as received (raw_block) minus those
        the proxy drops, or rebuilt from the parsed headers; then the X-Forwarded-* and X-Request-ID."""
        req = self.req
        lines = [b"%s %s HTTP/1.1" % (req.method, req.url)]
        special = req.special
        dropped = [(low, span) for low, _, _, span in special
                   if low in REQUEST_DROP and not (req.upgrade and low == b"upgrade")]
        connection = [value for low, _, value, _ in special if low == b"connection"]
        named = connection_tokens(connection) if connection else ()
        block = req.block
        if block is not None:
            spans = [span for _, span in dropped]
            if named:
                lowered = block.lower()
                for name in named:
                    spans.extend(header_spans(lowered, b"\r\n" + name + b":"))
            lines.append(cut(block, spans) if spans else block)
        else:
            drop = {low for low, _ in dropped} | set(named)
            for name, value in req.headers:
                if name.lower() not in drop:
                    lines.append(b"\r\n" + name + b": " + value)
        if not req.host:            # HTTP/1.0 without Host, forwarded as HTTP/1.1, which must have one
            lines.append(b"\r\nHost: " + self.backend.address.encode())
        client = self.client.client_bytes
        xff = req.xff
        lines.append(b"\r\nX-Forwarded-For: " + (xff + b", " + client if xff else client))
        lines.append(b"\r\nX-Forwarded-Proto: " + self.client.scheme)
        if req.host:
            lines.append(b"\r\nX-Forwarded-Host: " + req.host_bytes)
        lines.append(b"\r\nX-Request-ID: " + self.request_id)
        if req.upgrade:
            lines.append(b"\r\nConnection: Upgrade")
        elif req.chunked:
            lines.append(b"\r\nTransfer-Encoding: chunked")
        lines.append(b"\r\n\r\n")
        return b"".join(lines)

    def _connect(self) -> None:
        self.attempts += 1
        backend = self.backend
        while backend.idle:
            conn = backend.idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():   # alive()
                self.reused = True
                self._attach(conn)
                return
        asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        backend = self.backend
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(backend), backend.config.host, backend.config.port),
                self.policy.timeouts.connect)
        except (TimeoutError, OSError) as exc:
            self._connect_failed(exc)
            return
        if self.finished:
            conn.close()
            return
        self._attach(conn)

    def _connect_failed(self, exc: BaseException) -> None:
        backend = self.backend
        code = getattr(exc, "errno", None)
        reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else \
            (os.strerror(code).lower() if code else str(exc) or type(exc).__name__)
        if code in LOCAL_ERRNOS:
            # The proxy's own shortage (file descriptors, buffers): another backend would fail alike, and
            # this one is not to blame.
            log.error("cannot connect to %s: %s (a limit of the proxy itself; the backend is not blamed)",
                      backend.address, reason)
            self.blame = False
            self.fail(502, f"bad gateway: the proxy cannot open a connection: {reason}")
            return
        log.warning("connect to %s failed: %s", backend.address, reason)
        backend.connect_errors += 1                 # gslb_proxy_connect_errors_total (gslb/proxy/metrics.py)
        if refused(exc):
            backend.eject(reason)
            if self._next_upstream():
                return
        elif self.req.method in IDEMPOTENT and self._switchable():
            pick = self.policy.retry(self.req, self.pick, self.tried or [backend], self.retried)
            if pick is not None:
                self.retried += 1
                backend.passive(False)
                self._switch(pick)
                return
        self.fail(502, f"bad gateway: {backend.address}: {reason}")

    def _switchable(self) -> bool:
        return not self.finished and not self.head_sent and not self.client.closed

    def _next_upstream(self) -> bool:
        """A GET or HEAD that nothing answered yet goes to the pool's next untried backend (not counted
        against `retries` nor the retry budget: each try costs one refused connection, and the pool bounds
        them). False when there is none left."""
        if self.req.method not in NEXT_UPSTREAM or not self._switchable():
            return False
        pick = self.policy.retry(self.req, self.pick, self.tried or [self.backend], None)
        if pick is None:
            return False
        self._switch(pick)
        return True

    def _switch(self, pick: Pick) -> None:
        """Move to another backend of the pool (the policy re-pins a sticky client: pick.cookie)."""
        other = pick.backend
        log.info("retrying %s %s on %s after %s failed", self.req.method.decode(), self.req.path, other.address,
                 self.backend.address)
        if self.tried is None:
            self.tried = [self.backend]
        self.backend.retries += 1                   # gslb_proxy_retries_total (gslb/proxy/metrics.py)
        self.backend.active -= 1
        self.backend = other
        self.pick = pick
        other.active += 1
        self.tried.append(other)
        self.upstream = None
        self.reused = False
        if pick.cookie:
            self.set_cookie = pick.cookie
        self._connect()

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.exchange = self
        conn.start_response(self.req.method == b"HEAD")
        if self.held:
            # before the writes: a full upstream buffer pauses the client again (pause_writing)
            self.held = False
            if not self.body_done and not self.client.closed:
                self.client.resume()
        conn.transport.write(self._head())
        if self.pending:
            for piece in self.pending:
                conn.transport.write(piece)
            self.pending = None
            self.pending_bytes = 0
        if self.body_done and self.req.chunked:
            conn.transport.write(b"0\r\n\r\n")
        self.activity = time.monotonic()

    def request_body(self, data: bytes) -> None:
        if self.finished:
            return                      # answered early (e.g. an error before the upload ended)
        piece = chunk(data) if self.req.chunked else data
        if self.upstream is not None:
            self.upstream.transport.write(piece)
        else:
            if self.pending is None:
                self.pending = []
            self.pending.append(piece)
            self.pending_bytes += len(piece)
            if self.pending_bytes > PENDING_LIMIT and not self.held:
                self.held = True         # a slow connect must not make us buffer a whole upload
                self.client.pause()

    def request_done(self) -> None:
        self.body_done = True
        if self.finished:
            return
        if self.upstream is not None and self.req.chunked:
            self.upstream.transport.write(b"0\r\n\r\n")

    def upgrade_data(self, rest: bytes) -> None:
        if rest:
            self.request_body(rest)

    # -- response side ----------------------------------------------------------------------------
    def response_head(self, status: int, status_line: bytes, block: bytes, chunked: bool, has_length: bool) -> None:
        """Send the backend's response head on: its status line and header lines as forwarded
        (response_lines), then Transfer-Encoding, Connection, Set-Cookie and X-Request-ID as needed."""
        self.status = status
        if self.client.closed:
            return
        lines = [status_line, block]
        if status == 101:
            lines.append(b"\r\nConnection: Upgrade")
        http10 = self.req.version == "1.0"
        # an HTTP/1.0 client knows no chunks: its body is delimited by closing the connection instead
        self.response_chunked = chunked and not http10
        if self.response_chunked:
            lines.append(b"\r\nTransfer-Encoding: chunked")
        # without a length or chunks the body runs until the upstream closes: so must the client's
        self.response_close = (not has_length and not chunked and status not in (101, 204, 304)
                               and self.req.method != b"HEAD" and not 100 <= status < 200)
        self.client_close = self.response_close or (chunked and http10)
        if self.client_close or not self.req.keep_alive or self.policy.stopping:
            lines.append(b"\r\nConnection: close")
        elif http10:
            lines.append(b"\r\nConnection: keep-alive")   # 1.0 closes unless told otherwise
        if self.set_cookie:
            lines.append(b"\r\n" + self.set_cookie)
        lines.append(b"\r\nX-Request-ID: " + self.request_id + b"\r\n\r\n")
        if self.batch is not None:           # _to_client, inlined
            self.batch.append(b"".join(lines))
        else:
            self.client.transport.write(b"".join(lines))
        self.head_sent = True

    def _to_client(self, data: bytes) -> None:
        if self.batch is not None:
            self.batch.append(data)
        elif not self.client.closed:
            self.client.transport.write(data)

    def flush(self) -> None:
        """Write what one upstream read produced in one call: fewer system calls per response."""
        batch, self.batch = self.batch, None
        if batch and not self.client.closed:
            self.client.transport.write(b"".join(batch))

    def response_done(self, upstream_keep_alive: bool) -> None:
        if self.finished:
            return
        if self.response_chunked and not self.client.closed:
            self._to_client(b"0\r\n\r\n")
        self.flush()
        reuse = upstream_keep_alive and self.body_done and not self.response_close
        self._finish(reuse)
        self.client.exchange_done(self.req.keep_alive and not self.client_close and not self.policy.stopping)

    def start_tunnel(self) -> None:
        """101 Switching Protocols: from now on bytes flow both ways untouched (WebSocket)."""
        self.flush()
        conn = self.upstream
        conn.tunnel_to = self.client
        self.client.tunnel = conn
        self.client.exchange = None
        self._finish(False, keep_upstream=True)
        self.client.resume()

    # -- endings ----------------------------------------------------------------------------------
    def _finish(self, reuse: bool, keep_upstream: bool = False) -> None:
        self.finished = True
        self.policy.inflight.discard(self)
        backend = self.backend
        backend.active -= 1
        backend.requests += 1
        elapsed = time.monotonic() - self.started
        backend.latency.add(elapsed * 1000)
        backend.observe(elapsed)                    # gslb_proxy_upstream_seconds (gslb/proxy/metrics.py)
        if self.blame:
            backend.passive(self.status < 500 or self.status == 0 and not self.head_sent)
        conn = self.upstream
        if conn is not None and not keep_upstream:
            conn.exchange = None
            if reuse and len(backend.idle) < MAX_IDLE and not self.policy.stopping:
                if self.client.blocked:
                    # the last write to a slow client paused this connection's reading just now
                    conn.transport.resume_reading()
                backend.idle.append(conn)
            else:
                conn.close()
        self.policy.finish(self.req, backend, self.status or 502, elapsed)

    def fail(self, status: int, text: str) -> None:
        """The upstream failed: 502/504 if nothing was sent yet, else cut the client connection."""
        if self.finished:
            return
        self.status = status
        self.batch = None
        self._finish(False)            # counts the failure for the backend (status >= 500)
        if self.head_sent or self.client.closed:
            self.client.transport.close()
            return
        self.client.transport.write(simple_response(status, text, close=not self.body_done))
        if self.body_done:
            self.client.exchange_done(self.req.keep_alive)
        else:
            self.client.transport.close()

    def upstream_lost(self, exc: Exception | None, got_bytes: bool) -> None:
        """The backend connection closed before the response ended."""
        if self.finished:
            return
        bodiless = not self.req.chunked and not self.req.length
        if self.reused and not got_bytes and self.req.method in IDEMPOTENT and bodiless:
            # A pooled connection the backend had just closed (keep-alive timeout): try a fresh one.
            self.reused = False
            self.upstream = None
            asyncio.ensure_future(self._open())
            return
        if not got_bytes and bodiless:
            # A fresh connection closed or reset before any byte of the response: the request may have
            # hit a backend dying or restarting; a GET or HEAD goes to the next one. Counted as one
            # passive failure, not an ejection: a request that makes every backend reset must not
            # eject the whole pool.
            log.warning("%s closed the connection before answering %s %s", self.backend.address,
                        self.req.method.decode(), self.req.path)
            self.backend.passive(False)
            self.status = 0
            if self._next_upstream():
                return
            self.blame = False                       # already counted just above
        self.fail(502, f"bad gateway: {self.backend.address} closed the connection")

    def check_deadlines(self, now: float) -> None:
        """Called by the proxy's sweep: 504 when the backend is silent too long or the request too slow."""
        timeouts = self.policy.timeouts
        if self.upstream is not None and not self.client.blocked and now - self.activity > timeouts.read:
            self.fail(504, f"gateway timeout: {self.backend.address} sent nothing for {timeouts.read:g} s")
        elif now - self.started > timeouts.total:
            self.fail(504, f"gateway timeout: the request took longer than {timeouts.total:g} s")

    def client_gone(self) -> None:
        if not self.finished:
            self.status = self.status or 499
            self._finish(False)

    def abort(self) -> None:
        if not self.finished:
            self._finish(False)


class UpstreamConnection(asyncio.Protocol):
    """A connection to a backend; parses responses for whichever exchange holds it."""

    # slots: faster attribute access on the request path, no dict per object
    __slots__ = (
        "backend",
        "closed",
        "exchange",
        "got_bytes",
        "head_buf",
        "head_done",
        "head_only",
        "head_seen",
        "parser",
        "parser_clean",
        "transport",
        "tunnel_to",
    )

    def __init__(self, backend: BackendState):
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.tunnel_to: ClientConnection | None = None
        self.parser = None
        self.head_only = False
        self.closed = False
        self.got_bytes = False          # any byte of the current response (a retry is safe until then)
        self.head_done = False          # the final response head has been parsed
        self.head_seen = 0              # bytes of the response head(s) so far, interim 1xx included
        # The bytes of the response head so far: llhttp is strict (CRLF only, no obs-fold), so the head
        # is everything up to the first blank line, and its header lines can pass through as received.
        self.head_buf = b""
        self.parser_clean = False       # the parser ended a response cleanly: it can read the next one

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def alive(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def start_response(self, head_only: bool) -> None:
        if not self.parser_clean or self.parser is None:
            self.parser = httptools.HttpResponseParser(self)
        self.parser_clean = False
        self.head_only = head_only
        self.head_buf = b""
        self.got_bytes = self.head_done = False
        self.head_seen = 0

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        peer = self.tunnel_to or (self.exchange.client if self.exchange else None)
        if peer is not None and peer.transport:
            peer.pause()

    def resume_writing(self) -> None:
        peer = self.tunnel_to or (self.exchange.client if self.exchange else None)
        if peer is not None and peer.transport:
            peer.resume()

    def data_received(self, data: bytes) -> None:
        if self.tunnel_to is not None:
            self.tunnel_to.transport.write(data)
            return
        if self.exchange is None or self.parser is None:
            self.close()            # bytes nobody asked for: this connection is not reusable
            return
        exchange = self.exchange
        self.got_bytes = True
        if self.head_done:
            # Only a finished head, then body bytes, show the backend is answering: a head trickled in
            # a byte at a time must not hold the request past the read timeout.
            exchange.activity = time.monotonic()
        else:
            self.head_buf = self.head_buf + data if self.head_buf else data
            self.head_seen += len(data)
        exchange.batch = []
        try:
            self.parser.feed_data(data)
            if not self.head_done and self.parser is not None \
                    and self.head_seen > exchange.policy.limits.max_response_header_size:
                # httptools holds an unfinished header in memory until its end: bound it here
                self._head_too_large(exchange)
                return
            exchange.flush()
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            exchange = self.exchange
            if exchange is not None and exchange.status == 101:
                exchange.start_tunnel()
                if data[offset:]:
                    self.tunnel_to.transport.write(data[offset:])
        except httptools.HttpParserError:
            if self.exchange is not None:
                self.exchange.fail(502, f"bad gateway: {self.backend.address} sent an invalid response")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel_to is not None:
            self.tunnel_to.transport.close()
        elif self.exchange is not None:
            if self.parser is not None and self._until_close():
                self.exchange.response_done(False)
            else:
                self.exchange.upstream_lost(exc, self.got_bytes)

    def _head_too_large(self, exchange: Exchange) -> None:
        limit = exchange.policy.limits.max_response_header_size
        log.warning("%s sent response headers larger than %d bytes for %s %s: 502", self.backend.address,
                    limit, exchange.req.method.decode(), exchange.req.path)
        self.parser = None
        exchange.fail(502, f"bad gateway: {self.backend.address} sent response headers over {limit} bytes")
        self.close()

    def _until_close(self) -> bool:
        ex = self.exchange
        return ex.head_sent and ex.response_close

    # httptools callbacks: none per header (response_lines reads the head as a whole)
    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser is None or self.exchange is None:
            return
        status = parser.get_status_code()
        buf = self.head_buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:                         # cannot be (llhttp ends a head at its blank line): refuse it
            self.exchange.fail(502, f"bad gateway: {self.backend.address} sent an invalid response")
            self.close()
            return
        if 100 <= status < 200 and status != 101:
            self.head_buf = buf[end + 4:]   # an interim response: not forwarded, wait for the final one
            return
        self.head_buf = b""
        if end + 4 > self.exchange.policy.limits.max_response_header_size:
            self._head_too_large(self.exchange)
            return
        self.head_done = True
        self.exchange.activity = time.monotonic()
        first = buf.find(b"\r\n")
        status_line = buf[:first]
        block, chunked, has_length = response_lines(buf[first:end], status)
        if not status_line.startswith(b"HTTP/1.1 ") or len(status_line) < 14:
            # an HTTP/1.0 backend, or no reason phrase: the client gets an HTTP/1.1 status line
            reason = status_line[13:] or b"OK"
            status_line = b"HTTP/1.1 %d %s" % (status, reason)
        self.exchange.response_head(status, status_line, block, chunked, has_length)
        if self.head_only:
            # a HEAD response has headers only, whatever Content-Length says
            exchange = self.exchange
            self.parser = None
            exchange.response_done(parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None and not ex.client.closed:      # Exchange._to_client, inlined: per body piece
            data = chunk(body) if ex.response_chunked else body
            if ex.batch is not None:
                ex.batch.append(data)
            else:
                ex.client.transport.write(data)

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is not None and self.parser is not None and ex.status and not 100 <= ex.status < 200:
            self.parser_clean = True
            ex.response_done(self.parser.should_keep_alive())
