"""Regions for real: two DNS servers and three `gslb probe` processes, each sending its checks from its
own loopback address (127.0.0.x stands in for a region). One region's bad view must not withdraw a site;
a majority must."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO
from httpsite import HttpSite, free_port

A, B = "127.0.0.41", "127.0.0.42"
PROBERS = {"us-east-1": "127.0.0.11", "eu-west-1": "127.0.0.12", "ap-southeast-1": "127.0.0.13"}
SECRET = "region-test-secret"


def zone(port: int) -> str:
    return f"""\
origin: r.test.
soa: {{mname: ns1.r.test., rname: h.r.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  www: {{pool: web}}
pools:
  web:
    policy: failover
    check: {{type: http, port: {port}, path: /healthz, interval: 0.5}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, endpoints: [{B}]}}
"""


def answer(srv) -> list[str]:
    return sorted(rd.address for rrset in srv.query("www.r.test", "A").answer for rd in rrset)


def settle(servers, expected: list[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(answer(s) == expected for s in servers):
            return
        time.sleep(0.1)
    raise AssertionError(f"answers {[answer(s) for s in servers]}, expected {expected}")


def regions_reporting(srv) -> set[str]:
    now = time.time()
    return {name for name, rep in srv.server.health_service.monitor.regions.items() if rep.live(now)}


@pytest.fixture
def two_servers_three_probers(serve, tmp_path):
    port = free_port(A)
    sites = [HttpSite(A, port).start(), HttpSite(B, port).start()]
    config = f"health: {{embedded: false, secret: {SECRET}, report_interval: 0.5}}\n"
    servers = [serve({"r.yaml": zone(port)}, config_yaml=config) for _ in range(2)]
    zone_dir = tmp_path / "prober-zones"
    zone_dir.mkdir()
    (zone_dir / "r.yaml").write_text(zone(port))
    env = dict(os.environ, GSLB_SECRET=SECRET, GSLB_LOG_LEVEL="WARNING")
    probers = []
    first_api = f"http://{servers[0].api[0]}:{servers[0].api[1]}"
    for region, source in PROBERS.items():
        # the last prober fetches its targets from a server instead of reading zone files
        targets = ["--from", first_api] if region == "ap-southeast-1" else ["--zones", str(zone_dir)]
        cmd = [sys.executable, "-m", "gslb", "probe", "--region", region, *targets,
               "--source", source, "--interval", "0.5"]
        for srv in servers:
            cmd += ["--report-to", f"http://{srv.api[0]}:{srv.api[1]}"]
        probers.append(subprocess.Popen(cmd, cwd=REPO, env=env))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(regions_reporting(s) == set(PROBERS) for s in servers):
        time.sleep(0.1)
    assert all(regions_reporting(s) == set(PROBERS) for s in servers)
    yield sites[0], servers, probers
    for proc in probers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    for site in sites:
        site.close()


def test_one_region_seeing_a_site_down_does_not_withdraw_it(two_servers_three_probers):
    site_a, servers, _ = two_servers_three_probers
    settle(servers, [A], 5)
    site_a.deny = {PROBERS["us-east-1"]}                        # only us-east-1's checks fail
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert all(answer(s) == [A] for s in servers)
        time.sleep(0.1)
    views = servers[0].server.health.targets
    (health,) = [h for t, h in views.items() if t.address == A]
    assert health.regions["us-east-1"].state == "down" and health.state == "up"
    site_a.deny = {PROBERS["us-east-1"], PROBERS["eu-west-1"]}  # now a majority (2 of 3)
    settle(servers, [B], 5)
    site_a.deny = set()
    settle(servers, [A], 5)


def test_a_silent_prober_is_dropped_from_the_quorum(two_servers_three_probers):
    site_a, servers, probers = two_servers_three_probers
    settle(servers, [A], 5)
    probers[0].send_signal(signal.SIGTERM)                      # us-east-1 stops reporting
    probers[0].wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "us-east-1" in regions_reporting(servers[0]):
        time.sleep(0.1)
    assert regions_reporting(servers[0]) == {"eu-west-1", "ap-southeast-1"}
    api = f"http://{servers[0].api[0]}:{servers[0].api[1]}"
    with urllib.request.urlopen(f"{api}/v1/health", timeout=5) as resp:
        endpoint = json.load(resp)["zones"][0]["pools"][0]["sites"][0]["endpoints"][0]
    assert endpoint["address"] == A
    assert {r: v["live"] for r, v in endpoint["regions"].items()} == {
        "us-east-1": False, "eu-west-1": True, "ap-southeast-1": True}
    status = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, capture_output=True,
                            text=True, timeout=20, check=True).stdout
    assert "prober us-east-1: SILENT" in status
    assert re.search(r"us-east-1 +(unknown|up) +rtt \S+ \(silent: not counted\)", status), status
    site_a.deny = {PROBERS["eu-west-1"]}                        # 1 of the 2 live regions: no majority
    time.sleep(2)
    assert answer(servers[0]) == [A]
    site_a.deny = {PROBERS["eu-west-1"], PROBERS["ap-southeast-1"]}
    settle(servers, [B], 5)


def test_unsigned_reports_are_refused(two_servers_three_probers):
    import urllib.error
    import urllib.request
    _, servers, _ = two_servers_three_probers
    srv = servers[0]
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", data=b'{"region": "x"}',
                                 method="POST", headers={"X-Gslb-Signature": "t=1,sig=00"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    assert "x" not in srv.server.health_service.monitor.regions
