#!/usr/bin/env python3
"""DNS queries per second: gslb against gdnsd and nsd serving the same zone, measured in one run.

    python bench/dns.py [--seconds 5] [--rounds 3] [--json FILE]

Loopback only and bounded in time (about rounds x targets x seconds, plus start-up). One zone,
bench.gslb.test., is written in three forms to a temporary directory (gslb YAML, gdnsd and nsd zone
files); each server runs as a foreground child on its own ephemeral 127.0.0.1 port, with one
DNS thread/process, and is stopped at the end, also on Ctrl-C, SIGTERM or an error.
By default the servers run on CPU 0 and dnsperf on CPU 1 (taskset; --no-pin to let the kernel
place them). Each round runs every target once, in turn, so drift on a shared machine hits all of
them; the table shows the median queries/s of each target and gslb's ratios against the peers.
Before measuring, every target's answer is checked (NOERROR, AA, the expected address), and every
dnsperf run must see only NOERROR responses.
Targets: gslb static name, gslb load-balanced name (latency pool; the client is 127.0.0.1, so its
location is unknown), the same name with an EDNS Client Subnet in Europe (GeoIP + latency
ranking), the same name with ECS from 10,000 distinct /24s (dnsperf -B over a binary query file),
gdnsd static, nsd static. Needs the Debian packages dnsperf, gdnsd and nsd (a missing
peer is skipped and said so). --workers N runs gslb --workers N, gdnsd with N UDP threads and nsd
with N servers, unpinned. gslb's UDP mode follows GSLB_DNS_UDP (gslb/dns/udpbatch.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

# This file is bench/dns.py: keep its folder off the import path so `import dns` finds dnspython.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "bench.gslb.test"
STATIC = f"static.{ORIGIN}"
POOLED = f"www.{ORIGIN}"
STATIC_ADDRESS = "192.0.2.10"
POOL_ADDRESSES = {"192.0.2.1", "192.0.2.2", "198.51.100.1"}
EU_ADDRESSES = {"198.51.100.1"}
# EDNS Client Subnet (option 8): family 1 (IPv4), source /24, scope 0, 193.0.0.0 (RIPE NCC, Europe).
ECS_SUBNET = "193.0.0.0/24"
ECS_HEX = "0001" "18" "00" "c10000"
ECS_SUBNETS = 10_000       # the "lb + ECS x10k" target: this many distinct /24s, each asked in turn

# The same data for every server: an apex SOA and NS, glue, and one static name.
ZONE_FILE = f"""$TTL 3600
@       IN SOA ns1.{ORIGIN}. hostmaster.{ORIGIN}. 1 3600 600 1209600 60
@       IN NS  ns1.{ORIGIN}.
ns1     IN A   127.0.0.53
static  IN A   {STATIC_ADDRESS}
"""
GSLB_ZONE = f"""origin: {ORIGIN}.
ttl: 3600
soa: {{mname: ns1.{ORIGIN}., rname: hostmaster.{ORIGIN}., refresh: 3600, retry: 600, expire: 1209600, minimum: 60}}
records:
  "@": {{NS: [ns1.{ORIGIN}.]}}
  ns1: {{A: 127.0.0.53}}
  static: {{A: {STATIC_ADDRESS}}}
  www: {{pool: web}}
pools:
  web:
    policy: latency
    ttl: 30
    check: null
    sites:
      us: {{lat: 38.9, lon: -77.4, endpoints: [{{address: 192.0.2.1}}, {{address: 192.0.2.2}}]}}
      eu: {{lat: 53.3, lon: -6.3, endpoints: [{{address: 198.51.100.1}}]}}
"""


class Interrupted(Exception):
    """SIGTERM or SIGHUP: unwind through the finally blocks so the servers are stopped."""


def _on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


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


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu)] + cmd


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    log: str
    cwd: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, cpu: int | None) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(pinned(self.cmd, cpu), cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 20
        q = dns.message.make_query(STATIC, "A")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.3).answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {STATIC} within 20 s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server's process group (nsd forks its workers)."""
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if self.proc and int(fields[2]) == self.proc.pid:  # field 5, pgrp
                total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def tail(self) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return fh.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def gdnsd_server(work: str, workers: int = 1) -> Server:
    port = free_port()
    conf = os.path.join(work, "gdnsd")
    # gdnsd 3: one UDP and one TCP thread on our address and port; run/state dirs in the temp dir.
    write(os.path.join(conf, "config"),
          f"options => {{\n  listen => [ 127.0.0.1 ]\n  dns_port => {port}\n  udp_threads => {workers}\n"
          f"  tcp_threads => 1\n  run_dir => {work}/gdnsd-run\n  state_dir => {work}/gdnsd-state\n}}\n")
    write(os.path.join(conf, "zones", ORIGIN), ZONE_FILE)
    return Server("gdnsd", ["gdnsd", "-c", conf, "start"], port, os.path.join(work, "gdnsd.log"))


def nsd_server(work: str, workers: int = 1) -> Server:
    port = free_port()
    conf = os.path.join(work, "nsd")
    write(os.path.join(conf, "bench.zone"), ZONE_FILE)
    # Response rate limiting off (it is on by default and would drop most of a benchmark's queries),
    # minimal responses like the others, one server process, no chroot or privilege drop, files here.
    write(os.path.join(conf, "nsd.conf"), f"""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  server-count: {workers}
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
    return Server("nsd", ["nsd", "-d", "-c", os.path.join(conf, "nsd.conf")], port, os.path.join(work, "nsd.log"))


def gslb_server(work: str, workers: int = 1) -> Server:
    port = free_port()
    zones = os.path.join(work, "gslb-zones")
    write(os.path.join(zones, "bench.yaml"), GSLB_ZONE)
    cmd = [sys.executable, "-m", "gslb", "--log-level", "WARNING", "serve", "--zones", zones,
           "--listen", f"127.0.0.1:{port}", "--api", "off"] + (["--workers", str(workers)] if workers > 1 else [])
    return Server("gslb", cmd, port, os.path.join(work, "gslb.log"), cwd=REPO)


@dataclass
class Target:
    label: str
    server: Server
    qname: str
    expect: set[str]
    ecs: bool = False
    many_subnets: bool = False  # ECS_SUBNETS distinct ECS /24s from all over the IPv4 space (dnsperf -B)


def check_answer(t: Target) -> int:
    """Ask once with dnspython; the answer must be what every server should say. Returns its size."""
    options = [dns.edns.ECSOption.from_text(ECS_SUBNET)] if t.ecs else None
    if t.many_subnets:
        options = [dns.edns.ECSOption(subnets()[0], 24)]
    q = dns.message.make_query(t.qname, "A", use_edns=0 if t.ecs else None, options=options)
    r = dns.query.udp(q, "127.0.0.1", port=t.server.port, timeout=2)
    got = {rr.address for rrset in r.answer for rr in rrset if rrset.rdtype == 1}
    problems = []
    if r.rcode() != dns.rcode.NOERROR:
        problems.append(f"rcode {dns.rcode.to_text(r.rcode())}")
    if not r.flags & dns.flags.AA:
        problems.append("AA not set")
    if not got or not got <= t.expect:
        problems.append(f"answer {sorted(got)} not within {sorted(t.expect)}")
    if problems:
        raise RuntimeError(f"{t.label}: {', '.join(problems)}\n{r}")
    return len(r.to_wire())


def subnets() -> list[str]:
    """ECS_SUBNETS distinct /24 network addresses spread over the public IPv4 space (fixed seed)."""
    rng = random.Random(12)
    found: dict[str, None] = {}
    while len(found) < ECS_SUBNETS:
        first = rng.randrange(1, 224)
        if first in (10, 127):
            continue
        found[f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.0"] = None
    return list(found)


def many_subnets_file(path: str, qname: str) -> None:
    """dnsperf -B input: one query per subnet, each with EDNS and its ECS option, length-prefixed."""
    with open(path, "wb") as fh:
        for address in subnets():
            q = dns.message.make_query(qname, "A", use_edns=0, options=[dns.edns.ECSOption(address, 24)])
            q.flags &= ~dns.flags.RD
            wire = q.to_wire()
            fh.write(len(wire).to_bytes(2, "big") + wire)


def dnsperf(t: Target, seconds: float, work: str, load: list[str], cpu: int | None) -> dict:
    """One dnsperf run against a target; `load` is its -c/-q/-T arguments."""
    qfile = os.path.join(work, f"q-{t.qname}" + ("-subnets" if t.many_subnets else ""))
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(t.server.port), "-d", qfile, "-l", f"{seconds:g}",
           "-t", "2", *load]
    if t.many_subnets:
        if not os.path.exists(qfile):
            many_subnets_file(qfile, t.qname)
        cmd.append("-B")
    else:
        write(qfile, f"{t.qname} A\n")
    if t.ecs and not t.many_subnets:
        cmd += ["-E", f"8:{ECS_HEX}"]
    cpu0, t0 = t.server.cpu_seconds(), time.monotonic()
    done = subprocess.run(pinned(cmd, cpu), check=False, capture_output=True, text=True, timeout=seconds + 30)
    server_cpu = (t.server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    out = done.stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    if done.returncode or not qps:
        raise RuntimeError(f"dnsperf failed ({done.returncode}):\n{out}\n{done.stderr}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    codes = re.search(r"Response codes:\s+(.*)", out)
    latency = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    codes_text = codes.group(1).strip() if codes else "?"
    if not re.fullmatch(r"NOERROR \d+ \(100\.00%\)", codes_text):
        raise RuntimeError(f"{t.label}: not every response was NOERROR: {codes_text}")
    rate = float(qps.group(1))
    return {"qps": rate, "lost": int(lost.group(1)) if lost else None,
            "latency_ms": float(latency.group(1)) * 1000 if latency else None,
            "server_cpu": server_cpu, "q_per_cpu_s": rate / server_cpu if server_cpu > 0.05 else None}


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = out.stdout + out.stderr
    m = re.search(r"(?:version|Version)\s+v?([\d.]+\S*)", text)
    return m.group(1) if m else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each dnsperf run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every target (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c (default 4)")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="dnsperf -T (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers to CPU 0 and dnsperf to CPU 1")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="gslb --workers N, gdnsd udp_threads N, nsd server-count N (N > 1 implies --no-pin)")
    parser.add_argument("--only", metavar="WORD", action="append",
                        help="measure only targets whose label contains WORD (repeatable)")
    args = parser.parse_args()
    if not shutil.which("dnsperf"):
        sys.exit("dnsperf is not installed (apt-get install dnsperf)")
    pin = not args.no_pin and args.workers == 1 and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    if pin:
        server_cpu, client_cpu = sorted(os.sched_getaffinity(0))[:2]

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    work = tempfile.mkdtemp(prefix="gslb-bench-dns-")
    servers = [gslb_server(work, args.workers)]
    skipped = []
    for name, make in (("gdnsd", gdnsd_server), ("nsd", nsd_server)):
        if shutil.which(name):
            servers.append(make(work, args.workers))
        else:
            skipped.append(name)
            print(f"{name} is not installed: skipped")
    gslb = servers[0]
    targets = [Target("gslb static", gslb, STATIC, {STATIC_ADDRESS}),
               Target("gslb load-balanced", gslb, POOLED, POOL_ADDRESSES),
               Target("gslb lb + ECS", gslb, POOLED, EU_ADDRESSES, ecs=True),
               Target("gslb lb + ECS x10k", gslb, POOLED, POOL_ADDRESSES, ecs=True, many_subnets=True)]
    targets += [Target(f"{s.name} static", s, STATIC, {STATIC_ADDRESS}) for s in servers[1:]]
    if args.only:
        targets = [t for t in targets if any(w in t.label for w in args.only)]
    servers = [s for s in servers if any(t.server is s for t in targets)]
    load = ["-c", str(args.clients), "-q", str(args.outstanding), "-T", str(args.threads)]
    setting = (f"dnsperf {' '.join(load)}, UDP, one query name per target; "
               + (f"servers pinned to CPU {server_cpu}, dnsperf to CPU {client_cpu}" if pin else "no CPU pinning")
               + f"; {args.workers} worker(s)/thread(s)/server(s) each; gslb UDP mode "
               + os.environ.get("GSLB_DNS_UDP", "auto"))
    results: dict[str, list[dict]] = {t.label: [] for t in targets}
    sizes: dict[str, int] = {}
    try:
        for s in servers:
            s.start(server_cpu)
        for t in targets:
            sizes[t.label] = check_answer(t)
            dnsperf(t, 1, work, load, client_cpu)  # warm-up, not counted
        print(setting, flush=True)
        for rnd in range(args.rounds):
            for t in targets:
                run = dnsperf(t, args.seconds, work, load, client_cpu)
                results[t.label].append(run)
                print(f"round {rnd + 1}: {t.label:<20} {run['qps']:>10,.0f} q/s  server CPU {run['server_cpu']:4.0%}"
                      f"  latency {run['latency_ms']:.2f} ms  lost {run['lost']}", flush=True)
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"interrupted ({type(e).__name__} {e}): servers stopped", file=sys.stderr)
        return 130
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    def median(label: str, key: str) -> float | None:
        values = [r[key] for r in results[label] if r[key] is not None]
        return statistics.median(values) if values else None

    medians = {label: median(label, "qps") for label in results}
    per_cpu = {label: median(label, "q_per_cpu_s") for label in results}
    print(f"\nmedian of {args.rounds} rounds x {args.seconds:g} s ({setting}):")
    print(f"  {'target':<20} {'queries/s':>10} {'min':>9} {'max':>9}  {'server CPU':>10}  {'q/CPU-s':>9}  reply bytes")
    for label, value in medians.items():
        qps = [r["qps"] for r in results[label]]
        cpu = median(label, "server_cpu")
        print(f"  {label:<20} {value:>10,.0f} {min(qps):>9,.0f} {max(qps):>9,.0f}  {cpu:>10.0%}  "
              f"{per_cpu[label] or 0:>9,.0f}  {sizes[label]:>11}")
    ratios = {}
    pairs = [("gslb static", "gdnsd static"), ("gslb static", "nsd static"),
             ("gslb load-balanced", "gslb static"), ("gslb lb + ECS", "gslb static"),
             ("gslb lb + ECS x10k", "gslb static")]
    for a, b in pairs:
        if a in medians and b in medians:
            ratios[f"{a} / {b}"] = medians[a] / medians[b]
            if per_cpu[a] and per_cpu[b]:
                ratios[f"{a} / {b}, per server CPU-second"] = per_cpu[a] / per_cpu[b]
    print("ratios of the medians:")
    for label, value in ratios.items():
        print(f"  {label:<55} {value:.2f}x")
    print("(server CPU: share of one core the server process group used during the run; a peer well below 100 %"
          "\n is limited by dnsperf, not by itself, so its queries/s is a floor)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"setting": setting, "seconds": args.seconds, "rounds": args.rounds,
                       "dnsperf_load": load, "pinned": pin,
                       "versions": {"python": platform.python_version(), "dnsperf": version(["dnsperf", "-h"]),
                                    "gdnsd": version(["gdnsd", "-h"]), "nsd": version(["nsd", "-v"])},
                       "skipped": skipped, "response_bytes": sizes, "runs": results, "medians": medians,
                       "medians_per_cpu_second": per_cpu,
                       "ratios": ratios}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
