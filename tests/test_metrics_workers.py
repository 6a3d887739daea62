"""`gslb serve --workers 2`: /metrics (served by the first process) sums the counters of both processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error

import dns.message
import dns.query
from conftest import REPO
from httpsite import free_port
from metricsutil import fetch, promtool_check_metrics, samples, total, value

ZONE = """\
origin: w.test.
soa: {mname: ns1.w.test., rname: h.w.test.}
records: {"@": {NS: ns1.other.test.}, www: {pool: web}}
pools:
  web:
    policy: weighted
    check: null
    sites:
      a: {endpoints: [192.0.2.1]}
      b: {endpoints: [192.0.2.2]}
"""
N = 300


def test_counters_are_summed_over_workers(tmp_path):
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "w.yaml").write_text(ZONE)
    dns_port, api_port = free_port(), free_port()
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gslb", "serve", "--workers", "2",
                                 "--zones", str(tmp_path / "zones"), "--listen", f"127.0.0.1:{dns_port}",
                                 "--api", f"127.0.0.1:{api_port}"], cwd=tmp_path, stdout=log, stderr=log,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    api = f"http://127.0.0.1:{api_port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:                          # both processes up and the worker's counters arrived
            try:
                if value(samples(fetch(api)), "gslb_dns_processes", counted="reporting") == 2:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        # Each query from a new socket (a new source port): SO_REUSEPORT spreads them over both processes,
        # so a count of N needs both processes' counters (all N in one process: odds 2**-300).
        for _ in range(N):
            dns.query.udp(dns.message.make_query("www.w.test", "A"), "127.0.0.1", port=dns_port, timeout=2)
        deadline = time.monotonic() + 5
        while True:                          # the worker sends its counters once a second
            s = samples(fetch(api))
            queries = value(s, "gslb_dns_queries_total", zone="w.test.", qtype="A", transport="udp", rcode="NOERROR")
            if queries == N:
                break
            assert queries < N and time.monotonic() < deadline, f"{queries} queries counted, {N} sent"
            time.sleep(0.1)
        assert total(s, "gslb_dns_answers_total", zone="w.test.", pool="web") == N
        assert value(s, "gslb_dns_responses_total", proto="udp", rcode="NOERROR") == N
        assert value(s, "gslb_dns_client_location_total", source="address", located="no") == N
        assert value(s, "gslb_dns_processes", counted="all") == 2
        promtool_check_metrics(fetch(api))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
