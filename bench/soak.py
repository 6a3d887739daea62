#!/usr/bin/env python3
"""Soak: every part of gslb running together under load and faults, for minutes, on loopback.

    python bench/soak.py [--minutes 10] [--qps 2000] [--http-rate 100] [--keep]

Starts, each as its own process on 127.0.0.0/8:
- five HTTP sites (python -m http.server on 127.0.0.11-15, one port), backing two pools of one zone,
  `soak.test.`: `www` (policy weighted, 2 answers, sites us = .11 .12 and eu = .13) and `app` (policy
  failover, .14 then .15), both checked over HTTP every second (rise 2, fall 2) and both `all_down:
  servfail`: a SERVFAIL can only mean that every endpoint of a pool was believed down;
- `gslb serve` (embedded prober as region us-east-1, API on loopback, health state in the temp dir);
- `gslb probe` for region eu-west-1, reporting to the server (signed with a shared secret);
- `gslb proxy` in front of sites .11, .12 and .14 (active checks every second, default retries).

Then, for the whole duration, all at once:
- DNS load: dnsperf at a bounded rate (--qps, default 2,000 q/s, 2 clients) over static names, the apex
  SOA and NS, a name that does not exist, the TXT record being reloaded, and the load-balanced A/AAAA names;
- a checker asking www/app A, the SOA and the reloaded TXT every 50 ms with dnspython: any SERVFAIL (with
  its time and name), SOA serials that go backwards, answers naming a site killed more than 8 s before
  (stale), and how long each zone rewrite took to be answered;
- zone reloads every second: the zone file is rewritten (temp file + rename) with a new TXT value;
- endpoints flapping: one site at a time is killed (SIGKILL) for 6 s and restarted, then 8 s pass before
  the next, cycling over all five, so a pool always keeps a healthy endpoint;
- the prober process restarted (SIGTERM, then started again) at 1/3 and 2/3 of the run;
- HTTP through the proxy: a bounded client loop (aiohttp, 4 connections, --http-rate requests/s), with
  the proxy's config changed and reloaded (SIGHUP) every 30 s (at least once);
- RSS of every process from /proc/PID/status (VmRSS) every 2 s.

Prints queries sent/answered/lost and rcodes (dnsperf), SERVFAIL from dnsperf, the checker and the
server's /metrics, reload lag, stale answers, HTTP statuses through the proxy, and RSS after warm-up and at
the end for every process and its descendants, with the growth. Exits 1 when: any SERVFAIL, the RSS of a
gslb process (or of a descendant it kept running) grew more than 10 % after warm-up (--max-growth), more
than 1 % of dnsperf queries lost (--max-lost), a gslb process exited by itself, or no HTTP request through
the proxy succeeded. Everything is stopped at the end, also on Ctrl-C, SIGTERM or an error; the temp dir
(logs included) is removed unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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
import urllib.request
from dataclasses import dataclass, field

# This file is in bench/ beside dns.py: keep its folder off the import path so `import dns` is dnspython.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "soak.test"
SITES = {"127.0.0.11": "www/us", "127.0.0.12": "www/us", "127.0.0.13": "www/eu", "127.0.0.14": "app/a",
         "127.0.0.15": "app/b"}
FLAP_ORDER = ["127.0.0.11", "127.0.0.13", "127.0.0.14", "127.0.0.12", "127.0.0.15"]
PROXY_BACKENDS = ["127.0.0.11", "127.0.0.12", "127.0.0.14"]
SECRET = "soak-secret-not-for-production"
DOWN_S, GAP_S = 6.0, 8.0                # a site is dead this long, then all are up this long
STALE_AFTER_S = 8.0                     # an answer naming a site dead longer than this is stale
GSLB_ROLES = ("gslb serve", "gslb probe", "gslb proxy")
QUERIES = [f"static.{ORIGIN} A", f"www.{ORIGIN} A", f"app.{ORIGIN} A", f"{ORIGIN} SOA", f"reload.{ORIGIN} TXT",
           f"www.{ORIGIN} A", f"app.{ORIGIN} A", f"nope.{ORIGIN} A", f"{ORIGIN} NS", f"www.{ORIGIN} AAAA"]


def free_port(host: str = "127.0.0.1", udp_too: bool = False) -> int:
    """A free TCP port on host (and free for UDP too when asked)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((host, port))
                return port
            except OSError:
                continue


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc/PID/stat)."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    out[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Proc:
    """One child process, restartable; every incarnation's RSS samples are kept."""

    role: str
    cmd: list[str]
    log: str
    popen: subprocess.Popen | None = None
    started: float = 0.0
    incarnations: list[dict] = field(default_factory=list)
    stopping: bool = False

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(self.cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)
        self.started = time.monotonic()
        self.stopping = False
        self.incarnations.append({"pid": self.popen.pid, "started": self.started, "samples": [], "children": {}})

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def sample(self, now: float, parents: dict[int, int]) -> None:
        """RSS of the process and of its descendants (gslb serve parses reloads in a forkserver's child)."""
        if not self.alive():
            return
        inc = self.incarnations[-1]
        kb = rss_kb(self.popen.pid)
        if kb is not None:
            inc["samples"].append((now, kb))
        family, grew = {self.popen.pid}, True
        while grew:
            new = {c for c, parent in parents.items() if parent in family and c not in family}
            family |= new
            grew = bool(new)
        for child in sorted(family - {self.popen.pid}):
            kb = rss_kb(child)
            if kb is not None:
                inc["children"].setdefault(child, {"pid": child, "started": now, "samples": []})["samples"].append((now, kb))

    def kill(self) -> None:
        if self.alive():
            self.stopping = True
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.stopping = True
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass

    def tail(self, n: int = 3000) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return fh.read()[-n:]
        except OSError:
            return ""


def zone_yaml(site_port: int, generation: int) -> str:
    check = f"{{type: http, port: {site_port}, path: /, interval: 1, timeout: 1, rise: 2, fall: 2}}"
    return f"""origin: {ORIGIN}.
ttl: 60
soa: {{mname: ns1.{ORIGIN}., rname: hostmaster.{ORIGIN}., minimum: 5}}
records:
  "@": {{NS: [ns1.{ORIGIN}.]}}
  ns1: {{A: 127.0.0.53}}
  static: {{A: 192.0.2.10}}
  reload: {{TXT: "generation {generation}"}}
  www: {{pool: web}}
  app: {{pool: app}}
pools:
  web:
    policy: weighted
    answers: 2
    ttl: 5
    all_down: servfail
    check: {check}
    sites:
      us: {{region: us-east-1, endpoints: [127.0.0.11, 127.0.0.12]}}
      eu: {{region: eu-west-1, endpoints: [127.0.0.13]}}
  app:
    policy: failover
    ttl: 5
    all_down: servfail
    check: {check}
    order: [a, b]
    sites:
      a: {{region: us-east-1, endpoints: [127.0.0.14]}}
      b: {{region: eu-west-1, endpoints: [127.0.0.15]}}
"""


def proxy_yaml(listen: int, admin: int, site_port: int, generation: int) -> str:
    # The weight of the first backend alternates, so each reload really changes the pool.
    weights = [1 + generation % 2, 1, 1]
    backends = ", ".join(f'{{address: "{a}:{site_port}", weight: {w}}}' for a, w in zip(PROXY_BACKENDS, weights))
    return f"""listen: [127.0.0.1:{listen}]
admin: 127.0.0.1:{admin}
admin_token: soak-token
access_log: false
pools:
  app:
    algorithm: weighted_round_robin
    backends: [{backends}]
    check: {{path: /, interval: 1, timeout: 1, rise: 2, fall: 2}}
routes:
  - {{default: true, pool: app}}
"""


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class Soak:
    def __init__(self, args: argparse.Namespace, work: str):
        self.args = args
        self.work = work
        self.duration = args.minutes * 60
        self.warmup = args.warmup if args.warmup is not None else min(60.0, max(15.0, self.duration * 0.15))
        self.site_port = free_port("127.0.0.11")
        self.dns_port = free_port(udp_too=True)
        self.api_port = free_port()
        self.proxy_port, self.admin_port = free_port(), free_port()
        self.zone_dir = os.path.join(work, "zones")
        self.zone_file = os.path.join(self.zone_dir, "soak.yaml")
        self.proxy_conf = os.path.join(work, "proxy.yaml")
        self.sites = {a: Proc(f"site {a}", [sys.executable, "-m", "http.server", str(self.site_port), "--bind", a,
                                            "--directory", os.path.join(work, "www")],
                              os.path.join(work, f"site-{a}.log")) for a in SITES}
        py = [sys.executable, "-m", "gslb"]
        self.serve = Proc("gslb serve", py + ["serve", "--config", os.path.join(work, "server.yaml")],
                          os.path.join(work, "serve.log"))
        self.probe = Proc("gslb probe", py + ["probe", "--region", "eu-west-1", "--zones", self.zone_dir, "--data",
                                              os.path.join(REPO, "data"), "--report-to",
                                              f"http://127.0.0.1:{self.api_port}", "--secret", SECRET],
                          os.path.join(work, "probe.log"))
        self.proxy = Proc("gslb proxy", py + ["proxy", "--config", self.proxy_conf], os.path.join(work, "proxy.log"))
        self.procs = [self.serve, self.probe, self.proxy, *self.sites.values()]
        self.t0 = 0.0
        self.generation = 0
        self.written: dict[int, float] = {}             # generation -> time written
        self.lags: list[float] = []
        self.seen_generation = -1
        self.dead_since: dict[str, float] = {}
        self.flaps = 0
        self.prober_restarts = 0
        self.proxy_reloads = 0
        self.checks = collections.Counter()
        self.servfails: list[str] = []
        self.stale: list[str] = []
        self.serials: list[int] = []
        self.serial_backwards = 0
        self.http = collections.Counter()
        self.unexpected_exits: list[str] = []

    # --- setup ---

    def write_files(self) -> None:
        os.makedirs(self.zone_dir)
        os.makedirs(os.path.join(self.work, "www"))
        with open(os.path.join(self.work, "www", "index.html"), "w") as fh:
            fh.write("<p>soak site</p>\n")
        write_atomic(self.zone_file, zone_yaml(self.site_port, 0))
        with open(os.path.join(self.work, "server.yaml"), "w") as fh:
            fh.write(f"""zones: {self.zone_dir}
listen: ["127.0.0.1:{self.dns_port}"]
api: 127.0.0.1:{self.api_port}
data: {os.path.join(REPO, "data")}
reload_interval: 1
health:
  region: us-east-1
  secret: {SECRET}
  state_dir: {os.path.join(self.work, "state")}
""")
        write_atomic(self.proxy_conf, proxy_yaml(self.proxy_port, self.admin_port, self.site_port, 0))

    async def wait_for(self, what: str, probe, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.popen is not None and not p.alive() and not p.stopping:
                    raise RuntimeError(f"{p.role} exited with {p.popen.returncode} while waiting for {what}:\n{p.tail()}")
            try:
                if await probe():
                    return
            except (TimeoutError, OSError, dns.exception.DNSException, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{what}: not ready after {limit} s")

    async def listening(self, host: str, port: int) -> bool:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
        writer.close()
        return True

    async def query(self, name: str, rdtype: str, timeout: float = 1.0) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        return await dns.asyncquery.udp(q, "127.0.0.1", port=self.dns_port, timeout=timeout)

    def api_get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=5) as r:
            return r.read()

    async def metrics_servfail(self) -> int:
        text = (await asyncio.to_thread(self.api_get, "/metrics")).decode()
        return sum(int(float(m.group(1))) for m in
                   re.finditer(r'^gslb_dns_responses_total\{[^}]*rcode="SERVFAIL"[^}]*\}\s+(\S+)', text, re.MULTILINE))

    async def start_all(self) -> None:
        self.write_files()
        for site in self.sites.values():
            site.start()
        for a in self.sites:
            await self.wait_for(f"site {a}", lambda a=a: self.listening(a, self.site_port))
        self.serve.start()
        await self.wait_for("gslb serve answering", lambda: self._answers(f"static.{ORIGIN}"))
        await self.wait_for("gslb serve API", lambda: asyncio.to_thread(self.api_get, "/healthz"))
        self.probe.start()
        await self.wait_for("the eu-west-1 prober reporting", self._prober_live)
        self.proxy.start()
        await self.wait_for("gslb proxy answering 200", self._proxy_ok)

    async def _answers(self, name: str) -> bool:
        return bool((await self.query(name, "A")).answer)

    async def _prober_live(self) -> bool:
        health = json.loads(await asyncio.to_thread(self.api_get, "/v1/health"))
        return bool(health.get("probers", {}).get("eu-west-1", {}).get("live"))

    async def _proxy_ok(self) -> bool:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.proxy_port}/") as r:
            await r.read()
            return r.status == 200

    # --- the loops (each ends at the deadline) ---

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    async def until(self, t: float) -> bool:
        """Sleep until t seconds into the run; False when that is past the end."""
        if t >= self.duration:
            return False
        await asyncio.sleep(max(0.0, t - self.elapsed()))
        return True

    async def reloader(self) -> None:
        t = 1.0
        while await self.until(t):
            self.generation += 1
            self.written[self.generation] = time.monotonic()
            await asyncio.to_thread(write_atomic, self.zone_file, zone_yaml(self.site_port, self.generation))
            t += 1.0

    async def checker(self) -> None:
        names = [(f"www.{ORIGIN}", "A"), (f"app.{ORIGIN}", "A"), (ORIGIN, "SOA"), (f"reload.{ORIGIN}", "TXT")]
        i = 0
        while self.elapsed() < self.duration:
            name, rdtype = names[i % len(names)]
            i += 1
            try:
                r = await self.query(name, rdtype, timeout=2)
            except dns.exception.Timeout:
                self.checks["timeout"] += 1
                continue
            now = time.monotonic()
            rcode = r.rcode()
            self.checks[dns.rcode.to_text(rcode)] += 1
            if rcode == dns.rcode.SERVFAIL:
                down = ", ".join(f"{a} dead {now - t:.1f} s" for a, t in self.dead_since.items()) or "no site dead"
                self.servfails.append(f"{now - self.t0:.1f} s {name} {rdtype} ({down})")
            for rrset in r.answer:
                for rd in rrset:
                    if rrset.rdtype == dns.rdatatype.A and rd.address in self.dead_since \
                            and now - self.dead_since[rd.address] > STALE_AFTER_S:
                        self.stale.append(f"{now - self.t0:.1f} s {name}: {rd.address} dead for "
                                          f"{now - self.dead_since[rd.address]:.1f} s")
                    elif rrset.rdtype == dns.rdatatype.SOA:
                        if self.serials and rd.serial < self.serials[-1]:
                            self.serial_backwards += 1
                        if not self.serials or rd.serial != self.serials[-1]:
                            self.serials.append(rd.serial)
                    elif rrset.rdtype == dns.rdatatype.TXT:
                        gen = int(b"".join(rd.strings).split()[-1])
                        if gen > self.seen_generation:
                            for g in range(self.seen_generation + 1, gen + 1):
                                if g in self.written:
                                    self.lags.append(now - self.written[g])
                            self.seen_generation = gen
            await asyncio.sleep(0.05)

    async def flapper(self) -> None:
        t, i = self.warmup / 2, 0
        while await self.until(t):
            address = FLAP_ORDER[i % len(FLAP_ORDER)]
            site = self.sites[address]
            await asyncio.to_thread(site.kill)
            self.dead_since[address] = time.monotonic()
            self.flaps += 1
            if not await self.until(t + DOWN_S):
                break
            site.start()
            await self.wait_for(f"site {address} back", lambda a=address: self.listening(a, self.site_port), 10)
            del self.dead_since[address]
            t = self.elapsed() + GAP_S
            i += 1

    async def prober_restarter(self) -> None:
        for fraction in (1 / 3, 2 / 3):
            if not await self.until(self.duration * fraction):
                return
            await asyncio.to_thread(self.probe.stop)
            self.probe.start()
            self.prober_restarts += 1

    async def proxy_reloader(self) -> None:
        every = min(30.0, self.duration / 2)
        t = every
        while await self.until(t):
            await asyncio.to_thread(write_atomic, self.proxy_conf,
                                    proxy_yaml(self.proxy_port, self.admin_port, self.site_port, self.proxy_reloads + 1))
            os.kill(self.proxy.popen.pid, signal.SIGHUP)
            self.proxy_reloads += 1
            t += every

    async def http_client(self, session: aiohttp.ClientSession, n: int, workers: int) -> None:
        period = workers / self.args.http_rate        # each worker's share of the bounded rate
        url = f"http://127.0.0.1:{self.proxy_port}/"
        nxt = time.monotonic() + n * period / workers
        while self.elapsed() < self.duration:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    await r.read()
                    self.http[str(r.status)] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.http[type(exc).__name__] += 1
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    async def http_load(self, workers: int = 4) -> None:
        connector = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self.http_client(session, n, workers) for n in range(workers)))

    async def sampler(self) -> None:
        while self.elapsed() < self.duration + 1:
            now = time.monotonic()
            parents = await asyncio.to_thread(parent_pids)
            for p in self.procs:
                p.sample(now, parents)
                if p.popen is not None and not p.alive() and not p.stopping:
                    self.unexpected_exits.append(f"{p.role} exited with {p.popen.returncode} at {now - self.t0:.0f} s")
                    p.stopping = True
            await asyncio.sleep(2)

    async def dnsperf(self) -> str:
        qfile = os.path.join(self.work, "queries.txt")
        write_atomic(qfile, "\n".join(QUERIES) + "\n")
        proc = await asyncio.create_subprocess_exec(
            "dnsperf", "-s", "127.0.0.1", "-p", str(self.dns_port), "-d", qfile, "-l", f"{self.duration:g}",
            "-Q", str(self.args.qps), "-c", "2", "-t", "2", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.duration + 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return out.decode(errors="replace")

    async def run(self) -> dict:
        await self.start_all()
        servfail_before = await self.metrics_servfail()
        self.t0 = time.monotonic()
        print(f"all started; soaking for {self.duration / 60:g} min (warm-up {self.warmup:.0f} s), "
              f"DNS on 127.0.0.1:{self.dns_port}, API :{self.api_port}, proxy :{self.proxy_port}", flush=True)
        progress = asyncio.create_task(self.progress())
        perf = asyncio.create_task(self.dnsperf())
        await asyncio.gather(self.reloader(), self.checker(), self.flapper(), self.prober_restarter(),
                             self.proxy_reloader(), self.http_load(), self.sampler())
        dnsperf_out = await perf
        progress.cancel()
        servfail_metrics = await self.metrics_servfail() - servfail_before
        return {"dnsperf": dnsperf_out, "servfail_metrics": servfail_metrics}

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(30)
            rss = ", ".join(f"{p.role.split()[1]} {p.incarnations[-1]['samples'][-1][1] / 1024:.1f} MB"
                            for p in (self.serve, self.probe, self.proxy) if p.incarnations[-1]["samples"])
            print(f"  {self.elapsed():5.0f} s: checker {dict(self.checks)}, http {dict(self.http)}, "
                  f"flaps {self.flaps}, reloads {self.generation}, RSS {rss}", flush=True)

    # --- the report ---

    def rss_rows(self) -> list[tuple[str, int, float, float, float, float | None, bool]]:
        """(role, pid, start MB, end MB, max MB, growth %, judged) per incarnation with samples."""
        rows = []
        span = min(60.0, self.duration / 4)      # judged only when watched this long after warm-up
        for p in self.procs:
            for inc in p.incarnations:
                for role, one in [(p.role, inc)] + [(f"{p.role} descendant", c) for c in inc["children"].values()]:
                    begin = max(self.t0 + self.warmup, one["started"] + min(self.warmup, 15.0))
                    after = [s for s in one["samples"] if s[0] >= begin]
                    if not after:
                        continue
                    start, end = after[0][1], after[-1][1]
                    judged = p.role in GSLB_ROLES and after[-1][0] - after[0][0] >= span
                    growth = (end - start) / start * 100 if start else None
                    rows.append((role, one["pid"], start / 1024, end / 1024, max(s[1] for s in after) / 1024,
                                 growth, judged))
        return rows


def parse_dnsperf(out: str) -> dict:
    def num(pattern: str) -> int | None:
        m = re.search(pattern, out)
        return int(m.group(1)) if m else None
    codes = {}
    m = re.search(r"Response codes:\s+(.*)", out)
    if m:
        codes = {c: int(n) for c, n in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))}
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    return {"sent": num(r"Queries sent:\s+(\d+)"), "completed": num(r"Queries completed:\s+(\d+)"),
            "lost": num(r"Queries lost:\s+(\d+)"), "codes": codes, "qps": float(qps.group(1)) if qps else None}


def log_problems(path: str) -> tuple[int, int]:
    """(tracebacks, ERROR lines) in a log file."""
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return 0, 0
    return text.count("Traceback (most recent call last)"), len(re.findall(r"^\S+ \S+ ERROR ", text, re.MULTILINE))


def report(soak: Soak, result: dict, args: argparse.Namespace) -> int:
    perf = parse_dnsperf(result["dnsperf"])
    failures = []
    print(f"\nsoak of {soak.duration / 60:g} min ({soak.duration:.0f} s), warm-up {soak.warmup:.0f} s:")
    print(f"DNS load (dnsperf -Q {args.qps}, -c 2, UDP): sent {perf['sent']}, answered {perf['completed']}, "
          f"lost {perf['lost']}, {perf['qps'] or 0:,.0f} q/s")
    print(f"  response codes: {perf['codes'] or '?'}")
    if perf["sent"] is None:
        failures.append("dnsperf gave no figures:\n" + result["dnsperf"][-2000:])
    dnsperf_servfail = perf["codes"].get("SERVFAIL", 0)
    print(f"SERVFAIL: dnsperf {dnsperf_servfail}, checker {len(soak.servfails)}, "
          f"server /metrics {result['servfail_metrics']} (none is asked for: every pool keeps a healthy endpoint)")
    for line in soak.servfails[:10]:
        print(f"  {line}")
    servfail = max(dnsperf_servfail, len(soak.servfails), result["servfail_metrics"])
    if servfail:
        failures.append(f"{servfail} SERVFAIL")
    if perf["sent"] and perf["lost"] is not None and perf["lost"] / perf["sent"] * 100 > args.max_lost:
        failures.append(f"{perf['lost']} of {perf['sent']} dnsperf queries lost (> {args.max_lost} %)")
    print(f"checker (dnspython, every 50 ms): {dict(soak.checks)}")
    print(f"zone reloads: {soak.generation} rewrites; SOA serials seen {len(soak.serials)} "
          f"({soak.serials[0] if soak.serials else '?'} -> {soak.serials[-1] if soak.serials else '?'}), "
          f"went backwards {soak.serial_backwards} times")
    if soak.lags:
        print(f"  rewrite -> answered: median {statistics.median(soak.lags):.2f} s, max {max(soak.lags):.2f} s "
              f"({len(soak.lags)} generations seen)")
    if soak.serial_backwards:
        failures.append(f"SOA serial went backwards {soak.serial_backwards} times")
    if soak.generation > 5 and len(soak.serials) < 2:
        failures.append("the SOA serial never grew across zone reloads")
    print(f"flaps: {soak.flaps} site kills ({DOWN_S:g} s down each, one at a time); stale answers (a site dead "
          f"> {STALE_AFTER_S:g} s still answered): {len(soak.stale)}")
    for line in soak.stale[:5]:
        print(f"  {line}")
    print(f"prober restarts: {soak.prober_restarts}; proxy reloads (SIGHUP): {soak.proxy_reloads}")
    total_http = sum(soak.http.values())
    print(f"HTTP through the proxy: {total_http} requests: "
          + ", ".join(f"{k} {v}" for k, v in sorted(soak.http.items(), key=lambda kv: -kv[1])))
    if not soak.http.get("200"):
        failures.append("no HTTP request through the proxy got 200")
    print(f"RSS (VmRSS) after warm-up and at the end; growth judged for {', '.join(GSLB_ROLES)} "
          f"(limit {args.max_growth:g} %):")
    print(f"  {'process':<22} {'pid':>7} {'start MB':>9} {'end MB':>8} {'max MB':>8} {'growth':>8}")
    sites: dict[str, list] = collections.defaultdict(list)
    for role, pid, start, end, peak, growth, judged in soak.rss_rows():
        if role.startswith("site "):
            sites[role].append((start, end, peak, growth))     # restarted often: one summary line each
            continue
        mark = ""
        if judged and growth is not None and growth > args.max_growth:
            mark = "  <- over the limit"
            failures.append(f"{role} (pid {pid}) RSS grew {growth:.1f} %")
        print(f"  {role:<22} {pid:>7} {start:>9.1f} {end:>8.1f} {peak:>8.1f} "
              f"{(f'{growth:+.1f} %' if growth is not None else '?'):>8}{'' if judged else '  (not judged)'}{mark}")
    for role, rows in sites.items():
        growths = [g for *_, g in rows if g is not None]
        print(f"  {role:<22} {len(rows):>3} runs, start {min(r[0] for r in rows):.1f}-{max(r[0] for r in rows):.1f} MB, "
              f"max {max(r[2] for r in rows):.1f} MB, growth at most {max(growths, default=0):+.1f} %  (not judged)")
    for p in (soak.serve, soak.probe, soak.proxy):
        tracebacks, errors = log_problems(p.log)
        print(f"log of {p.role}: {tracebacks} tracebacks, {errors} ERROR lines")
    failures.extend(soak.unexpected_exits)
    if failures:
        print("\nFAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("\nOK: no SERVFAIL, RSS within the limit, nothing exited by itself")
    return 0


class Interrupted(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="duration (default 10)")
    parser.add_argument("--qps", type=int, default=2000, help="dnsperf -Q: queries per second (default 2000)")
    parser.add_argument("--http-rate", type=float, default=100, help="requests/s through the proxy (default 100)")
    parser.add_argument("--warmup", type=float, help="seconds before the start RSS is taken "
                                                     "(default 15 %% of the run, 15 to 60 s)")
    parser.add_argument("--max-growth", type=float, default=10, help="RSS growth limit in %% (default 10)")
    parser.add_argument("--max-lost", type=float, default=1, help="dnsperf lost queries limit in %% (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()
    if not shutil.which("dnsperf"):
        sys.exit("dnsperf is not installed (apt-get install -y dnsperf)")
    if args.minutes <= 0 or args.qps <= 0 or args.http_rate <= 0:
        parser.error("--minutes, --qps and --http-rate must be positive")
    work = tempfile.mkdtemp(prefix="gslb-soak-")
    soak = Soak(args, work)

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        result = asyncio.run(soak.run())
        for p in soak.procs:
            p.stop()
        return report(soak, result, args)
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"interrupted ({type(exc).__name__} {exc}): everything stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"soak failed to run: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in soak.procs:
            p.stop()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
