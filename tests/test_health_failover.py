"""Failover end to end: real HTTP servers as endpoints, the embedded prober, DNS answers over UDP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO
from httpsite import HttpSite, free_port
from metricsutil import samples, value
from zonetext import http_check, pool_zone

A, B = "127.0.0.31", "127.0.0.32"


def zone(port: int, policy: str = "failover", ttl: int = 5) -> str:
    return pool_zone("f.test", {"a": [A], "b": [B]}, policy=policy, ttl=ttl, check=http_check(port))


@pytest.fixture
def sites():
    port = free_port(A)
    made = [HttpSite(A, port).start(), HttpSite(B, port).start()]
    yield port, made
    for site in made:
        site.close()


def answer(srv) -> list[str]:
    return sorted(rd.address for rrset in srv.query("www.f.test", "A").answer for rd in rrset)


def wait_for(srv, expected: list[str], limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if answer(srv) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"answer still {answer(srv)}, not {expected}, after {limit} s")


def test_killed_site_is_withdrawn_within_3s_and_returns(serve, sites):
    port, (site_a, _) = sites
    srv = serve({"f.yaml": zone(port)})
    wait_for(srv, [A], 5)
    assert srv.server.health.of(next(iter(srv.server.health.targets))).state in ("up", "unknown")
    time.sleep(2.5)                                  # both endpoints are up (rise 2) before the kill
    site_a.stop()
    withdrawn = wait_for(srv, [B], 3.0)
    site_a.start()
    returned = wait_for(srv, [A], 5.0)
    print(f"withdrawn after {withdrawn:.2f} s, returned after {returned:.2f} s")


def test_health_api_and_operator_override(serve, sites):
    port, _ = sites
    srv = serve({"f.yaml": zone(port)}, config_yaml="health: {secret: s3cret}\napi: {token: op-t0ken}\n")
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(h.state == "up" for h in srv.server.health.targets.values()):
        time.sleep(0.05)

    def post(body: dict, token: str | None) -> int:
        req = urllib.request.Request(f"{api}/v1/endpoints/{A}/status", data=json.dumps(body).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post({"status": "down"}, None) == 401
    assert post({"status": "down"}, "wrong") == 401
    assert post({"status": "down"}, "s3cret") == 401          # the probers' key does not write
    assert answer(srv) == [A]
    assert post({"status": "sideways"}, "op-t0ken") == 400
    assert post({"status": "down"}, "op-t0ken") == 200
    assert answer(srv) == [B]
    with urllib.request.urlopen(f"{api}/v1/health", timeout=5) as resp:
        health = json.load(resp)
    endpoint = health["zones"][0]["pools"][0]["sites"][0]["endpoints"][0]
    assert endpoint["address"] == A and not endpoint["answered"]
    assert endpoint["override"]["state"] == "down" and endpoint["override"]["source"] == "api"
    assert endpoint["regions"]["local"]["rtt_ms"] > 0
    status = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, capture_output=True,
                            text=True, timeout=20, check=True).stdout
    assert f"{A}" in status and f"NOT answered (down (override */*/{A}, api))" in status
    assert "prober local: live" in status and "local                up       rtt " in status
    with urllib.request.urlopen(f"{api}/status", timeout=5) as resp:
        page = resp.read().decode()
    assert resp.headers["Content-Type"].startswith("text/html")
    assert f"{A}" in page and f"<span class=down>NOT answered</span> (down (override */*/{A}, api))" in page
    with urllib.request.urlopen(f"{api}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    s = samples(metrics)
    assert value(s, "gslb_endpoint_answered", zone="f.test.", pool="web", site="a", address=A) == 0
    assert value(s, "gslb_endpoint_answered", zone="f.test.", pool="web", site="b", address=B) == 1
    assert value(s, "gslb_endpoint_override", zone="f.test.", pool="web", site="a", address=A, state="down",
                 source="api") == 1
    assert value(s, "gslb_prober_live", region="local") == 1 and ("gslb_health_fail_open", frozenset()) in s
    assert value(s, "gslb_health_fail_open") == 0
    assert value(s, "gslb_dns_responses_total", proto="udp", rcode="NOERROR") == 2   # the two answer() calls
    assert post({"status": "auto"}, "op-t0ken") == 200
    assert answer(srv) == [A]


def test_restart_restores_the_health_it_saw(serve, sites, tmp_path):
    port, (site_a, _) = sites
    config = f"health: {{state_dir: {tmp_path / 'state'}}}\n"
    srv = serve({"f.yaml": zone(port)}, config_yaml=config)
    wait_for(srv, [A], 5)
    site_a.stop()
    wait_for(srv, [B], 3.0)
    srv.call(srv.server.health_service.save)
    # A new server process starting now must not send traffic to the dead site, not even once.
    again = serve({"f.yaml": zone(port)}, config_yaml=config)
    assert answer(again) == [B]


def test_reload_keeps_state_of_unchanged_endpoints(serve, sites):
    port, (site_a, _) = sites
    srv = serve({"f.yaml": zone(port)})
    wait_for(srv, [A], 5)
    site_a.stop()
    wait_for(srv, [B], 3.0)
    (srv.zone_dir / "f.yaml").write_text(zone(port, ttl=6))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and srv.query("www.f.test", "A").answer[0].ttl != 6:
        time.sleep(0.05)
    assert srv.query("www.f.test", "A").answer[0].ttl == 6
    assert answer(srv) == [B]        # the dead endpoint did not come back as "unknown" after the reload


def test_restart_without_an_embedded_prober_restores_what_the_regions_said(serve, sites, tmp_path):
    """Remote probers only: the server saves the combined state, and a restarted server answers from it
    until a prober reports, or for `grace` seconds; then it fails open."""
    from gslb.health.signing import HEADER, sign
    port, _ = sites
    config = f"health: {{embedded: false, secret: s3cret, grace: 2, state_dir: {tmp_path / 'state'}}}\n"
    srv = serve({"f.yaml": zone(port)}, config_yaml=config)
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    with urllib.request.urlopen(f"{api}/v1/targets", timeout=5) as resp:
        keys = json.load(resp)["targets"]
    views = [{"key": k, "state": "down" if json.loads(k)["address"] == A else "up", "rtt_ms": 1.0,
              "error": "GET ...: 503, expected 200" if json.loads(k)["address"] == A else None, "updated": 0}
             for k in keys]
    body = json.dumps({"region": "eu-west-1", "interval": 1.0, "views": views}).encode()
    req = urllib.request.Request(f"{api}/v1/reports", data=body, method="POST",
                                 headers={HEADER: sign("s3cret", body), "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.load(resp)["accepted"] == 2
    assert answer(srv) == [B]
    srv.call(srv.server.health_service.save)
    again = serve({"f.yaml": zone(port)}, config_yaml=config)
    assert answer(again) == [B]                     # not even one answer with the dead site
    wait_for(again, [A], 6)                          # no prober at all: grace (2 s), then fail open
    assert again.server.health_service.monitor.fail_open_total == 1
