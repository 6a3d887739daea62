"""`gslb serve --workers 2`: two processes share the DNS port, and health reaches both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import dns.message
import dns.query
from conftest import REPO
from httpsite import HttpSite, free_port

A, B = "127.0.0.61", "127.0.0.62"


def answer(port: int) -> list[str]:
    r = dns.query.udp(dns.message.make_query("www.w.test", "A"), "127.0.0.1", port=port, timeout=2)
    return sorted(rd.address for rrset in r.answer for rd in rrset)


def test_workers_share_the_port_and_all_follow_health(tmp_path):
    site_port = free_port(A)
    sites = [HttpSite(A, site_port).start(), HttpSite(B, site_port).start()]
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "w.yaml").write_text(f"""\
origin: w.test.
soa: {{mname: ns1.w.test., rname: h.w.test.}}
records: {{"@": {{NS: ns1.other.test.}}, www: {{pool: web}}}}
pools:
  web:
    policy: failover
    check: {{type: http, port: {site_port}, path: /healthz, interval: 0.5}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, endpoints: [{B}]}}
""")
    dns_port, api_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gslb", "serve", "--workers", "2", "--query-log",
                                 "--zones", str(tmp_path / "zones"), "--listen", f"127.0.0.1:{dns_port}",
                                 "--api", f"127.0.0.1:{api_port}"], cwd=tmp_path, stdout=log, stderr=log,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if answer(dns_port) == [A]:
                    break
            except dns.exception.Timeout:
                pass
            time.sleep(0.2)
        time.sleep(1.5)                             # both endpoints seen up
        sites[0].stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(answer(dns_port) != [B] for _ in range(20)):
            time.sleep(0.1)
        assert all(answer(dns_port) == [B] for _ in range(40))   # every process withdrew A
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        for site in sites:
            site.close()
    pids = set(re.findall(r"gslb\.query\[(\d+)\]", log_path.read_text()))
    assert len(pids) == 2, "queries were answered by both processes"
