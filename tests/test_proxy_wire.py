"""The wire code (gslb/proxy/http.py) driven by a fake policy through policy.Policy (begin/retry/finish):
real sockets, real backends, no routes or balancers. Also: header lines pass through byte for byte
(order, case, duplicates) minus the hop-by-hop ones, both ways."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from httpsite import LoopThread
from proxyharness import Backend, RawBackend

from gslb.proxy.config import Backend as BackendConfig
from gslb.proxy.config import Limits, Timeouts, UpstreamPool
from gslb.proxy.http import ClientConnection
from gslb.proxy.policy import Pick, Refusal
from gslb.proxy.state import BackendState


def state_of(address: str) -> BackendState:
    host, port = address.rsplit(":", 1)
    config = BackendConfig(host, int(port))
    return BackendState(config, UpstreamPool("fake", (config,)))


class FakePolicy:
    """Answers begin with a fixed backend or refusal, records every call."""

    def __init__(self, backends: list[BackendState], refusal: Refusal | None = None):
        self.limits, self.timeouts = Limits(), Timeouts()
        self.stopping = False
        self.connections: set = set()
        self.inflight: set = set()
        self.backends, self.refusal = backends, refusal
        self.calls: list[tuple] = []

    def begin(self, req):
        self.calls.append(("begin", req.method, req.host, req.path))
        return self.refusal or Pick("the-pool", self.backends[0], b"")

    def retry(self, req, pick, tried, retried):
        self.calls.append(("retry", pick.pool, [b.address for b in tried], retried))
        rest = [b for b in self.backends if b not in tried]
        return Pick(pick.pool, rest[0], b"Set-Cookie: pin=2") if rest else None

    def finish(self, req, backend, status, elapsed):
        self.calls.append(("finish", backend.address if backend else None, status))


class Wire(LoopThread):
    """A listener whose connections are ClientConnections of `policy`."""

    def __init__(self, policy: FakePolicy):
        super().__init__()
        self.server = self.run(self._listen(policy))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _listen(self, policy):
        return await asyncio.get_running_loop().create_server(lambda: ClientConnection(policy, False), "127.0.0.1", 0)

    def exchange(self, raw: bytes) -> bytes:
        """Send one request, return the whole response (the proxy is told to close after it)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(raw)
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks)

    def close(self) -> None:
        self.run(self._close())
        super().close()

    async def _close(self) -> None:
        self.server.close()


@pytest.fixture
def wire():
    made = []

    def make(policy):
        made.append(Wire(policy))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_a_pick_is_forwarded_and_finished_once(wire):
    backend = Backend("a")
    try:
        policy = FakePolicy([state_of(backend.address)])
        got = wire(policy).exchange(b"GET /x?y=1 HTTP/1.1\r\nHost: Shop.Example\r\nConnection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\na")
        assert policy.calls == [("begin", b"GET", "shop.example", "/x"), ("finish", backend.address, 200)]
        assert backend.hits == 1 and not policy.inflight
    finally:
        backend.close()


def test_a_refusal_is_answered_by_the_wire_without_a_backend(wire):
    policy = FakePolicy([], Refusal(429, "slow down", extra=b"Retry-After: 7\r\n"))
    got = wire(policy).exchange(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 429 Too Many Requests\r\n") and b"\r\nRetry-After: 7\r\n" in got
    assert got.endswith(b"slow down\n")
    assert policy.calls == [("begin", b"GET", "a", "/"), ("finish", None, 429)]


def test_a_refused_connection_asks_the_policy_for_another_backend(wire):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"     # bound, not listening: refused
        live = Backend("b")
        try:
            policy = FakePolicy([state_of(dead), state_of(live.address)])
            got = wire(policy).exchange(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        finally:
            live.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nSet-Cookie: pin=2\r\n" in got
    assert policy.calls == [("begin", b"GET", "a", "/"), ("retry", "the-pool", [dead], None),
                            ("finish", live.address, 200)]


def test_header_lines_pass_through_as_sent_minus_hop_by_hop(wire):
    seen: list[bytes] = []

    async def handler(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nServer: raw\r\nconnection: keep-alive, X-Hop-Back\r\n"
                     b"X-Hop-Back: 1\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nKeep-Alive: timeout=5\r\n"
                     b"ETag:   \"e1\"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()                        # until the proxy closes

    backend = RawBackend(handler)
    try:
        policy = FakePolicy([state_of(backend.address)])
        got = wire(policy).exchange(
            b"GET /p HTTP/1.1\r\nHost: h.test\r\nuser-AGENT: UA/1\r\nX-Dup: 1\r\nx-dup: 2\r\n"
            b"Connection: close, X-Hop\r\nX-Hop: secret\r\nTE: trailers\r\nCookie:  a=1; b=2\r\n\r\n")
    finally:
        backend.close()
    head = seen[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /p HTTP/1.1"
    # the client's lines in its order, case and spacing; hop-by-hop and Connection-named ones dropped
    assert lines[1:6] == ["Host: h.test", "user-AGENT: UA/1", "X-Dup: 1", "x-dup: 2", "Cookie:  a=1; b=2"]
    assert "X-Hop" not in head and "TE:" not in head and "Connection" not in head
    assert "\r\nX-Forwarded-For: 127.0.0.1\r\n" in head and "\r\nX-Forwarded-Host: h.test\r\n" in head
    response = got.decode()
    assert response.startswith("HTTP/1.1 200 OK\r\nServer: raw\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n"
                               "ETag:   \"e1\"\r\nContent-Length: 2\r\nConnection: close\r\nX-Request-ID: ")
    assert "X-Hop-Back" not in response and "Keep-Alive" not in response and response.endswith("\r\n\r\nok")


@pytest.mark.parametrize("pieces", [1, 3, 40], ids=["one read", "three reads", "forty reads"])
def test_a_head_in_one_read_or_in_pieces_gives_the_same_request(wire, pieces):
    """One read that is exactly a head is parsed without a callback per header; a head in pieces with one;
    routes and balancers read the same headers and the backend gets the same lines either way."""
    seen: list[bytes] = []

    async def handler(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        await reader.read()

    class Asking(FakePolicy):
        def begin(self, req):
            self.calls.append(("headers", req.header("x-route"), req.header("COOKIE"), req.cookie("pin"),
                               req.header("absent")))
            return super().begin(req)

    backend = RawBackend(handler)
    head = (b"GET /p HTTP/1.1\r\nHost: h.test\r\nX-Route: blue\r\nCookie: a=1; pin=xyz\r\n"
            b"Connection: close\r\n\r\n")
    try:
        policy = Asking([state_of(backend.address)])
        w = wire(policy)
        with socket.create_connection(("127.0.0.1", w.port), timeout=5) as sock:
            size = -(-len(head) // pieces)
            for i in range(0, len(head), size):
                sock.sendall(head[i:i + size])
                if pieces > 1:
                    time.sleep(0.01)          # separate reads on the proxy's side (most of the time)
            got = b""
            while data := sock.recv(65536):
                got += data
    finally:
        backend.close()
    assert got.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert policy.calls[0] == ("headers", "blue", "a=1; pin=xyz", "xyz", None)
    assert seen[0].split(b"\r\nX-Forwarded-For:")[0] == (b"GET /p HTTP/1.1\r\nHost: h.test\r\nX-Route: blue\r\n"
                                                          b"Cookie: a=1; pin=xyz")
