#!/usr/bin/env python3
"""Failover time: how long after a site dies its address leaves DNS answers, and how long after it
comes back it returns. Loopback only, bounded: `python bench/failover.py [--runs 5]`.

Starts `gslb serve` (the embedded prober, default check settings: interval 1 s, rise 2, fall 2) on a
zone whose pool has two sites backed by real HTTP servers, kills one site's server at a random point of
the check interval, polls DNS every 20 ms until the answer changes, restarts it (again at a random point)
and polls until it is back; both times are measured from the kill and from the restart. Prints the median of the runs
next to Route 53's fastest documented setting (10 s interval x failure threshold 3).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# bench/dns.py lives beside this file: keep this folder off the import path so `import dns` is dnspython.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import dns.message
import dns.query

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B = "127.0.0.51", "127.0.0.52"
ROUTE53_FASTEST_S = 10 * 3        # "fast" 10 s request interval, failure threshold 3


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_site(host: str, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", host],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())


def wait_listening(host: str, port: int, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.005)
    raise RuntimeError(f"{host}:{port} not listening after {limit} s")


def answer(port: int) -> list[str]:
    q = dns.message.make_query("www.bench.test", "A")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except dns.exception.Timeout:
        return []
    return sorted(rd.address for rrset in r.answer for rd in rrset)


def wait_for(port: int, expected: list[str], limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if answer(port) == expected:
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError(f"no {expected} after {limit} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    site_port, dns_port = free_port(A), free_port()
    work = tempfile.mkdtemp(prefix="gslb-failover-")
    os.makedirs(f"{work}/zones")
    with open(f"{work}/zones/bench.yaml", "w") as fh:
        fh.write(f"""origin: bench.test.
soa: {{mname: ns1.bench.test., rname: h.bench.test.}}
records: {{"@": {{NS: ns1.other.test.}}, www: {{pool: web}}}}
pools:
  web:
    policy: failover
    ttl: 5
    check: {{type: http, port: {site_port}, path: /}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, endpoints: [{B}]}}
""")
    sites = {A: start_site(A, site_port), B: start_site(B, site_port)}
    server = subprocess.Popen([sys.executable, "-m", "gslb", "--log-level", "WARNING", "serve", "--zones",
                               f"{work}/zones", "--listen", f"127.0.0.1:{dns_port}", "--api", "off"], cwd=REPO)
    withdraw, back = [], []
    try:
        for host in sites:
            wait_listening(host, site_port)
        wait_for(dns_port, [A], 10)
        for run in range(args.runs):
            # let both sites be seen up (rise 2), then kill at a random point of the check interval
            time.sleep(3 + random.uniform(0, 1))
            sites[A].send_signal(signal.SIGKILL)
            sites[A].wait()
            withdraw.append(wait_for(dns_port, [B], 15))
            # The withdrawal is seen right after a failed check: restarting at once would always land
            # just after a check. Wait a random part of the interval so the return is measured fairly.
            time.sleep(0.5 + random.uniform(0, 1))
            sites[A] = start_site(A, site_port)
            wait_listening(A, site_port)               # measure from when the site answers again
            back.append(wait_for(dns_port, [A], 15))
            print(f"run {run + 1}: withdrawn after {withdraw[-1]:.2f} s, back after {back[-1]:.2f} s", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        for proc in sites.values():
            proc.kill()
    w, b = statistics.median(withdraw), statistics.median(back)
    print(f"\nmedian over {args.runs} runs (check interval 1 s, fall 2, rise 2):")
    print(f"  withdrawal {w:.2f} s (min {min(withdraw):.2f}, max {max(withdraw):.2f})   "
          f"return {b:.2f} s (min {min(back):.2f}, max {max(back):.2f})")
    # Route 53's failure threshold counts consecutive checks both ways: about 30 s to withdraw and to return.
    print(f"  Route 53 fastest documented (10 s interval x threshold 3): ~{ROUTE53_FASTEST_S} s each way"
          f"  -> withdrawal {ROUTE53_FASTEST_S / w:.0f}x, return {ROUTE53_FASTEST_S / b:.0f}x faster")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"withdraw_s": withdraw, "return_s": back, "median_withdraw_s": w, "median_return_s": b,
                       "route53_fastest_s": ROUTE53_FASTEST_S}, fh, indent=2)


if __name__ == "__main__":
    main()
