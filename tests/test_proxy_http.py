"""HTTP/1.1 wire rules of the proxy, spoken byte by byte over raw loopback sockets: pipelining,
HTTP/1.0 clients, headers named by Connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

from httpsite import LoopThread
from proxyharness import config


def read_response(f) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body from a socket file."""
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, f.read(int(headers.get("content-length", 0)))


def test_pipelined_requests_are_answered_in_order(backends, proxy):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.4
    pools = (f'  slow: {{backends: [{{address: "{slow.address}"}}]}}\n'
             f'  fast: {{backends: [{{address: "{fast.address}"}}]}}\n')
    routes = "  - {host: slow.test, pool: slow}\n  - {host: fast.test, pool: fast}\n"
    px = proxy(config([fast], extra_pool=pools, routes=routes))
    with socket.create_connection((px.host, px.port), timeout=5) as sock:
        # all four in one write: the proxy parses them together and must still answer them one by one
        sock.sendall(b"GET / HTTP/1.1\r\nHost: slow.test\r\nX-Request-ID: r1\r\n\r\n"
                     b"GET / HTTP/1.1\r\nHost: fast.test\r\nX-Request-ID: r2\r\n\r\n"
                     b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: fast.test\r\nX-Request-ID: r3\r\nContent-Length: 5\r\n\r\nhello")
        f = sock.makefile("rb")
        got = [read_response(f) for _ in range(4)]
    assert [(s, h.get("x-request-id")) for s, h, _ in got] == [(200, "r1"), (200, "r2"), (404, None), (200, "r3")]
    assert got[0][2] == b"slow" and got[1][2] == b"fast"
    assert json.loads(got[3][2])["length"] == 5


def test_pipelined_request_waits_while_the_first_streams_its_response(backends, proxy):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.3
    pools = f'  fast: {{backends: [{{address: "{fast.address}"}}]}}\n'
    px = proxy(config([slow], extra_pool=pools, routes="  - {host: fast.test, pool: fast}\n  - {default: true, pool: app}\n"))
    size = 3 * 1024 * 1024
    with socket.create_connection((px.host, px.port), timeout=10) as sock:
        sock.sendall(f"GET /big/{size} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: fast.test\r\n\r\n".encode())
        f = sock.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 200")
        while (line := f.readline()) != b"\r\n":
            assert not line.lower().startswith(b"content-length")
        total = 0
        while (size_line := f.readline().strip()) != b"0":
            n = int(size_line, 16)
            total += len(f.read(n))
            f.readline()
        f.readline()
        assert total == size
        assert read_response(f)[2] == b"fast"


def test_http10_client_gets_no_chunks_and_a_closed_connection(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    with socket.create_connection((px.host, px.port), timeout=5) as sock:
        sock.sendall(b"GET /big/100000 HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):             # the proxy must close to end the body
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower()
    assert body == b"y" * 100000


def test_http10_keep_alive_is_confirmed(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    with socket.create_connection((px.host, px.port), timeout=5) as sock:
        f = sock.makefile("rb")
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(f)
            assert (status, headers.get("connection"), body) == (200, "keep-alive", b"a")


def test_headers_named_by_connection_are_not_forwarded(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    with socket.create_connection((px.host, px.port), timeout=5) as sock:
        sock.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\n"
                     b"X-Public: 2\r\n\r\n")
        _, _, body = read_response(sock.makefile("rb"))
    seen = {k.lower() for k in json.loads(body)["headers"]}
    assert "x-public" in seen and "x-secret" not in seen


def test_an_upload_waiting_for_a_slow_connect_is_not_buffered_whole(proxy):
    # A backend whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    filler = socket.create_connection(stuck.getsockname())
    address = "{}:{}".format(*stuck.getsockname())
    px = proxy(f"listen: [127.0.0.1:0]\nadmin: 127.0.0.1:0\naccess_log: false\ntimeouts: {{connect: 2}}\n"
               f"pools: {{app: {{backends: ['{address}']}}}}\nroutes: [{{default: true, pool: app}}]\n")
    size = 64 * 1024 * 1024
    try:
        with socket.create_connection((px.host, px.port), timeout=5) as sock:
            sock.sendall(f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
            sock.setblocking(False)
            block, sent, until = b"u" * 65536, 0, time.monotonic() + 1.0
            while time.monotonic() < until and sent < size:
                try:
                    sent += sock.send(block)
                except BlockingIOError:
                    time.sleep(0.01)
            # what the kernel buffers is a few MiB; the rest waits in the client, not in the proxy
            assert sent < size // 2
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 502")
    finally:
        filler.close()
        stuck.close()


def test_a_client_that_stops_reading_is_not_mistaken_for_a_silent_backend(proxy):
    # The client pauses longer than the read timeout: the proxy stops reading the backend meanwhile,
    # which is back-pressure, not backend silence, so the download must complete; the backend
    # connection, pooled after it, must read again for the next request.
    size = 48 * 1024 * 1024           # more than the kernel buffers between backend, proxy and client
    body = b"y" * size
    loop = LoopThread()

    async def handle(reader, writer):
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /big"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                    writer.write(body)
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    server = loop.run(asyncio.start_server(handle, "127.0.0.1", 0))
    address = "{}:{}".format(*server.sockets[0].getsockname()[:2])
    px = proxy(f"listen: [127.0.0.1:0]\nadmin: 127.0.0.1:0\naccess_log: false\ntimeouts: {{read: 0.5}}\n"
               f"pools: {{app: {{backends: ['{address}']}}}}\nroutes: [{{default: true, pool: app}}]\n")
    try:
        with socket.create_connection((px.host, px.port), timeout=10) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            f = sock.makefile("rb")
            while f.readline() != b"\r\n":
                pass
            time.sleep(1.5)
            got = 0
            while got < size and (piece := f.read(1 << 20)):
                got += len(piece)
            assert got == size
        with socket.create_connection((px.host, px.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock.makefile("rb"))[:3:2] == (200, b"ok")
    finally:
        loop.run(_close(server))
        loop.close()


async def _close(server: asyncio.Server) -> None:
    server.close()
