"""Checks against real servers (http, https, tcp, dns), and the rise/fall and quorum tables."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
from aiohttp import web
from httpsite import free_port

from gslb.config.model import Check, Target
from gslb.health.checks import probe
from gslb.health.quorum import quorum
from gslb.health.snapshot import RegionView
from gslb.health.state import Ewma, RiseFall


@pytest.mark.parametrize("rise, fall, results, states", [
    (2, 2, [True, True], ["unknown", "up"]),
    (2, 2, [False, False], ["unknown", "down"]),
    (2, 2, [True, True, False, True, False, False], ["unknown", "up", "up", "up", "up", "down"]),
    (1, 3, [False, False, True, False, False, False], ["unknown", "unknown", "up", "up", "up", "down"]),
    (3, 1, [False, True, True, True], ["down", "down", "down", "up"]),
])
def test_rise_fall_state_machine(rise, fall, results, states):
    machine = RiseFall(rise, fall)
    seen = []
    for ok in results:
        machine.observe(ok)
        seen.append(machine.state)
    assert seen == states


def test_ewma_smooths_rtt():
    e = Ewma(alpha=0.5)
    assert [e.add(x) for x in (10, 20, 20)] == [10, 15, 17.5]


def v(state: str) -> RegionView:
    return RegionView(state, error="boom" if state == "down" else None)


@pytest.mark.parametrize("views, needed, state", [
    ({}, 1, "unknown"),
    ({"a": v("unknown")}, 1, "unknown"),
    ({"a": v("down")}, 1, "down"),
    ({"a": v("down"), "b": v("up"), "c": v("up")}, 2, "up"),
    ({"a": v("down"), "b": v("down"), "c": v("up")}, 2, "down"),
    ({"a": v("down"), "b": v("unknown"), "c": v("up")}, 2, "up"),
    ({"a": v("down"), "b": v("up")}, 2, "up"),          # majority of 2 is 2
])
def test_quorum_table(views, needed, state):
    assert quorum(views, needed)[0] == state


@pytest.fixture
async def http_server():
    """An aiohttp server with /ok, /fail (503), /slow (hangs) and /host (echoes the Host header)."""
    async def ok(request):
        return web.Response(text="all good here")

    async def fail(request):
        return web.Response(status=503, text="no")

    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def host(request):
        return web.Response(text=f"host={request.headers.get('Host')}")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/host", host)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def test_http_ok_has_rtt(http_server):
    r = await probe(Target("127.0.0.1", Check(type="http", port=http_server, path="/ok")))
    assert r.ok and r.rtt_ms is not None and r.rtt_ms > 0 and r.error is None


async def test_http_bad_status_says_what_was_expected(http_server):
    r = await probe(Target("127.0.0.1", Check(type="http", port=http_server, path="/fail")))
    assert not r.ok and r.error == f"GET http://127.0.0.1:{http_server}/fail: 503, expected 200"
    r = await probe(Target("127.0.0.1", Check(type="http", port=http_server, path="/fail", expect=(200, 503))))
    assert r.ok


async def test_http_body_and_host_header(http_server):
    good = Check(type="http", port=http_server, path="/host", host="www.example.test", body="host=www.example.test")
    assert (await probe(Target("127.0.0.1", good))).ok
    bad = Check(type="http", port=http_server, path="/ok", body="missing words")
    r = await probe(Target("127.0.0.1", bad))
    assert not r.ok and r.error.endswith("body does not contain 'missing words'")


async def test_http_timeout_and_refused(http_server):
    r = await probe(Target("127.0.0.1", Check(type="http", port=http_server, path="/slow", timeout=0.3)))
    assert not r.ok and r.error.endswith("timeout after 0.3 s")
    closed = free_port()
    r = await probe(Target("127.0.0.1", Check(type="http", port=closed, path="/")))
    assert not r.ok and r.error == f"GET http://127.0.0.1:{closed}/: connection refused" and r.rtt_ms is None


@pytest.fixture
async def https_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await asyncio.to_thread(
        subprocess.run, ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                         str(cert), "-days", "1", "-subj", "/CN=site.example.test"], check=True, capture_output=True)
    seen_sni = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.sni_callback = lambda sock, name, _ctx: seen_sni.append(name)

    async def ok(request):
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    yield port, seen_sni
    await runner.cleanup()


async def test_https_verify_and_sni(https_server):
    port, seen_sni = https_server
    r = await probe(Target("127.0.0.1", Check(type="https", port=port, path="/", tls_verify=True)))
    assert not r.ok and "certificate" in r.error.lower()
    r = await probe(Target("127.0.0.1", Check(type="https", port=port, path="/", tls_verify=False,
                                              sni="site.example.test")))
    assert r.ok and seen_sni[-1] == "site.example.test"


async def test_tcp_check_and_source_address():
    peers = []

    async def accept(reader, writer):
        peers.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=port)), source="127.0.0.7")
    await asyncio.sleep(0.05)
    server.close()
    assert r.ok and peers == ["127.0.0.7"]
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=free_port())))
    assert not r.ok and r.error.endswith("connection refused")


ZONE = """\
origin: d.test.
soa: {mname: ns1.d.test., rname: h.d.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {A: 192.0.2.1}
"""


async def test_dns_check_against_a_real_server(serve):
    srv = await asyncio.to_thread(serve, {"d.yaml": ZONE})
    good = Check(type="dns", port=srv.port, query="www.d.test.")
    assert (await probe(Target("127.0.0.1", good))).ok
    r = await probe(Target("127.0.0.1", Check(type="dns", port=srv.port, query="nope.d.test.")))
    assert not r.ok and r.error.endswith("NXDOMAIN with 0 answers, expected an answer")
    r = await probe(Target("127.0.0.1", Check(type="dns", port=free_port(), query="www.d.test.", timeout=0.3)))
    assert not r.ok


async def test_a_hanging_endpoint_does_not_delay_the_others():
    """Each target has its own task: a check stuck for its whole timeout leaves the others on schedule."""
    from gslb.health.prober import Prober

    async def hang(reader, writer):
        await asyncio.sleep(10)

    hanging = await asyncio.start_server(hang, "127.0.0.1", 0)
    fast_views = []
    slow = Target("127.0.0.1", Check(type="http", port=hanging.sockets[0].getsockname()[1], path="/",
                                     interval=0.2, timeout=1.5))
    fast_server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    fast = Target("127.0.0.1", Check(type="tcp", port=fast_server.sockets[0].getsockname()[1], interval=0.2))

    def report(region, views):
        fast_views.append(views[fast].updated)

    prober = Prober("test", report, report_interval=0.1)
    await prober.start()
    prober.set_targets([slow, fast])
    await asyncio.sleep(1.3)
    views = prober.views()
    await prober.stop()
    hanging.close()
    fast_server.close()
    assert views[fast].state == "up"                       # rise 2 reached within ~0.6 s
    assert views[slow].state == "unknown"                  # its first check is still hanging
    assert len(set(fast_views)) >= 4                       # the fast target kept being checked


async def test_body_match_reads_past_the_first_chunk():
    """The substring arrives in a later chunk of a streamed body: still found (within the first 64 KiB)."""
    async def streamed(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        await asyncio.sleep(0.05)              # the client sees the first chunk alone
        await resp.write(b"status=green")
        await resp.write_eof()
        return resp

    async def far(request):
        return web.Response(body=b"x" * 70000 + b"status=green")

    app = web.Application()
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/far", far)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        r = await probe(Target("127.0.0.1", Check(type="http", port=port, path="/streamed", body="status=green")))
        assert r.ok, r.error
        r = await probe(Target("127.0.0.1", Check(type="http", port=port, path="/far", body="status=green")))
        assert not r.ok and r.error.endswith("body does not contain 'status=green'")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("kind", ["tcp", "dns", "http"])
async def test_a_check_that_cannot_even_start_fails_instead_of_raising(kind):
    """An IPv6 target checked from an IPv4 source address: no socket can be made; the probe says why."""
    r = await probe(Target("::1", Check(type=kind, port=free_port())), source="127.0.0.1")
    assert not r.ok and r.rtt_ms is None
    assert "[::1]" in r.error and "address" in r.error
