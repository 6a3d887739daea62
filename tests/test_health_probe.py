"""`gslb probe` as a process: it reloads its targets (SIGHUP), and a DNS server that hangs does not
delay its reports to the others."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO
from httpsite import HttpSite, free_port

A, B = "127.0.0.61", "127.0.0.62"
SECRET = "probe-test-secret"
REGION = "eu-west-1"


def zone(port: int, addresses: list[str]) -> str:
    sites = "\n".join(f"      s{i}: {{lat: 0, lon: 0, endpoints: [{a}]}}" for i, a in enumerate(addresses))
    return f"""\
origin: p.test.
soa: {{mname: ns1.p.test., rname: h.p.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  www: {{pool: web}}
pools:
  web:
    policy: failover
    check: {{type: http, port: {port}, path: /healthz, interval: 0.25}}
    sites:
{sites}
"""


def until(predicate, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} after {limit} s")


def region_report(srv):
    return srv.server.health_service.monitor.regions.get(REGION)


def reported_addresses(srv) -> set[str]:
    rep = region_report(srv)
    return {t.address for t in rep.views} if rep is not None else set()


@pytest.fixture
def setup(serve, tmp_path):
    """A server for A and B (no embedded prober), real sites, and a way to start `gslb probe`."""
    port = free_port(A)
    sites = [HttpSite(A, port).start(), HttpSite(B, port).start()]
    srv = serve({"p.yaml": zone(port, [A, B])},
                config_yaml=f"health: {{embedded: false, secret: {SECRET}, report_interval: 0.25}}\n")
    zone_dir = tmp_path / "prober-zones"
    zone_dir.mkdir()
    procs: list[subprocess.Popen] = []

    def probe(*report_to: str, interval: float = 0.25) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "gslb", "probe", "--region", REGION, "--zones", str(zone_dir),
               "--interval", str(interval)]
        for url in report_to:
            cmd += ["--report-to", url]
        env = dict(os.environ, GSLB_SECRET=SECRET, GSLB_LOG_LEVEL="INFO")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield srv, port, zone_dir, probe
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    for site in sites:
        site.close()


def test_sighup_reloads_the_targets(setup):
    srv, port, zone_dir, probe = setup
    (zone_dir / "p.yaml").write_text(zone(port, [A]))
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    proc = probe(api)
    until(lambda: reported_addresses(srv) == {A}, 15, "reporting A")
    (zone_dir / "p.yaml").write_text(zone(port, [A, B]))
    proc.send_signal(signal.SIGHUP)
    until(lambda: reported_addresses(srv) == {A, B}, 5, "reporting A and B after SIGHUP")
    until(lambda: all(v.state == "up" for v in region_report(srv).views.values()), 5, "both up")
    (zone_dir / "p.yaml").write_text("origin: [broken\n")         # a broken edit keeps the last targets
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert proc.poll() is None and reported_addresses(srv) == {A, B}
    (zone_dir / "p.yaml").write_text(zone(port, [B]))
    proc.send_signal(signal.SIGHUP)
    until(lambda: reported_addresses(srv) == {B}, 5, "reporting only B")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "targets reloaded: 2 probed (1 new, 0 removed)" in err
    assert "target reload failed, still probing the last good targets" in err
    assert "targets reloaded: 1 probed (0 new, 1 removed)" in err


def test_a_hanging_server_does_not_delay_reports_to_the_others(setup):
    """The first server accepts connections and never answers; the second must keep hearing from the
    region at its 0.25 s interval, never missing the 3 intervals after which it would drop the region."""
    srv, port, zone_dir, probe = setup
    (zone_dir / "p.yaml").write_text(zone(port, [A, B]))
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(64)                   # the kernel completes the handshake; nobody ever reads
        hang_url = f"http://127.0.0.1:{hang.getsockname()[1]}"
        api = f"http://{srv.api[0]}:{srv.api[1]}"
        proc = probe(hang_url, api)
        until(lambda: reported_addresses(srv) == {A, B}, 15, "reporting")
        deadline = time.monotonic() + 4                          # two report timeouts of the hanging one
        while time.monotonic() < deadline:
            rep = region_report(srv)
            assert rep.live(time.time()), f"region silent for {time.time() - rep.received:.2f} s"
            time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert f"cannot report to {hang_url}/v1/reports" in err


def post_report(srv, body: bytes, *, gzipped: bool = False, signed_at: float | None = None) -> tuple[int, dict]:
    import gzip
    import json
    import urllib.error
    import urllib.request

    from gslb.health.signing import HEADER, sign
    sent = gzip.compress(body, 1) if gzipped else body
    headers = {HEADER: sign(SECRET, sent, signed_at), "Content-Type": "application/json"}    # over the bytes sent
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", method="POST", headers=headers,
                                 data=sent)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_big_reports_are_accepted_gzipped_up_to_the_limit(setup):
    """A prober that probes many more targets than this server serves sends a report over the API's
    usual 1 MiB limit; it is accepted (gzipped, as `gslb probe` sends it). A body that inflates past
    64 MiB is refused."""
    import json

    from gslb.health.report import encode_report, target_id
    from gslb.health.snapshot import RegionView
    srv, _, _, _ = setup
    served = list(srv.server.health_service.known_ids.values())
    views = {t: RegionView("down" if t.address == A else "up", 1.5, None, time.time()) for t in served}
    others = {f"10.{i // 250}.{i % 250}.1": RegionView("up", 2.0) for i in range(15000)}
    body = json.loads(encode_report(REGION, 1.0, views))
    body["views"] += [{"id": f"{i:024x}", "state": "up", "rtt_ms": v.rtt_ms, "error": None, "updated": 0}
                      for i, v in enumerate(others.values())]
    raw = json.dumps(body).encode()
    assert len(raw) > 2**20
    status, answer = post_report(srv, raw, gzipped=True)
    assert (status, answer) == (200, {"ok": True, "accepted": 2})
    rep = region_report(srv)
    assert {t.address: v.state for t, v in rep.views.items()} == {A: "down", B: "up"}
    assert {target_id(t) for t in rep.views} == {target_id(t) for t in served}
    bomb = b'{"region": "x", "views": [], "pad": "' + b" " * (65 * 2**20) + b'"}'
    status, answer = post_report(srv, bomb, gzipped=True)
    assert status == 413 and answer == {"error": "report larger than 64 MiB"}


def test_a_region_report_older_than_the_last_is_refused(setup):
    """A captured report replayed while its signature is still valid must not bring back an old view."""
    from gslb.health.report import encode_report
    from gslb.health.snapshot import RegionView
    srv, _, _, _ = setup
    served = list(srv.server.health_service.known_ids.values())
    now = time.time()
    down = encode_report(REGION, 1.0, {t: RegionView("down") for t in served})
    up = encode_report(REGION, 1.0, {t: RegionView("up") for t in served})
    assert post_report(srv, down, signed_at=now - 20) == (200, {"ok": True, "accepted": 2})
    assert post_report(srv, up, signed_at=now - 10) == (200, {"ok": True, "accepted": 2})
    status, answer = post_report(srv, down, signed_at=now - 20)           # the replay
    assert status == 409 and "received before (a replay)" in answer["error"]
    other = encode_report(REGION, 2.0, {t: RegionView("down") for t in served})
    status, answer = post_report(srv, other, signed_at=now - 20)          # not a copy, but older
    assert status == 409 and "older than the last one from region eu-west-1" in answer["error"]
    assert {v.state for v in region_report(srv).views.values()} == {"up"}
    assert post_report(srv, down, signed_at=now - 10)[0] == 200            # same second: a real prober
    status, answer = post_report(srv, up, signed_at=now - 61)              # outside the window anyway
    assert status == 401 and answer["error"].startswith("signature time is")
