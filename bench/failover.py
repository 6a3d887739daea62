#!/usr/bin/env python3
"""Failover time: how long after a site dies its address leaves DNS answers, and how long after it
comes back it returns. Loopback only, bounded: `python bench/failover.py [--runs 5]`.

Starts `gslb serve` (the embedded prober, default check settings: interval 1 s, rise 2, fall 2) on a
zone whose pool has two sites backed by real HTTP servers, kills one site's server at a random point of
the check interval, polls DNS every 20 ms until the answer changes, restarts it (again at a random point)
and polls until it is back; both times are measured from the kill and from the restart. Prints the median of the runs
next to Route 53's fastest documented setting (10 s interval x failure threshold 3).

`--mode proxy-backends` (issue 15): two `gslb serve` nodes, and per region (a at 127.0.0.51, b at 127.0.0.52)
a `gslb proxy` over two real backends; the zone's checks probe each proxy's /healthz (interval 1 s, fall 2,
rise 2), the proxies check their backends (interval --proxy-interval, fall 2, rise 2). The backends behind
region a's proxy are killed (not the proxy): the median time until every DNS node stops answering a, and
after they restart, until every node answers it again. `--reports off` runs the same without report_to
(DNS learns it only from the proxy's /healthz, the fall of each stacked): the figures before issue 15.

`--mode capacity`: the same layout with a weighted pool and `capacity: follow`; one of region a's two
backends dies: the time until every node's health snapshot holds a's halved capacity, then a's share of
1,000 answers from each node (half its weight share is 25 %: sites weigh 1:1).
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
import urllib.request

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


def answer(port: int, name: str = "www.bench.test") -> list[str]:
    q = dns.message.make_query(name, "A")
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


SECRET = "bench-failover-proxy-secret"


def start_backend(port: int) -> subprocess.Popen:
    return start_site("127.0.0.1", port)


def every(ports: list[int], expected: list[str], limit: float, name: str = "www.bench.test") -> float:
    """Seconds until every node answers `expected` (polled every 20 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if all(answer(port, name) == expected for port in ports):
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError(f"not every node answers {expected} after {limit} s")


class ProxyFleet:
    """Two `gslb serve` nodes and a `gslb proxy` per region (A, B) over two http.server backends each."""

    def __init__(self, work: str, reports: bool, proxy_interval: float, capacity: bool):
        self.work, self.procs = work, []
        self.admin = free_port(A)
        self.dns = [free_port(), free_port()]
        self.apis = [free_port(), free_port()]
        self.backend_ports = {A: [free_port(), free_port()], B: [free_port(), free_port()]}
        self.backends = {port: start_backend(port) for ports in self.backend_ports.values() for port in ports}
        check = f"{{type: http, port: {self.admin}, path: /healthz}}"
        os.makedirs(f"{work}/zones")
        with open(f"{work}/zones/bench.yaml", "w") as fh:
            fh.write(f"""origin: bench.test.
soa: {{mname: ns1.bench.test., rname: h.bench.test.}}
records: {{"@": {{NS: ns1.other.test.}}, www: {{pool: web}}}}
pools:
  web:
    policy: {"weighted" if capacity else "failover"}
    ttl: 5
    check: {check}
{"    capacity: follow" if capacity else ""}
    sites:
      a: {{lat: 0, lon: 0, proxy_pool: proxy-a/app, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, proxy_pool: proxy-b/app, endpoints: [{B}]}}
""")
        for i, (dns_port, api_port) in enumerate(zip(self.dns, self.apis)):
            config = f"{work}/server{i}.yaml"
            with open(config, "w") as fh:
                fh.write(f"health: {{secret: {SECRET}, state_dir: {work}/state{i}}}\n")
            self.procs.append(subprocess.Popen([
                sys.executable, "-m", "gslb", "--log-level", "WARNING", "serve", "--zones", f"{work}/zones",
                "--listen", f"127.0.0.1:{dns_port}", "--api", f"127.0.0.1:{api_port}", "--config", config], cwd=REPO))
        for host, name in ((A, "proxy-a"), (B, "proxy-b")):
            items = ", ".join(f'"127.0.0.1:{p}"' for p in self.backend_ports[host])
            path = f"{work}/{name}.yaml"
            with open(path, "w") as fh:
                fh.write(f"listen: [{host}:{free_port(host)}]\nadmin: {host}:{self.admin}\naccess_log: false\n"
                         f"pools:\n  app:\n    backends: [{items}]\n    check: {{type: http, path: /, "
                         f"interval: {proxy_interval}, fall: 2, rise: 2}}\nroutes:\n  - {{default: true, pool: app}}\n")
                if reports:
                    urls = ", ".join(f"http://127.0.0.1:{p}" for p in self.apis)
                    fh.write(f"report_to: [{urls}]\nreport_name: {name}\nreport_key: {SECRET}\n")
            self.procs.append(subprocess.Popen([sys.executable, "-m", "gslb", "--log-level", "WARNING", "proxy",
                                                "--config", path], cwd=REPO))

    def kill(self, ports: list[int]) -> None:
        for port in ports:
            self.backends[port].send_signal(signal.SIGKILL)
            self.backends[port].wait()

    def restart(self, ports: list[int]) -> None:
        for port in ports:
            self.backends[port] = start_backend(port)
        for port in ports:
            wait_listening("127.0.0.1", port)

    def capacity_seen(self, healthy: int) -> bool:
        """Every node's health holds proxy-a/app with `healthy` backends."""
        for api in self.apis:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/v1/health", timeout=2) as resp:
                    pool = json.load(resp)["proxies"].get("proxy-a", {}).get("pools", {}).get("app")
            except OSError:                 # not serving yet
                return False
            if pool is None or pool["healthy"] != healthy:
                return False
        return True

    def close(self) -> None:
        for proc in self.procs + list(self.backends.values()):
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs + list(self.backends.values()):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def proxy_backends(args: argparse.Namespace) -> None:
    """--mode proxy-backends: see the module docstring."""
    fleet = ProxyFleet(tempfile.mkdtemp(prefix="gslb-failover-proxy-"), args.reports == "on", args.proxy_interval,
                       capacity=False)
    withdraw, back = [], []
    try:
        every(fleet.dns, [A], 20)
        for run in range(args.runs):
            time.sleep(3 + random.uniform(0, 1))        # all up and seen up, then kill at a random point
            fleet.kill(fleet.backend_ports[A])
            withdraw.append(every(fleet.dns, [B], 20))
            time.sleep(0.5 + random.uniform(0, 1))
            fleet.restart(fleet.backend_ports[A])       # measured from when the backends answer again
            back.append(every(fleet.dns, [A], 20))
            print(f"run {run + 1}: every node withdrew a after {withdraw[-1]:.2f} s, answered it again after "
                  f"{back[-1]:.2f} s", flush=True)
    finally:
        fleet.close()
    w, b = statistics.median(withdraw), statistics.median(back)
    print(f"\nmedian over {args.runs} runs, backends behind a proxy killed, 2 DNS nodes, reports {args.reports} "
          f"(proxy checks interval {args.proxy_interval:g} s fall 2 rise 2; DNS checks of /healthz interval 1 s "
          f"fall 2 rise 2):")
    print(f"  withdrawn on every node {w:.2f} s (min {min(withdraw):.2f}, max {max(withdraw):.2f})   "
          f"answered again {b:.2f} s (min {min(back):.2f}, max {max(back):.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"mode": "proxy-backends", "reports": args.reports, "proxy_interval": args.proxy_interval,
                       "withdraw_s": withdraw, "return_s": back, "median_withdraw_s": w, "median_return_s": b},
                      fh, indent=2)


def capacity(args: argparse.Namespace) -> None:
    """--mode capacity: see the module docstring."""
    fleet = ProxyFleet(tempfile.mkdtemp(prefix="gslb-failover-capacity-"), True, args.proxy_interval, capacity=True)
    seen, shares = [], []
    try:
        start = time.monotonic()
        while not fleet.capacity_seen(2):
            if time.monotonic() - start > 20:
                raise RuntimeError("proxy-a not reported whole")
            time.sleep(0.1)
        for run in range(args.runs):
            time.sleep(2 + random.uniform(0, 1))
            before = [share(port) for port in fleet.dns]
            fleet.kill(fleet.backend_ports[A][:1])
            start = time.monotonic()
            while not fleet.capacity_seen(1):
                if time.monotonic() - start > 10:
                    raise RuntimeError("halved capacity not seen")
                time.sleep(0.02)
            seen.append(time.monotonic() - start)
            after = [share(port) for port in fleet.dns]
            shares.append(after)
            print(f"run {run + 1}: every node weighs a at half after {seen[-1]:.2f} s; a's share of 1,000 answers "
                  f"per node {', '.join(f'{x:.1%}' for x in before)} -> {', '.join(f'{x:.1%}' for x in after)}",
                  flush=True)
            fleet.restart(fleet.backend_ports[A][:1])
            start = time.monotonic()
            while not fleet.capacity_seen(2):
                if time.monotonic() - start > 10:
                    raise RuntimeError("capacity not back")
                time.sleep(0.05)
    finally:
        fleet.close()
    flat = [x for run in shares for x in run]
    print(f"\nmedian over {args.runs} runs (2 sites 1:1, capacity: follow, 1 of a's 2 backends killed; proxy checks "
          f"interval {args.proxy_interval:g} s fall 2): halved capacity on every node after {statistics.median(seen):.2f} s "
          f"(max {max(seen):.2f}); a's share {statistics.median(flat):.1%} (min {min(flat):.1%}, max {max(flat):.1%}), "
          f"target 25 % +- 10 points")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"mode": "capacity", "seen_s": seen, "shares": shares}, fh, indent=2)


def share(port: int, n: int = 1000) -> float:
    """Region a's share of `n` answers from one node."""
    return sum(answer(port) == [A] for _ in range(n)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--mode", choices=("site", "proxy-backends", "capacity"), default="site",
                        help="site: a site's server dies (default); proxy-backends: the backends behind a "
                             "regional proxy die; capacity: half of them, with capacity: follow")
    parser.add_argument("--reports", choices=("on", "off"), default="on",
                        help="proxy-backends: the proxies report to DNS (report_to) or not (the baseline)")
    parser.add_argument("--proxy-interval", type=float, default=0.5, metavar="SECONDS",
                        help="the proxies' backend check interval (fall 2, rise 2; default 0.5)")
    args = parser.parse_args()
    if args.mode == "proxy-backends":
        return proxy_backends(args)
    if args.mode == "capacity":
        return capacity(args)
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
