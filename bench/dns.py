#!/usr/bin/env python3
"""DNS queries per second: gslb against gdnsd and nsd, serving the same zone, measured in one run.

    python bench/dns.py [--seconds 5] [--rounds 3] [--json FILE]

Loopback only and bounded in time. Each server runs alone on CPU 0 (taskset), dnsperf on CPU 1.
Rounds interleave the targets so that drift on a shared machine hits all of them; the table shows the
median queries/s of each target over the rounds and gslb's ratios against the peers.
Targets: gslb static name, gslb load-balanced name (latency pool), gdnsd static, nsd static.
Needs the Debian packages dnsperf, gdnsd and nsd (a missing peer is skipped and said so).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# This file is bench/dns.py: keep its folder off the import path so `import dns` finds dnspython.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import dns.message
import dns.query

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "bench.gslb.test"
ZONE_FILE = f"""$TTL 3600
@       IN SOA ns1.{ORIGIN}. hostmaster.{ORIGIN}. 1 3600 600 1209600 60
@       IN NS  ns1.{ORIGIN}.
ns1     IN A   127.0.0.53
static  IN A   192.0.2.10
"""
GSLB_ZONE = f"""origin: {ORIGIN}.
ttl: 3600
soa: {{mname: ns1.{ORIGIN}., rname: hostmaster.{ORIGIN}., refresh: 3600, retry: 600, expire: 1209600, minimum: 60}}
records:
  "@": {{NS: ns1.{ORIGIN}.}}
  ns1: {{A: 127.0.0.53}}
  static: {{A: 192.0.2.10}}
  www: {{pool: web}}
pools:
  web:
    policy: latency
    ttl: 30
    check: null
    sites:
      us: {{lat: 38.9, lon: -77.4, endpoints: [{{address: 192.0.2.1, weight: 3}}, {{address: 192.0.2.2}}]}}
      eu: {{lat: 53.3, lon: -6.3, endpoints: [{{address: 198.51.100.1}}]}}
"""


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def pinned(cmd: list[str], cpu: int) -> list[str]:
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + cmd


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    qname: str
    cwd: str | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(pinned(self.cmd, 0), cwd=self.cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 20
        q = dns.message.make_query(self.qname, "A")
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.3).answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {self.qname} within 20 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def gdnsd_server(work: str) -> Server:
    port = free_port()
    conf = os.path.join(work, "gdnsd")
    os.makedirs(os.path.join(conf, "zones"))
    with open(os.path.join(conf, "config"), "w") as fh:
        fh.write(f"options => {{ listen => [ 127.0.0.1 ], dns_port => {port}, udp_threads => 1, tcp_threads => 1,\n"
                 f"  run_dir => {work}/gdnsd-run, state_dir => {work}/gdnsd-state }}\n")
    with open(os.path.join(conf, "zones", ORIGIN), "w") as fh:
        fh.write(ZONE_FILE)
    return Server("gdnsd", ["gdnsd", "-c", conf, "start"], port, f"static.{ORIGIN}")


def nsd_server(work: str) -> Server:
    port = free_port()
    conf = os.path.join(work, "nsd")
    os.makedirs(conf)
    with open(os.path.join(conf, "bench.zone"), "w") as fh:
        fh.write(ZONE_FILE)
    with open(os.path.join(conf, "nsd.conf"), "w") as fh:
        fh.write(f"""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{conf}"
  database: ""
  pidfile: "{conf}/nsd.pid"
  xfrdfile: "{conf}/xfrd.state"
  zonelistfile: "{conf}/zone.list"
  verbosity: 0
  hide-version: yes
  minimal-responses: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: {ORIGIN}
  zonefile: bench.zone
""")
    return Server("nsd", ["nsd", "-d", "-c", os.path.join(conf, "nsd.conf")], port, f"static.{ORIGIN}")


def gslb_server(work: str) -> Server:
    port = free_port()
    zones = os.path.join(work, "gslb-zones")
    os.makedirs(zones)
    with open(os.path.join(zones, "bench.yaml"), "w") as fh:
        fh.write(GSLB_ZONE)
    cmd = [sys.executable, "-m", "gslb", "--log-level", "WARNING", "serve", "--zones", zones,
           "--listen", f"127.0.0.1:{port}", "--api", "off"]
    return Server("gslb", cmd, port, f"static.{ORIGIN}", cwd=REPO)


def dnsperf(port: int, qname: str, seconds: float, work: str) -> float:
    qfile = os.path.join(work, f"q-{qname}")
    with open(qfile, "w") as fh:
        fh.write(f"{qname} A\n")
    out = subprocess.run(pinned(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(seconds),
                                 "-c", "4", "-q", "200", "-t", "2"], 1),
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not match:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    if lost and int(lost.group(1)) > 0:
        print(f"  (note: {lost.group(1)} queries lost on port {port})")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not shutil.which("dnsperf"):
        sys.exit("dnsperf is not installed (apt-get install dnsperf)")
    work = tempfile.mkdtemp(prefix="gslb-bench-dns-")
    servers = [gslb_server(work)]
    for name, make in (("gdnsd", gdnsd_server), ("nsd", nsd_server)):
        if shutil.which(name):
            servers.append(make(work))
        else:
            print(f"{name} is not installed: skipped")
    targets = [("gslb static", servers[0], f"static.{ORIGIN}"), ("gslb load-balanced", servers[0], f"www.{ORIGIN}")]
    targets += [(f"{s.name} static", s, f"static.{ORIGIN}") for s in servers[1:]]
    results: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    try:
        for rnd in range(args.rounds):
            for label, server, qname in targets:
                server.start()
                try:
                    qps = dnsperf(server.port, qname, args.seconds, work)
                finally:
                    server.stop()
                results[label].append(qps)
                print(f"round {rnd + 1}: {label:<20} {qps:>10,.0f} q/s", flush=True)
    finally:
        for server in servers:
            server.stop()
    medians = {label: statistics.median(v) for label, v in results.items()}
    print(f"\nmedian of {args.rounds} rounds x {args.seconds:g} s (server on CPU 0, dnsperf -c 4 -q 200 on CPU 1):")
    for label, value in medians.items():
        print(f"  {label:<20} {value:>10,.0f} q/s")
    ratios = {}
    base = medians["gslb static"]
    for peer in ("gdnsd static", "nsd static"):
        if peer in medians:
            ratios[f"gslb static / {peer}"] = base / medians[peer]
    ratios["gslb load-balanced / gslb static"] = medians["gslb load-balanced"] / base
    for label, value in ratios.items():
        print(f"  {label:<36} {value:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "medians": medians, "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
