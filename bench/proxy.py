#!/usr/bin/env python3
"""Reverse-proxy throughput: `gslb proxy` against nginx and HAProxy over the same two backends, one run.

    python bench/proxy.py [--seconds 5] [--rounds 3] [--json FILE]

Loopback only, bounded in time. Two small backends answer 100-byte responses with keep-alive; each
proxy runs alone, pinned to CPU 0 with one worker; wrk (-t2 -c64) and the backends share CPU 1. Prints
requests/s and p99 latency (medians over rounds) and the ratios gslb/nginx and gslb/HAProxy.
Needs the Debian packages wrk, nginx and haproxy (a missing peer is skipped and said so).
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = r'''
import asyncio, sys
BODY = b"x" * 100
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + BODY
class H(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)
async def main():
    s = await asyncio.get_running_loop().create_server(H, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await s.serve_forever()
try:
    import uvloop; uvloop.install()
except ImportError: pass
asyncio.run(main())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int) -> list[str]:
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + cmd


def wait_port(port: int, limit: float = 15) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start(cmd: list[str], port: int, cwd: str | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(pinned(cmd, 0), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wrk(port: int, seconds: float) -> tuple[float, float]:
    out = subprocess.run(pinned(["wrk", "-t2", "-c64", f"-d{seconds:g}s", "--latency",
                                 f"http://127.0.0.1:{port}/"], 1),
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        print("  (wrk reported errors: " + " ".join(line.strip() for line in out.splitlines()
                                                   if "Non-2xx" in line or "Socket errors" in line) + ")")
    return rps, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    work = tempfile.mkdtemp(prefix="gslb-bench-proxy-")
    with open(os.path.join(work, "backend.py"), "w") as fh:
        fh.write(BACKEND)
    b1, b2 = free_port(), free_port()
    backends = [subprocess.Popen(pinned([sys.executable, os.path.join(work, "backend.py"), str(p)], 1),
                                 start_new_session=True) for p in (b1, b2)]
    for p in (b1, b2):
        wait_port(p)

    targets: dict[str, tuple[list[str], int]] = {}
    port = free_port()
    with open(os.path.join(work, "gslb.yaml"), "w") as fh:
        fh.write(f"listen: [127.0.0.1:{port}]\nadmin: 127.0.0.1:{free_port()}\naccess_log: false\n"
                 f"pools: {{app: {{algorithm: round_robin, backends: [{{address: '127.0.0.1:{b1}'}}, "
                 f"{{address: '127.0.0.1:{b2}'}}]}}}}\nroutes: [{{default: true, pool: app}}]\n")
    targets["gslb"] = ([sys.executable, "-m", "gslb", "--log-level", "WARNING", "proxy", "--config",
                        os.path.join(work, "gslb.yaml")], port)
    if shutil.which("nginx"):
        port = free_port()
        with open(os.path.join(work, "nginx.conf"), "w") as fh:
            fh.write(f"""worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work};
  upstream app {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; }} }} }}
""")
        targets["nginx"] = (["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", work], port)
    else:
        print("nginx is not installed: skipped")
    if shutil.which("haproxy"):
        port = free_port()
        with open(os.path.join(work, "haproxy.cfg"), "w") as fh:
            fh.write(f"""global
  nbthread 1
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{port}
  default_backend app
backend app
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:{b1}
  server b2 127.0.0.1:{b2}
""")
        targets["haproxy"] = (["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")], port)
    else:
        print("haproxy is not installed: skipped")

    results: dict[str, list[tuple[float, float]]] = {"backend direct": []}
    results.update({name: [] for name in targets})
    try:
        for rnd in range(args.rounds):
            results["backend direct"].append(wrk(b1, args.seconds))
            for name, (cmd, port) in targets.items():
                proc = start(cmd, port, cwd=REPO)
                try:
                    wrk(port, 1)                       # warm up: connections, caches
                    results[name].append(wrk(port, args.seconds))
                finally:
                    stop(proc)
            print(f"round {rnd + 1}: " + ", ".join(f"{n} {r[-1][0]:,.0f} req/s p99 {r[-1][1]:.2f} ms"
                                                   for n, r in results.items()), flush=True)
    finally:
        for proc in backends:
            stop(proc)
    medians = {name: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v))
               for name, v in results.items()}
    print(f"\nmedian of {args.rounds} rounds x {args.seconds:g} s (proxy on CPU 0, one worker; wrk -t2 -c64 "
          "and backends on CPU 1, 100-byte responses, keep-alive):")
    for name, (rps, p99) in medians.items():
        print(f"  {name:<16} {rps:>10,.0f} req/s   p99 {p99:6.2f} ms")
    ratios = {}
    for peer in ("nginx", "haproxy"):
        if peer in medians:
            ratios[f"gslb/{peer} req/s"] = medians["gslb"][0] / medians[peer][0]
            ratios[f"gslb/{peer} p99"] = medians["gslb"][1] / medians[peer][1]
    for label, value in ratios.items():
        print(f"  {label:<22} {value:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "medians": medians, "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
