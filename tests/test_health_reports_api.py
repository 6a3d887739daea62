"""Prober reports and API input over real HTTP against a real server: the signature is checked over the
bytes as sent before anything is inflated, exact replays and future stamps are refused, a region's own
key speaks only for it; override bodies are bounded and name endpoints that exist."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO
from httpsite import HttpSite, free_port
from zonetext import http_check, pool_zone

import gslb.api.health as api_health
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import RegionView

A, B = "127.0.0.81", "127.0.0.82"
SECRET = "reports-test-shared-secret"
TOKEN = "reports-test-operator-token"
KEYS = {"eu-west-1": "eu-west-1-key-0123456789", "us-east-1": "us-east-1-key-0123456789"}


def zone(port: int) -> str:
    return pool_zone("ra.test", {"a": [A], "b": [B]}, check=http_check(port, interval=0.25))


@pytest.fixture
def srv(serve):
    config = (f"health:\n  embedded: false\n  secret: {SECRET}\n  report_interval: 0.25\n"
              f"  region_keys: {{eu-west-1: {KEYS['eu-west-1']}, us-east-1: {KEYS['us-east-1']}}}\n"
              f"api: {{token: {TOKEN}}}\n")
    return serve({"ra.yaml": zone(free_port(A))}, config_yaml=config)


def url(srv, path: str) -> str:
    return f"http://{srv.api[0]}:{srv.api[1]}{path}"


def post(srv, path: str, data: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url(srv, path), data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def report(srv, region: str, state: str = "up") -> bytes:
    return encode_report(region, 1.0, {t: RegionView(state) for t in srv.server.health_service.known_ids.values()})


def send(srv, body: bytes, key: str, *, region: str | None = None, at: float | None = None,
         gzipped: bool = False) -> tuple[int, dict]:
    sent = gzip.compress(body) if gzipped else body
    headers = {HEADER: sign(key, sent, at, region), "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return post(srv, "/v1/reports", sent, headers)


def dns_answers(srv) -> bool:
    return srv.query("www.ra.test", "A", timeout=5).rcode() == 0


def test_an_unsigned_gzip_bomb_is_refused_without_inflating(srv, monkeypatch):
    """Bodies that would inflate to 64 MiB each: refused on their header or their signature; nothing is
    inflated, and DNS answers while they are being sent."""
    inflated = []
    real = api_health.inflate
    monkeypatch.setattr(api_health, "inflate", lambda *a: inflated.append(1) or real(*a))
    bomb = gzip.compress(b"{" + b" " * (64 * 2**20), 9)
    assert len(bomb) < 100_000
    host, port = srv.api
    # Two bombs in flight at once, each with half its body sent: DNS must answer meanwhile.
    conns = []
    for header in ("", f"{HEADER}: {sign('not-the-key', bomb, region='eu-west-1')}\r\n"):
        conn = socket.create_connection((host, port), timeout=10)
        conn.sendall(f"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n{header}"
                     f"Content-Length: {len(bomb)}\r\n\r\n".encode() + bomb[:len(bomb) // 2])
        conns.append(conn)
    assert dns_answers(srv)
    answers = []
    for conn in conns:
        try:
            conn.sendall(bomb[len(bomb) // 2:])
        except OSError:                   # refused on the header already, and closed: fine
            pass
        answers.append(conn.recv(4096).decode(errors="replace"))
        conn.close()
    assert answers[0].startswith("HTTP/1.1 401") and "missing X-Gslb-Signature header" in answers[0]
    assert answers[1].startswith("HTTP/1.1 401") and "bad signature" in answers[1]
    assert dns_answers(srv)
    assert inflated == []
    refused = srv.server.health_service.intake.refused
    assert refused["bad_signature"] == 2
    # The same bomb, signed with the right key: inflated only up to the cap, then refused.
    status, answer = send(srv, b"{" + b" " * (65 * 2**20), KEYS["eu-west-1"], region="eu-west-1", gzipped=True)
    assert (status, answer) == (413, {"error": "report larger than 64 MiB"})
    assert inflated == [1] and refused["too_large"] == 1
    with urllib.request.urlopen(url(srv, "/metrics"), timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'gslb_health_reports_refused_total{reason="bad_signature"} 2' in metrics


def test_an_exact_replay_and_a_future_stamp_are_refused(srv):
    body = report(srv, "eu-west-1")
    now = time.time()
    header = {HEADER: sign(KEYS["eu-west-1"], body, now, "eu-west-1"), "Content-Type": "application/json"}
    assert post(srv, "/v1/reports", body, header) == (200, {"ok": True, "accepted": 2})
    status, answer = post(srv, "/v1/reports", body, header)           # the very same, though still the newest
    assert status == 409 and "a replay" in answer["error"]
    status, answer = send(srv, body, KEYS["eu-west-1"], region="eu-west-1", at=now + 30)
    assert status == 401 and "in the future (max 5 s)" in answer["error"]
    assert send(srv, body, KEYS["eu-west-1"], region="eu-west-1", at=now + 1)[0] == 200   # skew within 5 s
    refused = srv.server.health_service.intake.refused
    assert (refused["replay"], refused["future"]) == (1, 1)


def test_one_regions_key_cannot_speak_for_another(srv):
    us = report(srv, "us-east-1", "down")
    status, answer = send(srv, us, KEYS["eu-west-1"], region="eu-west-1")
    assert status == 401 and answer["error"] == "signed for region eu-west-1 but reports region us-east-1"
    status, answer = send(srv, us, KEYS["eu-west-1"], region="us-east-1")   # claims the region, wrong key
    assert status == 401 and answer["error"].startswith("bad signature")
    status, answer = send(srv, us, SECRET)                                 # the shared secret cannot either
    assert status == 401 and "has its own key" in answer["error"]
    assert "us-east-1" not in srv.server.health_service.monitor.regions
    assert send(srv, us, KEYS["us-east-1"], region="us-east-1")[0] == 200
    assert send(srv, report(srv, "ap-southeast-1"), SECRET)[0] == 200        # no own key: the shared secret
    assert set(srv.server.health_service.monitor.regions) == {"us-east-1", "ap-southeast-1"}


def test_gslb_probe_signs_with_its_region_key(serve, tmp_path):
    port = free_port(A)
    sites = [HttpSite(A, port).start(), HttpSite(B, port).start()]
    config = (f"health: {{embedded: false, report_interval: 0.25, "
              f"region_keys: {{eu-west-1: {KEYS['eu-west-1']}}}}}\n")     # no shared secret at all
    srv = serve({"ra.yaml": zone(port)}, config_yaml=config)
    (tmp_path / "pz").mkdir()
    (tmp_path / "pz" / "ra.yaml").write_text(zone(port))
    env = {k: v for k, v in os.environ.items() if k != "GSLB_SECRET"}
    env.update(GSLB_REGION_KEY=KEYS["eu-west-1"], GSLB_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "probe", "--region", "eu-west-1", "--zones",
                             str(tmp_path / "pz"), "--interval", "0.25", "--report-to", url(srv, "")],
                            cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 15
        monitor = srv.server.health_service.monitor
        while time.monotonic() < deadline and not (
                "eu-west-1" in monitor.regions and
                {v.state for v in monitor.regions["eu-west-1"].views.values()} == {"up"}):
            time.sleep(0.05)
        assert {t.address: v.state for t, v in monitor.regions["eu-west-1"].views.items()} == {A: "up", B: "up"}
        assert srv.server.health_service.intake.refused["bad_signature"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        for site in sites:
            site.close()


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def test_override_bodies_are_bounded_and_name_endpoints_that_exist(srv):
    nested = b'{"status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer = post(srv, f"/v1/endpoints/{A}/status", nested, AUTH)
    assert status == 413 and "larger than" in answer["error"]
    nested = b'{"status": ' + b"[" * 1000 + b"]" * 1000 + b"}"                  # under the size cap, too deep
    assert post(srv, f"/v1/endpoints/{A}/status", nested, AUTH) == (
        400, {"error": "JSON body nested deeper than 32 levels"})
    assert post(srv, f"/v1/endpoints/{A}/status", b'{"status": "up"', AUTH)[0] == 400
    assert post(srv, f"/v1/endpoints/{A}/status", b'["up"]', AUTH)[0] == 400
    status, answer = post(srv, "/v1/endpoints/192.0.2.99/status", b'{"status": "down"}', AUTH)
    assert (status, answer) == (404, {"error": "192.0.2.99 is not an endpoint of any loaded zone"})
    status, answer = post(srv, "/v1/endpoints/fe80::1%25eth0/status", b'{"status": "down"}', AUTH)
    assert status == 400 and "scoped IPv6" in answer["error"]
    assert dict(srv.server.health_service.monitor.overrides) == {}
    assert post(srv, f"/v1/endpoints/{A}/status", b'{"status": "down"}', AUTH) == (
        200, {"address": A, "status": "down"})
    assert {k: e.state for k, e in srv.server.health_service.monitor.overrides.items()} == {
        ("ra.test.", "web", "a", A): "down"}
    assert dns_answers(srv)
