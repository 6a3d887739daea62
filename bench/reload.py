#!/usr/bin/env python3
"""DNS latency while a big zone reloads: p50/p99 of UDP answers before and during a forced reload.

    python bench/reload.py [--names 100000] [--pools 1000] [--reloads 3] [--json FILE]

Loopback only and bounded in time. Writes one generated zone (`--names` owner names: static A records,
one in ten answered by one of `--pools` latency pools; bench/zonegen.py) to a temporary directory,
starts `python -m gslb serve` on free 127.0.0.1 ports and queries it from one thread in a closed loop
(dnspython, one query at a time, 1 s timeout, a static name and a pool name in turn). It measures
2 s idle, then sends SIGHUP (a forced reload of the same file) and measures until GET /v1/zones shows
the new serial; `--reloads` times. Prints p50, p99 and max latency and the count of timeouts per phase,
and how long each reload took.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# This file is bench/reload.py: keep its folder off the import path so `import dns` finds dnspython.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import dns.exception
import dns.message
import dns.query

sys.path.append(HERE)
from zonegen import ORIGIN, write_zone

REPO = os.path.dirname(HERE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zones_api(api: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/v1/zones", timeout=5) as resp:
        return json.load(resp)


class Querier(threading.Thread):
    """Closed-loop UDP queries; `samples` holds (monotonic time sent, seconds or None for a timeout)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.samples, self.stop = port, [], threading.Event()

    def run(self) -> None:
        names = [f"h1.{ORIGIN}", f"h10.{ORIGIN}"]
        i = 0
        while not self.stop.is_set():
            q = dns.message.make_query(names[i % 2], "A")
            i += 1
            t0 = time.monotonic()
            try:
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=1.0)
                self.samples.append((t0, time.monotonic() - t0))
            except dns.exception.Timeout:
                self.samples.append((t0, None))


def summary(samples: list, seconds: float) -> dict:
    ok = sorted(s for _, s in samples if s is not None)
    if not ok:
        return {"queries": 0, "timeouts": len(samples)}
    pick = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] * 1000
    return {"queries": len(ok), "timeouts": len(samples) - len(ok), "p50_ms": round(pick(0.5), 2),
            "p99_ms": round(pick(0.99), 2), "max_ms": round(ok[-1] * 1000, 1), "qps": round(len(ok) / seconds)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--pools", type=int, default=1_000)
    ap.add_argument("--reloads", type=int, default=3)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zdir = os.path.join(tmp, "zones")
        os.mkdir(zdir)
        size = write_zone(os.path.join(zdir, "big.yaml"), args.names, args.pools)
        dns_port, api = free_port(), free_port()
        cmd = [sys.executable, "-m", "gslb", "serve", "--zones", zdir, "--data", os.path.join(REPO, "data"),
               "--listen", f"127.0.0.1:{dns_port}", "--api", f"127.0.0.1:{api}"]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    if zones_api(api)["zones"]:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("gslb serve did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(f"zone: {args.names} names, {args.pools} pools, {size / 1e6:.1f} MB; "
                  f"started in {time.monotonic() - t0:.1f} s")
            querier = Querier(dns_port)
            querier.start()
            idle, during, took, idle_s = [], [], [], 0.0
            for _ in range(args.reloads):
                start = time.monotonic()
                time.sleep(2)
                serial = zones_api(api)["zones"][0]["serial"]
                mid = time.monotonic()
                os.kill(proc.pid, signal.SIGHUP)
                while zones_api(api)["zones"][0]["serial"] == serial:
                    assert time.monotonic() - mid < 600, "reload did not finish"
                    time.sleep(0.05)
                end = time.monotonic()
                took.append(end - mid)
                idle_s += mid - start
                idle += [s for s in querier.samples if start <= s[0] < mid]
                during += [s for s in querier.samples if mid <= s[0] < end]
            querier.stop.set()
            querier.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    result = {"names": args.names, "pools": args.pools, "bytes": size, "idle": summary(idle, idle_s),
              "during_reload": summary(during, sum(took)), "reload_s": [round(t, 2) for t in took],
              "reload_median_s": round(statistics.median(took), 2)}
    for phase in ("idle", "during_reload"):
        print(f"{phase:>14}: {result[phase]}")
    print(f"reload took {result['reload_s']} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
