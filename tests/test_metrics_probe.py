"""`gslb probe --metrics`: a remote prober's own /metrics (checks, failures by reason, reports pushed), and
what the server it reports to shows of it (reports by region and result, each region's view)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error

from conftest import REPO
from httpsite import HttpSite, free_port
from metricsutil import fetch, promtool_check_metrics, samples, value

A, B = "127.0.0.71", "127.0.0.72"
SECRET = "probe-metrics-secret"
REGION = "eu-west-1"
ZONE = """\
origin: p.test.
soa: {{mname: ns1.p.test., rname: h.p.test.}}
records: {{"@": {{NS: ns1.other.test.}}, www: {{pool: web}}}}
pools:
  web:
    policy: failover
    check: {{type: http, port: {port}, path: /healthz, interval: 0.25, timeout: 1}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{a}]}}
      b: {{lat: 0, lon: 0, endpoints: [{b}]}}
"""


def _probe(zone_dir, api: str, secret: str, metrics_port: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gslb", "probe", "--region", REGION, "--zones", str(zone_dir),
           "--interval", "0.25", "--report-to", api]
    if metrics_port is not None:
        cmd += ["--metrics", f"127.0.0.1:{metrics_port}"]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, GSLB_SECRET=secret), stderr=subprocess.DEVNULL)


def _until(read, check, limit: float = 10.0):
    deadline = time.monotonic() + limit
    while True:
        try:
            got = read()
            if check(got):
                return got
        except (urllib.error.URLError, ConnectionError):
            got = None
        assert time.monotonic() < deadline, f"not reached after {limit} s"
        time.sleep(0.1)


def test_probe_and_server_metrics(serve, tmp_path):
    port = free_port(A)
    site_a = HttpSite(A, port).start()             # B listens nowhere: its checks fail to connect
    text = ZONE.format(port=port, a=A, b=B)
    srv = serve({"p.yaml": text}, config_yaml=f"health: {{embedded: false, secret: {SECRET}, report_interval: 0.25}}\n")
    zone_dir = tmp_path / "prober-zones"
    zone_dir.mkdir()
    (zone_dir / "p.yaml").write_text(text)
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    metrics_port = free_port()
    procs = [_probe(zone_dir, api, SECRET, metrics_port), _probe(zone_dir, api, "a-wrong-secret")]
    try:
        probe_url = f"http://127.0.0.1:{metrics_port}/metrics"
        s = _until(lambda: samples(fetch(probe_url)),
                   lambda s: value(s, "gslb_check_up", region=REGION, address=A) == 1
                   and value(s, "gslb_check_failures_total", region=REGION, address=B, reason="connect") >= 2
                   and value(s, "gslb_prober_pushes_total", server=f"{api}/v1/reports", result="ok") >= 2)
        assert value(s, "gslb_check_up", region=REGION, address=B) == 0
        assert value(s, "gslb_check_failures_total", region=REGION, address=A, reason="connect") == 0
        assert 0 < value(s, "gslb_check_seconds", region=REGION, address=A) < 1
        assert value(s, "gslb_checks_total", region=REGION) >= 4
        promtool_check_metrics(fetch(probe_url))

        server_url = f"{api}/metrics"
        s = _until(lambda: samples(fetch(server_url)),
                   lambda s: value(s, "gslb_prober_reports_total", region=REGION, result="accepted") >= 2
                   and value(s, "gslb_prober_reports_total", region=REGION, result="bad_signature") >= 1)
        assert value(s, "gslb_prober_live", region=REGION) == 1
        assert value(s, "gslb_prober_last_report_timestamp_seconds", region=REGION) > time.time() - 10
        assert 0 < value(s, "gslb_check_seconds", region=REGION, address=A) < 1
        assert value(s, "gslb_check_up", region=REGION, address=B) == 0
        assert value(s, "gslb_endpoint_up", zone="p.test.", pool="web", site="b", address=B) == 0
        promtool_check_metrics(fetch(server_url))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        site_a.close()
