"""Incremental prober reports over real HTTP against a real server: a full report, then deltas on top of
it; a delta on another base (a gap) is answered need_full and applies nothing; the replay rules still
hold for deltas; a prober's Pusher resyncs at once after a gap, and a restarted prober starts with a full
report."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from httpsite import free_port

from gslb.cmds.probe import Pusher
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import RegionView

A, B = "127.0.0.83", "127.0.0.84"
SECRET = "incremental-test-shared-secret"
REGION = "eu-west-1"


def zone(port: int) -> str:
    return f"""\
origin: inc.test.
soa: {{mname: ns1.inc.test., rname: h.inc.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  www: {{pool: web}}
pools:
  web:
    policy: failover
    check: {{type: http, port: {port}, path: /healthz, interval: 0.25}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, endpoints: [{B}]}}
"""


@pytest.fixture
def srv(serve):
    config = f"health:\n  embedded: false\n  secret: {SECRET}\n  report_interval: 0.25\n"
    return serve({"inc.yaml": zone(free_port(A))}, config_yaml=config)


def send(srv, body: bytes, at: float | None = None, header: str | None = None) -> tuple[int, dict]:
    headers = {HEADER: header or sign(SECRET, body, at, REGION), "Content-Type": "application/json"}
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", data=body, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def targets(srv) -> dict:
    """address -> target, of the targets the server wants probed."""
    return {t.address: t for t in srv.server.health_service.known_ids.values()}


def state_of(srv, address: str) -> str | None:
    """The region's view of an address, as the server holds it (None: no view)."""
    rep = srv.server.health_service.monitor.regions.get(REGION)
    view = rep.views.get(targets(srv)[address]) if rep is not None else None
    return None if view is None else view.state


def wait_until(check, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_deltas_apply_on_their_base_and_a_gap_asks_for_a_full_report(srv):
    t = targets(srv)
    full = encode_report(REGION, 1.0, {t[A]: RegionView("up"), t[B]: RegionView("up")}, run="r1", seq=1)
    assert send(srv, full) == (200, {"ok": True, "accepted": 2, "deltas": True})

    delta = encode_report(REGION, 1.0, {t[A]: RegionView("down", error="refused")}, run="r1", seq=2, base=1)
    assert send(srv, delta) == (200, {"ok": True, "accepted": 1, "deltas": True})
    assert (state_of(srv, A), state_of(srv, B)) == ("down", "up")     # B kept from the full report

    # A delta on a report this server never took (report 3 lost on the way): nothing of it applies.
    gap = encode_report(REGION, 1.0, {t[B]: RegionView("down")}, run="r1", seq=5, base=3)
    status, answer = send(srv, gap)
    assert status == 409 and answer["need_full"] is True
    assert state_of(srv, B) == "up"
    assert srv.server.health_service.monitor.gaps == 1

    # A restarted prober (a new run) cannot continue the old run's sequence either.
    restarted = encode_report(REGION, 1.0, {t[B]: RegionView("down")}, run="r2", seq=2, base=1)
    assert send(srv, restarted)[0] == 409
    assert state_of(srv, B) == "up"

    # Its full report replaces everything, and deltas on it apply; a target gone is dropped.
    assert send(srv, encode_report(REGION, 1.0, {t[A]: RegionView("up"), t[B]: RegionView("up")},
                                   run="r2", seq=1))[0] == 200
    assert send(srv, encode_report(REGION, 1.0, {}, run="r2", seq=2, base=1, gone=[t[B]]))[0] == 200
    assert (state_of(srv, A), state_of(srv, B)) == ("up", None)
    health = json.load(urllib.request.urlopen(f"http://{srv.api[0]}:{srv.api[1]}/v1/health", timeout=10))
    assert health["reports"]["gaps"] == 2
    assert health["reports"]["ingest"]["delta"]["count"] == 2


def test_replay_rules_hold_for_deltas(srv):
    t = targets(srv)
    now = time.time()
    full = encode_report(REGION, 1.0, {t[A]: RegionView("up"), t[B]: RegionView("up")}, run="r1", seq=1)
    assert send(srv, full, at=now - 2)[0] == 200
    delta = encode_report(REGION, 1.0, {t[A]: RegionView("down")}, run="r1", seq=2, base=1)
    header = sign(SECRET, delta, now - 1, REGION)
    assert send(srv, delta, header=header)[0] == 200
    # The same signed delta again: an exact replay, refused before it is parsed.
    status, answer = send(srv, delta, header=header)
    assert status == 409 and "replay" in answer["error"] and "need_full" not in answer
    # A delta signed before the last report taken from the region: refused (it would roll the view back).
    older = encode_report(REGION, 1.0, {t[A]: RegionView("up")}, run="r1", seq=3, base=2)
    status, answer = send(srv, older, at=now - 1.5)
    assert status == 409 and "older than the last" in answer["error"]
    assert state_of(srv, A) == "down"
    # Signed with another key: refused, not a gap.
    status, _ = send(srv, older, header=sign("not-the-key", older, now, REGION))
    assert status == 401 and srv.server.health_service.monitor.gaps == 0


def test_a_pusher_sends_deltas_resyncs_after_a_gap_and_a_restarted_prober_starts_full(srv):
    t = targets(srv)
    base_url = f"http://{srv.api[0]}:{srv.api[1]}"
    monitor = srv.server.health_service.monitor

    async def scenario() -> None:
        pusher = Pusher([base_url], SECRET, 0.25)
        url = pusher.urls[0]
        await pusher.start()
        try:
            pusher(REGION, {t[A]: RegionView("up", 5.0), t[B]: RegionView("up", 5.0)})
            await until(lambda: pusher.bytes_sent[url]["full"] > 0 and state_of(srv, A) == "up")
            # Only the moved view goes: an RTT within the same step is not news.
            pusher(REGION, {t[A]: RegionView("down", None, "refused"), t[B]: RegionView("up", 5.4)})
            await until(lambda: state_of(srv, A) == "down")
            assert pusher.bytes_sent[url]["delta"] > 0 and pusher.sent[url] == 2
            # The server loses what it held (as after a restart): the next delta is a gap, and the
            # full report follows at once, not a report interval later.
            srv.call(monitor.regions.pop, REGION)
            pusher(REGION, {t[A]: RegionView("down", None, "refused"), t[B]: RegionView("down", None, "503")})
            await until(lambda: state_of(srv, B) == "down" and state_of(srv, A) == "down")
            assert pusher.resyncs[url] == 1 and monitor.gaps == 1
        finally:
            await pusher.stop()
        run = monitor.regions[REGION].run
        # A restarted prober: a new run, whose first report is full (no gap on the server).
        again = Pusher([base_url], SECRET, 0.25)
        await again.start()
        try:
            again(REGION, {t[A]: RegionView("up", 5.0), t[B]: RegionView("up", 5.0)})
            await until(lambda: state_of(srv, A) == "up" and state_of(srv, B) == "up")
            assert again.bytes_sent[again.urls[0]]["full"] > 0 and again.resyncs[again.urls[0]] == 0
            assert monitor.regions[REGION].run == again.run != run and monitor.gaps == 1
        finally:
            await again.stop()

    async def until(check, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
