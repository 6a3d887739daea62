#!/usr/bin/env python3
"""Flat cost as it grows: big zones, a prober of many endpoints, a fleet of probers (docs/performance.md).

    python bench/scale.py [zones] [probe] [fleet] [--json FILE] [--quick]

With no part named, all three run. Loopback only; every phase is bounded in count and time.

zones   Zones of 1,000, 10,000 and 100,000 names plus 1,000 pools (bench/zonegen.py), each served by its
        own `gslb serve`: the time until the first answer (process start included), the resident memory
        then, a query file over all names asked once each (dnsperf, cold: the first query to each name),
        then over and over for 5 s (warm); the reload time of a changed file; for the biggest zone the p50/p99 of UDP
        answers (dnspython, closed loop) while idle and during its reload. Needs dnsperf (Debian package).
probe   One `gslb probe` checking 10,000 HTTP endpoints (one server process listening on 10,000
        loopback ports) every 1 s, reporting to one `gslb serve`: the prober's CPU share, the lateness of
        its checks (p50/p99 of start minus due time, from its /metrics), the size of its reports (full
        and incremental) and the server's time to ingest one (gslb_prober_ingest_seconds).
fleet   Probers of N nodes-worth of regions reporting to N servers on loopback, (nodes, regions, targets)
        = (2, 3, 100) and (10, 5, 1,000): report bytes/s into each server and the servers' CPU share,
        with incremental reports; the (100, 10, 10,000) row is modelled from these two.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# This file is bench/scale.py: keep its folder off the import path so `import dns` finds dnspython.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import dns.exception
import dns.message
import dns.query

sys.path.append(HERE)
from reload import Querier, summary
from zonegen import ORIGIN, write_zone

REPO = os.path.dirname(HERE)
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError, IndexError, dns.exception.DNSException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def answers(port: int, name: str) -> bool:
    q = dns.message.make_query(name, "A")
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    return r.rcode() == 0 and bool(r.answer)


def soa_serial(port: int) -> int:
    """The serial of the zone's SOA as answered now."""
    r = dns.query.udp(dns.message.make_query(f"{ORIGIN}.", "SOA"), "127.0.0.1", port=port, timeout=0.5)
    return r.answer[0][0].serial


class Serve:
    """A `gslb serve` on free loopback ports (DNS and API)."""

    def __init__(self, zdir: str, extra: list[str] | None = None, env: dict | None = None):
        self.dns, self.api = free_port(), free_port()
        cmd = [PY, "-m", "gslb", "serve", "--zones", zdir, "--data", os.path.join(REPO, "data"),
               "--listen", f"127.0.0.1:{self.dns}", "--api", f"127.0.0.1:{self.api}", *(extra or [])]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api}{path}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def dnsperf(port: int, qfile: str, clients: int = 4, outstanding: int = 100, seconds: float = 0) -> dict:
    """One pass over the query file (each line asked once), or with `seconds` the file over and over."""
    run = ["-l", f"{seconds:g}"] if seconds else ["-n", "1"]
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, *run, "-c", str(clients),
           "-q", str(outstanding), "-t", "5"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    noerror = int(re.search(r"NOERROR (\d+)", out).group(1)) if "NOERROR" in out else 0
    return {"qps": round(qps), "lost": lost, "noerror": noerror}


def bench_zone(names: int, pools: int, tmp: str, latency: bool) -> dict:
    zdir = os.path.join(tmp, f"zones{names}")
    os.mkdir(zdir)
    path = os.path.join(zdir, "big.yaml")
    size = write_zone(path, names, pools)
    qfile = os.path.join(tmp, f"q{names}.txt")
    order = list(range(1, names + 1))
    random.Random(names).shuffle(order)
    with open(qfile, "w") as fh:
        fh.writelines(f"h{n}.{ORIGIN} A\n" for n in order)
    config = os.path.join(tmp, f"server{names}.yaml")
    with open(config, "w") as fh:          # state (serials, health) in the temp dir, not the work tree
        fh.write(f"health:\n  state_dir: {os.path.join(tmp, f'state{names}')}\n")
    serve = Serve(zdir, ["--config", config])
    try:
        wait_for(lambda: answers(serve.dns, f"ns1.{ORIGIN}"), 600, "the first answer")
        ready = time.monotonic() - serve.started
        rss, hwm = rss_mb(serve.proc.pid)
        cold = dnsperf(serve.dns, qfile)
        warm = dnsperf(serve.dns, qfile, seconds=5)
        rss_after, hwm_after = rss_mb(serve.proc.pid)
        row = {"names": names, "pools": pools, "bytes": size, "ready_s": round(ready, 2),
               "rss_mb": round(rss, 1), "hwm_mb": round(hwm, 1), "cold": cold, "warm": warm,
               "rss_after_queries_mb": round(rss_after, 1), "hwm_after_queries_mb": round(hwm_after, 1)}
        # A reload of a changed file (the serial follows the content: gslb/config/serials.py).
        querier = None
        if latency:
            querier = Querier(serve.dns)
            querier.start()
            time.sleep(3)
        serial = soa_serial(serve.dns)
        with open(path, "a") as fh:
            fh.write("# changed\n")
        mid = time.monotonic()
        serve.proc.send_signal(signal.SIGHUP)
        # Watched over DNS, not GET /v1/zones: 50 API calls a second (about 1 ms each on the loop for this
        # zone) were themselves the p99 of the answers measured during the reload.
        wait_for(lambda: soa_serial(serve.dns) != serial, 600, "the reload")
        end = time.monotonic()
        row["reload_s"] = round(end - mid, 2)
        row["rss_after_reload_mb"], row["hwm_after_reload_mb"] = (round(v, 1) for v in rss_mb(serve.proc.pid))
        if querier is not None:
            time.sleep(1)
            querier.stop.set()
            querier.join()
            row["idle"] = summary([s for s in querier.samples if s[0] < mid - 0.5], mid - 0.5 - querier.samples[0][0])
            row["during_reload"] = summary([s for s in querier.samples if mid <= s[0] < end], end - mid)
    finally:
        serve.stop()
    return row


def run_zones(args) -> list[dict]:
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            row = bench_zone(n, 1_000, tmp, latency=n == sizes[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    # A pass over 1,000 names lasts tens of milliseconds: the 1k zone's steady rate is its warm run.
    base = rows[0]["warm"]["qps"]
    for row in rows:
        row["cold_vs_1k"] = round(row["cold"]["qps"] / base, 2)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", metavar="PART", help="zones, probe, fleet (default: all)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--probe-targets", type=int, default=10_000, metavar="N",
                    help="endpoints the probe part checks (default 10,000: needs about 2x N file descriptors)")
    args = ap.parse_args()
    parts = args.parts or ["zones", "probe", "fleet"]
    if set(parts) - {"zones", "probe", "fleet"}:
        ap.error(f"unknown part {sorted(set(parts) - {'zones', 'probe', 'fleet'})}: zones, probe or fleet")
    result: dict = {}
    if "zones" in parts:
        result["zones"] = run_zones(args)
    if "probe" in parts:
        from scaleprobe import run_probe
        result["probe"] = run_probe(args)
    if "fleet" in parts:
        from scaleprobe import run_fleet
        result["fleet"] = run_fleet(args)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
