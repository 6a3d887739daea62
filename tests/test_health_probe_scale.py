"""What lets one prober check many targets: the lean status-only http check (against real servers), the
reported RTT's band (jitter inside it sends nothing), and a Pusher that backs off from a server that does
not answer instead of sending it full reports."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from httpsite import free_port

from gslb import __version__
from gslb.cmds.probe import Pusher
from gslb.config.model import Check, Target
from gslb.health.checks import probe
from gslb.health.prober import RTT_BAND_MS, rtt_to_report
from gslb.health.snapshot import RegionView

HOST = "127.0.0.91"


async def _site(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port(HOST)
    await web.TCPSite(runner, HOST, port).start()
    return runner, port


def test_status_only_http_check_reads_the_status_and_sends_the_headers():
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, "host": request.headers.get("Host"),
                     "ua": request.headers.get("User-Agent"), "x": request.headers.get("X-Probe")})
        return web.Response(status=503 if request.path == "/down" else 200, text="a body that is not read")

    async def scenario() -> None:
        runner, port = await _site(handler)
        try:
            ok = await probe(Target(HOST, Check(type="http", port=port, path="/h?x=1",
                                                headers=(("X-Probe", "yes"),))))
            assert ok.ok and ok.rtt_ms is not None and ok.error is None
            assert seen[-1] == {"path": "/h?x=1", "host": f"{HOST}:{port}", "ua": f"gslb/{__version__}", "x": "yes"}
            down = await probe(Target(HOST, Check(type="http", port=port, path="/down")))
            assert not down.ok and down.rtt_ms is not None
            assert down.error == f"GET http://{HOST}:{port}/down: 503, expected 200"
            named = await probe(Target(HOST, Check(type="http", port=port, path="/", host="www.example.test")))
            assert named.ok and seen[-1]["host"] == "www.example.test"
        finally:
            await runner.cleanup()
        # The server is gone: refused, the endpoint's fault (not the prober's).
        gone = await probe(Target(HOST, Check(type="http", port=port, path="/")))
        assert not gone.ok and not gone.local and gone.error == f"GET http://{HOST}:{port}/: connection refused"

    asyncio.run(scenario())


@pytest.mark.parametrize("reply, error", [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1 response: b'SSH-2.0-OpenSSH_9.2'"),
    (b"HTTP/1.1 200 OK\r\nContent-", "ConnectionResetError"),      # closed before the head ended
    (None, "timeout after 0.3 s"),                                  # never answers
])
def test_status_only_http_check_fails_on_what_is_not_a_whole_response(reply, error):
    async def scenario() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if reply is None:
                await asyncio.sleep(5)
            else:
                writer.write(reply)
                await writer.drain()
            writer.close()

        port = free_port(HOST)
        server = await asyncio.start_server(answer, HOST, port)
        try:
            result = await probe(Target(HOST, Check(type="http", port=port, path="/", timeout=0.3)))
        finally:
            server.close()
        assert not result.ok and error in (result.error or "")
        assert result.timed_out == (reply is None)

    asyncio.run(scenario())


def test_reported_rtt_moves_only_past_its_band():
    assert rtt_to_report(None, 0.4) == 0.4                      # the first measurement goes at once
    assert rtt_to_report(0.4, 0.4 + RTT_BAND_MS * 0.9) == 0.4   # loopback jitter: nothing to report
    assert rtt_to_report(0.4, 0.4 + RTT_BAND_MS) == 0.4 + RTT_BAND_MS
    assert rtt_to_report(200.0, 208.0) == 200.0                 # 4 %: inside the 5 % band
    assert rtt_to_report(200.0, 190.0) == 190.0                 # 5 %
    assert rtt_to_report(3.0, None) is None


def test_a_pusher_backs_off_from_a_server_that_does_not_answer_and_sends_no_full_report():
    """A server that takes a delta too slowly to answer gets a delta on that unanswered report next (it
    did take it here), not a full report, and not before the backoff."""
    posts: list[dict] = []
    stall = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        posts.append({**body, "at": time.monotonic()})
        if len(posts) == 2:
            await asyncio.sleep(1.0)         # past the pusher's timeout: it never sees this answer
            stall.set()
        if len(posts) == 3 and body.get("base") != posts[1]["seq"]:
            return web.json_response({"need_full": True, "deltas": True}, status=409)
        return web.json_response({"ok": True, "deltas": True})

    t1 = Target("192.0.2.1", Check(type="http", port=80))
    t2 = Target("192.0.2.2", Check(type="http", port=80))

    async def until(check, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        runner, port = await _site(handler)
        pusher = Pusher([f"http://{HOST}:{port}"], "backoff-test-secret-0123456789", 0.2)
        pusher.timeout = 0.3
        url = pusher.urls[0]
        await pusher.start()
        try:
            pusher("eu-west-1", {t1: RegionView("up", 5.0), t2: RegionView("up", 5.0)})
            await until(lambda: pusher.sent[url] == 1)
            pusher("eu-west-1", {t1: RegionView("down", None, "refused"), t2: RegionView("up", 5.0)})
            await until(lambda: pusher.failed[url] == 1)
            failed_at = time.monotonic()
            pusher("eu-west-1", {t1: RegionView("down", None, "refused"), t2: RegionView("down", None, "503")})
            await until(lambda: pusher.sent[url] == 2 and stall.is_set())
        finally:
            await pusher.stop()
            await runner.cleanup()
        first, stalled, after = posts[0], posts[1], posts[2]
        assert "base" not in first and stalled["base"] == first["seq"]
        # The next one builds on the unanswered report, sends only what moved since, and waited.
        assert after["base"] == stalled["seq"] and [v["state"] for v in after["views"]] == ["down"]
        assert after["at"] - failed_at >= 0.15 and len(posts) == 3 and pusher.resyncs[url] == 0

    asyncio.run(scenario())
