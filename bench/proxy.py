#!/usr/bin/env python3
"""Reverse-proxy throughput: `gslb proxy` against nginx over the same backends, measured in one run.

    python bench/proxy.py [--seconds 5] [--rounds 5] [--workers 1] [--log-compare] [--json FILE]
    python bench/proxy.py --friendly      # the old, friendly setup (not the headline; see below)
    python bench/proxy.py --in-memory     # CPU time per request of the request path, access log on/off

Realistic mode (the default, the headline figure): wrk sends browser-like requests (Host plus 8 headers:
User-Agent, Accept, Accept-Language, Accept-Encoding, Cookie, Referer, Cache-Control, X-Client-Version);
two nginx backends answer 1 KiB with 10 headers (Server, Date, Content-Type, Content-Length, Connection,
Cache-Control, ETag, Vary, Set-Cookie, X-Backend); both proxies write an access log: gslb its default
(`access_log: true`, to stderr, here a file), nginx `combined` with `buffer=64k`; both set
X-Forwarded-For/-Proto/-Host and X-Request-ID. With `--workers 1` each proxy has one worker pinned to
CPU 0 and wrk (-t2 -c64) and the backends share CPU 1; with `--workers N` (N > 1) nothing is pinned.
Every round runs every target once, in turn, so drift on a shared machine hits all of them. Printed:
median requests/s over the rounds with the spread (min-max), median p99, the server's CPU (from
/proc, summed over its process group) and requests per server CPU-second, and gslb's ratios to nginx.
`--log-compare` adds gslb with `access_log: false`, for the cost of the log; `--floor` adds a bare uvloop
relay (each client connection paired with a backend connection, bytes copied, no HTTP): its requests per
CPU-second are what the event loop and the kernel cost any Python proxy here. `--profile FILE` records
gslb with py-spy (collapsed stacks) during its first measured run.

In-memory mode (`--in-memory`): no sockets and no peers: the browser-like request and the nginx-like response
are fed straight into gslb's wire objects (ClientConnection, Exchange, UpstreamConnection with in-memory
transports; routes, balancer, metrics and access log real, the log written to /dev/null), and the CPU time
per request is printed with the access log on and off: the Python cost of the request path, steady on a
noisy machine (best of 9 batches of 20,000 each, on and off in turn).

Friendly mode (`--friendly`): the issue-12 "before" setup: Python backends answering 100 bytes with 2
headers, bare wrk requests, gslb's access log off, nginx's off, HAProxy as a third peer. It flatters
every proxy; it stays for comparison with older figures.

Loopback only, bounded in time. Needs the Debian packages wrk and nginx (and haproxy for --friendly;
a missing peer is skipped and said so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")

FRIENDLY_BACKEND = r'''
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

# What a browser sends for a page of a shop (Host is added by wrk from the URL).
BROWSER_HEADERS = {
    "Host": "shop.example.com",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9,de;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Cookie": "session=7f3c9a2e41b84d6f9e0a1c5b3d7e9f21; _ga=GA1.2.1234567890.1700000000; theme=dark; "
              "cart=3",
    "Referer": "https://shop.example.com/catalog/shoes?page=2",
    "Cache-Control": "max-age=0",
    "X-Client-Version": "web-4.12.0",
}
BROWSER_PATH = "/catalog/shoes/item/42?color=blue&size=9"

# --floor: what any uvloop proxy pays before doing HTTP: each client connection paired with one backend
# connection, bytes copied both ways, no parsing. Its req/CPU-s is the event loop's and the kernel's share.
RELAY = r'''
import asyncio, sys
import uvloop
BACKEND = ("127.0.0.1", int(sys.argv[2]))
class Up(asyncio.Protocol):
    def __init__(self, client): self.client = client
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.client.t.write(d)
class Client(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.up, self.pending = t, None, []
        asyncio.ensure_future(self.connect())
    async def connect(self):
        _, self.up = await asyncio.get_running_loop().create_connection(lambda: Up(self), *BACKEND)
        for d in self.pending: self.up.t.write(d)
    def data_received(self, d):
        if self.up is None: self.pending.append(d)
        else: self.up.t.write(d)
async def main():
    s = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await s.serve_forever()
uvloop.install()
asyncio.run(main())
'''
BODY_SIZE = 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def wait_port(port: int, limit: float = 15) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def launch(cmd: list[str], port: int, cpu: int | None, stderr=subprocess.PIPE) -> subprocess.Popen:
    proc = subprocess.Popen(pinned(cmd, cpu), cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True)
    try:
        wait_port(port)
    except RuntimeError:
        stop(proc)
        raise RuntimeError(f"{cmd[0]} did not start: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every process in the process group `pgid` (from /proc)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:                   # fields[0] is the state: pgrp is the 5th field
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def wrk(port: int, seconds: float, script: str | None, cpu: int | None, path: str = "/") -> dict:
    cmd = ["wrk", "-t2", "-c64", f"-d{seconds:g}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(pinned([*cmd, f"http://127.0.0.1:{port}{path}"], cpu),
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = " ".join(line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line)
    if errors:
        print(f"  (wrk reported errors on port {port}: {errors})")
    return {"rps": rps, "p99": p99, "errors": errors}


class Target:
    """A proxy under test: its command, port, and figures per round."""

    def __init__(self, name: str, cmd: list[str], port: int, stderr_path: str | None = None):
        self.name, self.cmd, self.port = name, cmd, port
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen | None = None
        self.runs: list[dict] = []

    def start(self, cpu: int | None) -> None:
        if self.stderr_path:
            with open(self.stderr_path, "ab") as err:
                self.proc = launch(self.cmd, self.port, cpu, stderr=err)
        else:
            self.proc = launch(self.cmd, self.port, cpu)

    def measure(self, seconds: float, script: str | None, cpu: int | None, path: str,
                profile: str | None = None) -> dict:
        pgid = self.proc.pid
        spy = None
        if profile:
            spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--format",
                                    "raw", "-r", "200", "-d", str(int(seconds)), "-o", profile, "--subprocesses",
                                    "--pid", str(pgid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)                          # py-spy attaches before the load starts
        cpu0, t0 = group_cpu(pgid), time.monotonic()
        run = wrk(self.port, seconds, script, cpu, path)
        cpu1, t1 = group_cpu(pgid), time.monotonic()
        if spy is not None:
            spy.wait(seconds + 30)
        run["cpu"] = (cpu1 - cpu0) / (t1 - t0)       # cores busy on average
        run["per_cpu_s"] = run["rps"] * (t1 - t0) / max(cpu1 - cpu0, 1e-9)
        self.runs.append(run)
        return run

    def summary(self) -> dict:
        rps = [r["rps"] for r in self.runs]
        med = statistics.median(rps)
        return {"rps": med, "rps_min": min(rps), "rps_max": max(rps),
                "spread": (max(rps) - min(rps)) / med if med else 0.0,
                "p99": statistics.median(r["p99"] for r in self.runs),
                "cpu": statistics.median(r["cpu"] for r in self.runs if "cpu" in r) if "cpu" in self.runs[0] else None,
                "per_cpu_s": statistics.median(r["per_cpu_s"] for r in self.runs) if "per_cpu_s" in self.runs[0]
                else None}


# -- realistic mode -----------------------------------------------------------------------------------------

def wrk_script(work: str) -> str:
    lines = ['wrk.method = "GET"', f'wrk.path = "{BROWSER_PATH}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in BROWSER_HEADERS.items()]
    path = os.path.join(work, "browser.lua")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def backend_nginx(work: str, ports: list[int]) -> str:
    body = "x" * BODY_SIZE
    servers = "".join(f"""
  server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 1000000; keepalive_timeout 300s;
    location / {{
      default_type "text/html; charset=utf-8";
      add_header Cache-Control "private, max-age=0, must-revalidate";
      add_header ETag '"65f1a2b3-400"';
      add_header Vary "Accept-Encoding, Cookie";
      add_header Set-Cookie "csrftoken=Yk3mN8qPz1Lw; Path=/; Max-Age=31449600; Secure; SameSite=Lax";
      add_header X-Backend b{i};
      return 200 "{body}";
    }} }}""" for i, port in enumerate(ports, 1))
    conf = os.path.join(work, "backends.conf")
    with open(conf, "w") as fh:
        fh.write(f"""worker_processes 1; daemon off; pid {work}/backends.pid; error_log {work}/backends.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work}; server_tokens on;{servers}
}}
""")
    return conf


def proxy_nginx(work: str, port: int, backends: list[int], workers: int) -> str:
    servers = " ".join(f"server 127.0.0.1:{b};" for b in backends)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(f"""worker_processes {workers}; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log {work}/nginx-access.log combined buffer=64k flush=1s;
  client_body_temp_path {work}; proxy_temp_path {work};
  keepalive_requests 1000000; keepalive_timeout 300s;
  upstream app {{ {servers} keepalive 128; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://app; proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-ID $request_id;
      add_header X-Request-ID $request_id;
    }} }} }}
""")
    return conf


def gslb_config(work: str, name: str, port: int, backends: list[int], access_log: bool) -> str:
    path = os.path.join(work, f"{name}.yaml")
    items = ", ".join(f"{{address: '127.0.0.1:{b}'}}" for b in backends)
    with open(path, "w") as fh:
        fh.write(f"listen: [127.0.0.1:{port}]\nadmin: 127.0.0.1:{free_port()}\n"
                 f"access_log: {'true' if access_log else 'false'}\n"
                 f"pools: {{app: {{algorithm: round_robin, backends: [{items}]}}}}\n"
                 "routes: [{default: true, pool: app}]\n")
    return path


def check_response(port: int) -> tuple[int, int]:
    """One browser-like request: (response header count, body length); anything but 200 is an error."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{BROWSER_PATH}",
                                 headers={k: v for k, v in BROWSER_HEADERS.items() if k != "Accept-Encoding"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
        if resp.status != 200 or len(body) != BODY_SIZE:
            raise RuntimeError(f"port {port}: status {resp.status}, {len(body)} bytes")
        return len(resp.headers), len(body)


def count_lines(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def realistic(args: argparse.Namespace, work: str) -> dict:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install -y wrk nginx)")
    pin = args.workers == 1 and not args.no_pin
    proxy_cpu, client_cpu = (0, 1) if pin else (None, None)
    script = wrk_script(work)
    b1, b2 = free_port(), free_port()
    backends = launch(["nginx", "-c", backend_nginx(work, [b1, b2]), "-p", work], b1, client_cpu)
    wait_port(b2)
    targets = []
    port = free_port()
    workers = ["--workers", str(args.workers)] if args.workers > 1 else []
    targets.append(Target("gslb", [sys.executable, "-m", "gslb", "proxy", "--config",
                                   gslb_config(work, "gslb", port, [b1, b2], True), *workers], port,
                          os.path.join(work, "gslb.stderr")))
    if args.log_compare:
        port = free_port()
        targets.append(Target("gslb, log off", [sys.executable, "-m", "gslb", "proxy", "--config",
                                                gslb_config(work, "gslb-nolog", port, [b1, b2], False),
                                                *workers], port, os.path.join(work, "gslb-nolog.stderr")))
    port = free_port()
    targets.append(Target("nginx", ["nginx", "-c", proxy_nginx(work, port, [b1, b2], args.workers), "-p", work],
                          port))
    if args.floor:
        relay = os.path.join(work, "relay.py")
        with open(relay, "w") as fh:
            fh.write(RELAY)
        port = free_port()
        targets.append(Target("uvloop relay", [sys.executable, relay, str(port), str(b1)], port))
    direct = Target("backend direct", [], b1)
    direct.proc = backends
    started = []
    try:
        for target in targets:
            target.start(proxy_cpu)
            started.append(target)
        print(f"realistic mode: {len(BROWSER_HEADERS) - 1} request headers + Host, "
              f"{check_response(b1)[0]} response headers from the nginx backends, {BODY_SIZE}-byte bodies; "
              f"access logs on (gslb default, nginx combined buffer=64k); {args.workers} worker(s) each, "
              + ("proxy on CPU 0, wrk -t2 -c64 and backends on CPU 1" if pin else "nothing pinned"), flush=True)
        for target in targets:
            headers, _ = check_response(target.port)
            print(f"  {target.name}: {headers} response headers through the proxy")
            wrk(target.port, 1, script, client_cpu, BROWSER_PATH)     # warm-up: connections, caches
        for rnd in range(args.rounds):
            line = []
            for target in [direct, *targets]:
                profile = args.profile if target.name == "gslb" and rnd == 0 else None
                run = target.measure(args.seconds, script, client_cpu, BROWSER_PATH, profile)
                line.append(f"{target.name} {run['rps']:,.0f}/s p99 {run['p99']:.2f}ms cpu {run['cpu']:.2f}")
            print(f"round {rnd + 1}: " + ", ".join(line), flush=True)
    finally:
        for target in started:
            stop(target.proc)
        stop(backends)
    logs = {"gslb": count_lines(os.path.join(work, "gslb.stderr")),
            "nginx": count_lines(os.path.join(work, "nginx-access.log"))}
    return report([direct, *targets], args, logs,
                  f"realistic, {args.workers} worker(s) each, " + ("pinned" if pin else "unpinned"))


# -- friendly mode --------------------------------------------------------------------------------------------

def friendly(args: argparse.Namespace, work: str) -> dict:
    print("friendly mode: Python backends with 2 response headers, bare requests, access logs off "
          "(issue 12's 'before' setup; it flatters every proxy; the headline is the default realistic mode)")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    pin = args.workers == 1 and not args.no_pin
    proxy_cpu, client_cpu = (0, 1) if pin else (None, None)
    with open(os.path.join(work, "backend.py"), "w") as fh:
        fh.write(FRIENDLY_BACKEND)
    b1, b2 = free_port(), free_port()
    backends = [launch([sys.executable, os.path.join(work, "backend.py"), str(p)], p, client_cpu) for p in (b1, b2)]
    targets = []
    port = free_port()
    workers = ["--workers", str(args.workers)] if args.workers > 1 else []
    targets.append(Target("gslb", [sys.executable, "-m", "gslb", "--log-level", "WARNING", "proxy", "--config",
                                   gslb_config(work, "gslb", port, [b1, b2], False), *workers], port))
    if shutil.which("nginx"):
        port = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(f"""worker_processes {args.workers}; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work};
  upstream app {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; }} }} }}
""")
        targets.append(Target("nginx", ["nginx", "-c", conf, "-p", work], port))
    else:
        print("nginx is not installed: skipped")
    if shutil.which("haproxy"):
        port = free_port()
        cfg = os.path.join(work, "haproxy.cfg")
        with open(cfg, "w") as fh:
            fh.write(f"""global
  nbthread {args.workers}
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
        targets.append(Target("haproxy", ["haproxy", "-db", "-f", cfg], port))
    else:
        print("haproxy is not installed: skipped")
    direct = Target("backend direct", [], b1)
    direct.proc = backends[0]
    started = []
    try:
        for target in targets:
            target.start(proxy_cpu)
            started.append(target)
            wrk(target.port, 1, None, client_cpu)
        for rnd in range(args.rounds):
            for target in [direct, *targets]:
                target.measure(args.seconds, None, client_cpu, "/")
            print(f"round {rnd + 1}: " + ", ".join(f"{t.name} {t.runs[-1]['rps']:,.0f}/s p99 "
                                                   f"{t.runs[-1]['p99']:.2f}ms" for t in [direct, *targets]),
                  flush=True)
    finally:
        for target in started:
            stop(target.proc)
        for proc in backends:
            stop(proc)
    return report([direct, *targets], args, {}, f"friendly, {args.workers} worker(s) each, "
                  + ("pinned" if pin else "unpinned"))


# -- in-memory mode ---------------------------------------------------------------------------------------------

def in_memory(args: argparse.Namespace, work: str) -> dict:
    sys.path.insert(0, REPO)
    from gslb.proxy.config import load_proxy_config
    from gslb.proxy.core import Proxy
    from gslb.proxy.http import ClientConnection, UpstreamConnection

    class Transport:
        """Takes writes and drops them: what is measured is the proxy's own work per request."""

        def write(self, data: bytes) -> None:
            pass

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

        def get_extra_info(self, key: str, default=None):
            return ("127.0.0.1", 50000)

    request = (f"GET {BROWSER_PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in BROWSER_HEADERS.items())
               + "\r\n").encode()
    response = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Dec 2025 15:00:00 GMT\r\n"
                b"Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\nConnection: keep-alive\r\n"
                b"Cache-Control: private, max-age=0, must-revalidate\r\nETag: \"65f1a2b3-400\"\r\n"
                b"Vary: Accept-Encoding, Cookie\r\nSet-Cookie: csrftoken=Yk3mN8qPz1Lw; Path=/; Max-Age=31449600; "
                b"Secure; SameSite=Lax\r\nX-Backend: b1\r\n\r\n" % BODY_SIZE) + b"x" * BODY_SIZE
    runs = {}
    for label, log in (("access log on", "{path: /dev/null}"), ("access log off", "false")):
        path = os.path.join(work, "mem.yaml")
        with open(path, "w") as fh:
            fh.write(f"listen: [127.0.0.1:1]\nadmin: 127.0.0.1:2\naccess_log: {log}\n"
                     "pools: {app: {algorithm: round_robin, backends: ['127.0.0.1:9001', '127.0.0.1:9002']}}\n"
                     "routes: [{default: true, pool: app}]\n")
        proxy = Proxy(load_proxy_config(path))
        for backend in proxy.pools["app"].backends:
            for _ in range(4):
                conn = UpstreamConnection(backend)
                conn.connection_made(Transport())
                backend.idle.append(conn)
        clients = []
        for _ in range(64):
            client = ClientConnection(proxy, False)
            client.connection_made(Transport())
            clients.append(client)

        def run(n: int, clients: list = clients) -> None:
            for i in range(n):
                client = clients[i & 63]
                client.data_received(request)
                client.exchange.upstream.data_received(response)

        run(2000)
        runs[label] = (proxy, run)
    # batches of each in turn, the best of each kept: drift on a shared machine hits both alike
    batch, results = 20000, dict.fromkeys(runs, float("inf"))
    for _ in range(9):
        for label, (_, run) in runs.items():
            started = time.process_time()
            run(batch)
            results[label] = min(results[label], (time.process_time() - started) / batch * 1e6)
    for proxy, _ in runs.values():
        proxy.close_access_log()
    print(f"in memory, CPU time per request (best of 9 x 20,000, in turn; {len(BROWSER_HEADERS) - 1} request headers + Host, "
          f"10 response headers, {BODY_SIZE}-byte body):")
    for label, micros in results.items():
        print(f"  {label:<16} {micros:6.2f} us  ({1e6 / micros:,.0f} requests per CPU-second)")
    cost = results["access log on"] / results["access log off"] - 1
    print(f"  the access log costs {results['access log on'] - results['access log off']:.2f} us a request, "
          f"{cost:.1%} of this Python path (the whole request also spends CPU in the event loop and the "
          "kernel: see the realistic mode's req/CPU-s)")
    return {"setting": "in memory", "us_per_request": results, "log_cost": cost}


# -- the table ------------------------------------------------------------------------------------------------

def report(targets: list[Target], args: argparse.Namespace, logs: dict, setting: str) -> dict:
    summaries = {t.name: t.summary() for t in targets}
    print(f"\nmedians of {args.rounds} rounds x {args.seconds:g} s ({setting}):")
    print(f"  {'target':<16} {'req/s':>9} {'min-max (spread)':>24} {'p99 ms':>8} {'server CPU':>11} "
          f"{'req/CPU-s':>10}")
    for name, s in summaries.items():
        cpu = "" if name == "backend direct" else f"{s['cpu']:.2f} cores"
        per = "" if name == "backend direct" else f"{s['per_cpu_s']:,.0f}"
        print(f"  {name:<16} {s['rps']:>9,.0f} {s['rps_min']:>9,.0f}-{s['rps_max']:<7,.0f} ({s['spread']:>4.0%}) "
              f"{s['p99']:>8.2f} {cpu:>11} {per:>10}")
    ratios: dict[str, float] = {}
    gslb = summaries["gslb"]
    for peer in ("nginx", "haproxy"):
        if peer in summaries:
            other = summaries[peer]
            ratios[f"gslb/{peer} req/s"] = gslb["rps"] / other["rps"]
            per_round = [g["rps"] / o["rps"] for g, o in zip(targets_named(targets, "gslb").runs,
                                                             targets_named(targets, peer).runs)]
            ratios[f"gslb/{peer} req/s, per round min"] = min(per_round)
            ratios[f"gslb/{peer} req/s, per round max"] = max(per_round)
            ratios[f"gslb/{peer} p99"] = gslb["p99"] / other["p99"]
            ratios[f"gslb/{peer} req per CPU-second"] = gslb["per_cpu_s"] / other["per_cpu_s"]
    if "gslb, log off" in summaries:
        ratios["gslb log on / log off req/s"] = gslb["rps"] / summaries["gslb, log off"]["rps"]
        ratios["gslb log on / log off req per CPU-second"] = \
            gslb["per_cpu_s"] / summaries["gslb, log off"]["per_cpu_s"]
    for label, value in ratios.items():
        print(f"  {label:<40} {value:.2f}x")
    if logs:
        print("  access log lines written: " + ", ".join(f"{k} {v:,}" for k, v in logs.items()))
    return {"setting": setting, "runs": {t.name: t.runs for t in targets}, "medians": summaries,
            "ratios": ratios, "access_log_lines": logs}


def targets_named(targets: list[Target], name: str) -> Target:
    return next(t for t in targets if t.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="workers of each proxy (>1: nothing pinned)")
    parser.add_argument("--friendly", action="store_true", help="the old friendly setup, not the headline")
    parser.add_argument("--in-memory", action="store_true", help="CPU per request of the request path, no sockets")
    parser.add_argument("--log-compare", action="store_true", help="also gslb with access_log: false")
    parser.add_argument("--floor", action="store_true",
                        help="also a bare uvloop byte relay (no HTTP): the event loop's and kernel's share")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--profile", metavar="FILE", help="py-spy collapsed stacks of gslb's first run")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gslb-bench-proxy-")
    try:
        if args.in_memory:
            result = in_memory(args, work)
        else:
            result = friendly(args, work) if args.friendly else realistic(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version()}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
