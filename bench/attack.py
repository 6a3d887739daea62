#!/usr/bin/env python3
"""Attack measurements of issue 13 against a real `gslb serve`, on loopback, at the issue's scale.

    python bench/attack.py [--only NAME ...] [--seconds 20] [--runs 1] [--json FILE]

Every scenario starts its own `python -m gslb serve` (free 127.0.0.1 ports, API on loopback) serving one
zone, `t.test.`, whose `www` pool (weighted, 2 answers, `all_down: servfail`) has two endpoints,
127.0.0.61 and 127.0.0.62: two real HTTP sites (`python -m http.server`) that the server's embedded prober
checks every 0.25 s (timeout 0.5 s). A right answer for `www.t.test A` is exactly both addresses; anything
else (SERVFAIL, one address) is a wrong answer. Attackers run in their own processes (this file with a
hidden role), so their work does not share a GIL with the measuring loop.

Scenarios (NAME for --only):

- tcp-one-host: `ulimit -n 1024`, default tcp limits; 1,100 connections from 127.0.0.9, each sending one
  byte every 7 s and reconnecting 1 s after a close, for --seconds. Probes a few times a second: UDP, a
  fresh TCP connection from 127.0.0.1 and the API (/healthz); UDP latency before and during; endpoint
  states and prober errors at the end; the TCP counters of /metrics.
- tcp-many-hosts: the same from 40 addresses (127.0.1.1-40), 28 connections each (1,120): the fraction of
  fresh TCP queries answered while the total cap is full.
- report-bombs: DNS UDP latency (100 queries/s) while N processes' worth of senders (2, then 8) post
  unsigned gzip report bodies (about 65 KB, inflating to 64 MiB) to /v1/reports in a loop, half with no
  signature header and half signed with a wrong key (so the body is read and its HMAC computed), vs
  idle; then three correctly signed bombs of 65 MiB inflated (413 at the 64 MiB cap) one after another.
- rrl: `rrl: {exempt: []}` (defaults otherwise: 200/s per /24, slip 2); 20,000 identical queries from
  127.0.0.2 in bursts of 500 (a bounded loop): answered, slipped (TC=1), dropped, as the client saw them
  and as /metrics counts them; and the amplification factor `gslb check` prints for the bundled example zone.
- alias-bomb: the 8-level YAML alias bomb (then the 9-level one) written into the zones directory of the
  running server: seconds until GET /v1/zones shows the file's error, DNS latency meanwhile, RSS of the
  server before and after and the peak of its child processes (the zone parser).

Each scenario runs --runs times; the table shows every run and the median. The machine this runs on is
shared and noisy: compare figures from the same run, not absolute values across runs. Loopback only,
every loop bounded in time and count; every process is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import resource
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# This file is in bench/ beside dns.py: keep its folder off the import path so `import dns` is dnspython.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
import dns.exception
import dns.message
import dns.query
import dns.rcode

from gslb.health.signing import HEADER, sign

A, B = "127.0.0.61", "127.0.0.62"
RIGHT = [A, B]
NAME = "www.t.test"
SECRET = "attack-bench-shared-secret-0123456789"
SCENARIOS = ["tcp-one-host", "tcp-many-hosts", "report-bombs", "rrl", "alias-bomb"]


# ---- the server and its sites ------------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shared_port() -> int:
    """A port free on both site addresses (the pool's check has one port)."""
    for _ in range(100):
        port = free_port(A)
        try:
            with socket.socket() as s:
                s.bind((B, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on both site addresses")


def zone(port: int) -> str:
    return f"""\
origin: t.test.
soa: {{mname: ns1.t.test., rname: h.t.test.}}
records: {{"@": {{NS: ns1.other.test.}}, www: {{pool: web}}}}
pools:
  web:
    policy: weighted
    answers: 2
    all_down: servfail
    check: {{type: http, port: {port}, path: /healthz, interval: 0.25, timeout: 0.5}}
    sites:
      main: {{lat: 0, lon: 0, endpoints: [{A}, {B}]}}
"""


def alias_bomb(levels: int) -> str:
    """The issue's zone (as tests/test_config_limits.py): ten aliases of the level before, `levels` deep."""
    lines = ['x1: &a1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(2, levels + 1):
        lines.append(f"x{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]")
    return ("origin: b.test.\nsoa: {mname: ns1.b.test., rname: h.b.test.}\n" + "\n".join(lines)
            + f'\nrecords:\n  "@": {{NS: ns1.other.test.}}\n  t: {{TXT: *a{levels}}}\n')


def stop(proc: subprocess.Popen, wait: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Served:
    """Two HTTP sites and `gslb serve` (optionally under `ulimit -n`), in a temporary directory."""

    def __init__(self, config: str = "", nofile: int | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="gslb-attack-")
        root = self.tmp.name
        self.zones = os.path.join(root, "zones")
        os.mkdir(self.zones)
        os.mkdir(os.path.join(root, "site"))
        with open(os.path.join(root, "site", "healthz"), "w") as fh:
            fh.write("ok\n")
        self.site_port = shared_port()
        with open(os.path.join(self.zones, "t.yaml"), "w") as fh:
            fh.write(zone(self.site_port))
        with open(os.path.join(root, "server.yaml"), "w") as fh:
            fh.write(config)
        self.port, self.api = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("GSLB_SECRET", "GSLB_REGION_KEY")}
        env["PYTHONPATH"] = REPO
        self.procs: list[subprocess.Popen] = []
        for host in (A, B):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "http.server", str(self.site_port), "--bind", host, "--directory",
                 os.path.join(root, "site")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cmd = [sys.executable, "-m", "gslb", "serve", "--zones", self.zones, "--data", os.path.join(REPO, "data"),
               "--listen", f"127.0.0.1:{self.port}", "--api", f"127.0.0.1:{self.api}"]
        if config:                               # (an empty config file is not passed: defaults)
            cmd += ["--config", os.path.join(root, "server.yaml")]
        if nofile:                               # the shell sets the limit, as an operator's unit would
            cmd = ["sh", "-c", f'ulimit -n {nofile} && exec "$0" "$@"', *cmd]
        self.log = open(os.path.join(root, "serve.log"), "w")  # noqa: SIM115 -- closed in close()
        self.server = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log, stderr=self.log)
        try:
            wait_for(lambda: udp(self.port)[0] == RIGHT, 30, "gslb serve answering both sites")
            wait_for(lambda: states(self.api) == {A: "up", B: "up"}, 15, "both sites seen up by the prober")
        except BaseException:
            self.log.flush()
            with open(os.path.join(root, "serve.log")) as fh:
                print("gslb serve log (last lines):\n" + "".join(fh.readlines()[-15:]), file=sys.stderr)
            self.close()
            raise

    def close(self) -> None:
        for proc in [self.server, *self.procs]:
            stop(proc)
        self.log.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for(predicate, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"not {what} after {limit} s")


# ---- clients ------------------------------------------------------------------------------------------------

def answer_of(r: dns.message.Message) -> list[str]:
    if r.rcode() != dns.rcode.NOERROR:
        return [dns.rcode.to_text(r.rcode())]
    return sorted(rd.address for rrset in r.answer for rd in rrset)


def udp(port: int, timeout: float = 1.0) -> tuple[list[str] | None, float]:
    """(answer or None for a timeout, seconds)."""
    t0 = time.monotonic()
    try:
        r = dns.query.udp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=port, timeout=timeout)
    except dns.exception.Timeout:
        return None, time.monotonic() - t0
    return answer_of(r), time.monotonic() - t0


def tcp(port: int, source: str = "127.0.0.1") -> list[str] | None:
    """A fresh TCP connection's answer, or None when refused, reset, closed or timed out."""
    try:
        r = dns.query.tcp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=port, timeout=2, source=source)
    except (OSError, EOFError, dns.exception.Timeout):
        return None
    return answer_of(r)


def get(api: int, path: str, timeout: float = 2) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{api}{path}", timeout=timeout) as resp:
        return resp.read().decode()


def states(api: int) -> dict[str, str]:
    doc = json.loads(get(api, "/v1/health"))
    return {e["address"]: e.get("state") for z in doc["zones"] for p in z["pools"]
            for s in p["sites"] for e in s["endpoints"]}


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def ms(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = []
        try:
            tasks = os.listdir(f"/proc/{p}/task")        # children are listed by the thread that forked them
        except OSError:
            tasks = []
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids += [int(k) for k in fh.read().split()]
            except OSError:
                pass
        found += kids
        todo += kids
    return found


def udp_sampler(port: int, seconds: float, rate: float = 100, until=None) -> dict:
    """UDP queries at about `rate`/s for `seconds` (or until `until()` is true): latency and wrong answers."""
    lat, wrong, lost = [], 0, 0
    deadline = time.monotonic() + seconds
    gap = 1 / rate
    while time.monotonic() < deadline and not (until and until()):
        answer, took = udp(port)
        if answer is None:
            lost += 1
        else:
            lat.append(took)
            wrong += answer != RIGHT
        time.sleep(max(0.0, gap - took))
    return {"queries": len(lat) + lost, "p50_ms": ms(lat, 0.5), "p99_ms": ms(lat, 0.99),
            "max_ms": ms(lat, 1.0), "wrong": wrong, "timeouts": lost}


def helper(role: str, *args, env: dict | None = None) -> subprocess.Popen:
    """This file run as an attacker process (a hidden role); its last stdout line is a JSON summary."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "_role", role, *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env)


def wait_ready(proc: subprocess.Popen, limit: float = 60) -> None:
    """Wait for the helper's `ready` line (its bomb is built); it starts its clock then."""
    if select.select([proc.stdout], [], [], limit)[0] and proc.stdout.readline().strip() == "ready":
        return
    stop(proc)
    raise RuntimeError("an attacker process did not start")


def summary_of(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        out = proc.stdout.read() if proc.stdout else ""
    lines = [line for line in (out or "").splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


# ---- scenarios 1 and 2: TCP slow-loris -----------------------------------------------------------------------

def probe_rounds(srv: Served, seconds: float, attack: subprocess.Popen | None = None) -> dict:
    """Rounds of one UDP query, one fresh TCP query and one API request, about 8 a second."""
    lat, udp_wrong, udp_lost = [], 0, 0
    tcp_ok = tcp_wrong = tcp_none = api_ok = api_fail = rounds = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (attack is None or attack.poll() is None):
        rounds += 1
        answer, took = udp(srv.port)
        if answer is None:
            udp_lost += 1
        else:
            lat.append(took)
            udp_wrong += answer != RIGHT
        answer = tcp(srv.port)
        if answer is None:
            tcp_none += 1
        elif answer == RIGHT:
            tcp_ok += 1
        else:
            tcp_wrong += 1
        try:
            api_ok += '"ok": true' in get(srv.api, "/healthz")
        except (OSError, urllib.error.URLError):
            api_fail += 1
        time.sleep(0.1)
    return {"rounds": rounds, "udp_p50_ms": ms(lat, 0.5), "udp_p99_ms": ms(lat, 0.99), "udp_wrong": udp_wrong,
            "udp_timeouts": udp_lost, "tcp_answered": tcp_ok, "tcp_wrong": tcp_wrong, "tcp_unanswered": tcp_none,
            "api_ok": api_ok, "api_failed": api_fail}


def slow_loris(sources: list[str], per_source: int, seconds: float) -> dict:
    with Served(nofile=1024) as srv:
        before = probe_rounds(srv, 5)
        attack = helper("loris", srv.port, ",".join(sources), per_source, 7, 1, seconds + 2)
        try:
            time.sleep(1)                                     # the connections open
            during = probe_rounds(srv, seconds, attack)
            end_states = states(srv.api)
            text = get(srv.api, "/metrics")
        finally:
            loris = summary_of(attack, seconds + 30)
        alive = srv.server.poll() is None
    figures = {
        "attack connections": len(sources) * per_source,
        "attacker connects (all)": loris.get("attempts"),
        "attacker most open at once": loris.get("max_open"),
        "UDP p50 before / during (ms)": f"{before['udp_p50_ms']} / {during['udp_p50_ms']}",
        "UDP p99 before / during (ms)": f"{before['udp_p99_ms']} / {during['udp_p99_ms']}",
        "UDP queries during": during["rounds"],
        "UDP wrong answers": during["udp_wrong"],
        "UDP timeouts": during["udp_timeouts"],
        "fresh TCP answered": during["tcp_answered"],
        "fresh TCP wrong answers": during["tcp_wrong"],
        "fresh TCP refused/reset/timed out": during["tcp_unanswered"],
        "fresh TCP answered (%)": round(100 * during["tcp_answered"] / max(1, during["rounds"]), 1),
        "API ok / failed": f"{during['api_ok']} / {during['api_failed']}",
        "endpoints at the end": " ".join(f"{a}={s}" for a, s in sorted(end_states.items())),
        "prober errors": metric(text, 'gslb_prober_errors_total{region="local"}'),
        "tcp cap in force": metric(text, "gslb_dns_tcp_connections_max"),
        "tcp refused (client cap)": metric(text, 'gslb_dns_tcp_refused_total{cap="client"}'),
        "tcp refused (total cap)": metric(text, 'gslb_dns_tcp_refused_total{cap="total"}'),
        "tcp evicted": metric(text, "gslb_dns_tcp_evicted_total"),
        "tcp closed at message deadline": metric(text, 'gslb_dns_tcp_timeouts_total{timeout="message"}'),
        "tcp closed idle": metric(text, 'gslb_dns_tcp_timeouts_total{timeout="idle"}'),
        "server alive at the end": alive,
    }
    return figures


async def loris_main(port: int, sources: list[str], per_source: int, every: float, retry: float,
                     seconds: float) -> dict:
    """Connections that announce a 256+ byte message and send one byte of it every `every` s; opened again
    `retry` s after the server closes one. Stops after `seconds`."""
    stats = {"attempts": 0, "open": 0, "max_open": 0, "closed_by_server": 0, "connect_errors": 0}
    stopping = False

    async def one(source: str) -> None:
        while not stopping:
            stats["attempts"] += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5)
            except (OSError, TimeoutError):
                stats["connect_errors"] += 1
                await asyncio.sleep(retry)
                continue
            stats["open"] += 1
            stats["max_open"] = max(stats["max_open"], stats["open"])
            try:
                writer.write(b"\x01")
                while not stopping:
                    try:
                        if await asyncio.wait_for(reader.read(1), every) == b"":
                            break
                    except TimeoutError:
                        writer.write(b"\x00")
            except OSError:
                pass
            finally:
                stats["open"] -= 1
                stats["closed_by_server"] += 1
                writer.close()
            await asyncio.sleep(retry)

    tasks = [asyncio.create_task(one(s)) for s in sources for _ in range(per_source)]
    await asyncio.sleep(seconds)
    # The flag as well as cancel(): before Python 3.12, wait_for() can lose a cancellation that arrives
    # as its connection completes, and that task would go on for ever.
    stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)
    return stats


# ---- scenario 3: report bombs ------------------------------------------------------------------------------

def bomb_body(size: int) -> bytes:
    return gzip.compress(b"{" + b" " * size, 9)


def post_raw(api: int, body: bytes, header: str) -> str:
    """POST /v1/reports over a raw socket; the status code, or 'reset' when the server closed first."""
    try:
        with socket.create_connection(("127.0.0.1", api), timeout=30) as s:
            s.sendall(f"POST /v1/reports HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                      f"Content-Encoding: gzip\r\nConnection: close\r\n{header}"
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = s.recv(64).decode(errors="replace")
    except OSError:
        return "reset"
    return head.split(" ")[1] if head.startswith("HTTP/") and " " in head else "closed"


def bombers_main(api: int, workers: int, seconds: float, max_posts: int) -> dict:
    """`workers` threads posting unsigned gzip bombs in a loop: no signature, then a wrong key's."""
    body = bomb_body(64 * 2**20)
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    print("ready", flush=True)
    started = time.monotonic()
    deadline = started + seconds
    count = [0]

    def work(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            with lock:
                if count[0] >= max_posts:
                    return
                count[0] += 1
            header = "" if i % 2 == 0 else f"{HEADER}: {sign('not-the-servers-key', body)}\r\n"
            i += 1
            status = post_raw(api, body, header)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    return {"posts": count[0], "per_second": round(count[0] / took), "statuses": statuses,
            "body_bytes": len(body)}


def signed_main(api: int, seconds: float, count: int) -> dict:
    """Correctly signed bombs that inflate past the 64 MiB cap, one after another, for `seconds`."""
    body = bomb_body(65 * 2**20)
    took, statuses = [], []
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(took) < count:
        t0 = time.monotonic()
        statuses.append(post_raw(api, body, f"{HEADER}: {sign(SECRET, body)}\r\n"))
        took.append(round(time.monotonic() - t0, 2))
    return {"posts": len(took), "statuses": {s: statuses.count(s) for s in set(statuses)},
            "median_s": round(statistics.median(took), 2), "body_bytes": len(body)}


def report_bombs(seconds: float) -> dict:
    phase = max(3.0, seconds / 2)
    figures: dict = {}
    with Served(config=f"health: {{secret: {SECRET}}}\n") as srv:
        idle = udp_sampler(srv.port, phase)
        figures["DNS idle p50 / p99 (ms)"] = f"{idle['p50_ms']} / {idle['p99_ms']}"
        wrong = idle["wrong"] + idle["timeouts"]
        for n in (2, 8):
            proc = helper("bombers", srv.api, n, phase, 1_000_000)
            wait_ready(proc)
            during = udp_sampler(srv.port, phase, until=lambda p=proc: p.poll() is not None)
            out = summary_of(proc, phase + 60)
            wrong += during["wrong"] + during["timeouts"]
            figures[f"{n} senders: DNS p50 / p99 / max (ms)"] = (
                f"{during['p50_ms']} / {during['p99_ms']} / {during['max_ms']}")
            figures[f"{n} senders: DNS queries"] = during["queries"]
            figures[f"{n} senders: bombs posted, per s"] = f"{out.get('posts')}, {out.get('per_second')}"
            figures[f"{n} senders: statuses"] = out.get("statuses")
            figures["bomb body (bytes)"] = out.get("body_bytes")
        proc = helper("signed", srv.api, phase, 200)
        wait_ready(proc)
        during = udp_sampler(srv.port, phase + 60, until=lambda: proc.poll() is not None)
        out = summary_of(proc, 60)
        wrong += during["wrong"] + during["timeouts"]
        figures["signed bombs (65 MiB inflated) one after another"] = (
            f"{out.get('posts')}, statuses {out.get('statuses')}, median {out.get('median_s')} s each")
        figures["signed bombs: DNS p50 / p99 / max (ms)"] = (
            f"{during['p50_ms']} / {during['p99_ms']} / {during['max_ms']}")
        text = get(srv.api, "/metrics")
        refused = [metric(text, f'gslb_health_reports_refused_total{{reason="{r}"}}')
                   for r in ("bad_signature", "too_large")]
        figures["refused: bad_signature / too_large"] = f"{refused[0]} / {refused[1]}"
        figures["DNS wrong answers or timeouts"] = wrong
        figures["endpoints at the end"] = " ".join(f"{a}={s}" for a, s in sorted(states(srv.api).items()))
        figures["server RSS at the end (MB)"] = rss_mb(srv.server.pid)
    return figures


# ---- scenario 4: response rate limiting -----------------------------------------------------------------------

def rrl(_seconds: float) -> dict:
    total, burst = 20_000, 500
    with Served(config="rrl: {exempt: []}\n") as srv:
        query = dns.message.make_query(NAME, "A").to_wire()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.2", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)
        sock.setblocking(False)
        counts = {"answered": 0, "slipped": 0, "other": 0}

        def drain(wait: float) -> None:
            while select.select([sock], [], [], wait)[0]:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    return
                flags, ancount = struct.unpack("!H", data[2:4])[0], struct.unpack("!H", data[6:8])[0]
                if flags & 0x0200:
                    counts["slipped"] += 1
                elif flags & 0x000F == 0 and ancount == 2:
                    counts["answered"] += 1
                else:
                    counts["other"] += 1

        sent = 0
        t0 = time.monotonic()
        while sent < total and time.monotonic() - t0 < 30:
            for _ in range(burst):
                try:
                    sock.sendto(query, ("127.0.0.1", srv.port))
                    sent += 1
                except BlockingIOError:
                    break
            drain(0.005)
        took = time.monotonic() - t0
        drain(1.0)                                    # late answers; a quiet second ends it
        sock.close()
        text = get(srv.api, "/metrics")
        udp_noerror = metric(text, 'gslb_dns_responses_total{proto="udp",rcode="NOERROR"}')
    check = subprocess.run([sys.executable, "-m", "gslb", "check", os.path.join(REPO, "zones")], check=False,
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    amp = next((line for line in check.stdout.splitlines() if line.startswith("largest UDP answer")), "?")
    received = sum(counts.values())
    return {
        "queries sent": sent,
        "sending took (s)": round(took, 2),
        "answered (client)": counts["answered"],
        "slipped TC=1 (client)": counts["slipped"],
        "other responses (client)": counts["other"],
        "no response (client)": sent - received,
        "rrl dropped (/metrics)": metric(text, 'gslb_dns_rrl_limited_total{action="dropped"}'),
        "rrl slipped (/metrics)": metric(text, 'gslb_dns_rrl_limited_total{action="slipped"}'),
        "udp NOERROR responses (/metrics)": udp_noerror,
        "gslb check zones/ (example zone)": amp,
    }


# ---- scenario 5: the YAML alias bomb in a hot reload --------------------------------------------------------

class ChildPeak(threading.Thread):
    """The largest RSS of any descendant of `pid` (the zone parser), sampled every 50 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max([self.peak, *(rss_mb(k) or 0.0 for k in descendants(self.pid))])
            self.halt.wait(0.05)

    def stop(self) -> float:
        self.halt.set()
        self.join()
        return self.peak


def drop_bomb(srv: Served, levels: int) -> tuple[dict, dict]:
    """Write the bomb into the zones directory (temp file + rename) and query DNS until GET /v1/zones
    shows the file's error; (figures, DNS sample)."""
    name = f"bomb{levels}.yaml"
    path = os.path.join(srv.zones, name)
    text = alias_bomb(levels)
    watcher = ChildPeak(srv.server.pid)
    watcher.start()
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    t0 = time.monotonic()
    os.rename(path + ".tmp", path)
    status = {"asked": 0.0, "problem": None}

    def reported() -> bool:                              # ask the API every 0.1 s between DNS queries
        if time.monotonic() - status["asked"] < 0.1:
            return False
        status["asked"] = time.monotonic()
        files = json.loads(get(srv.api, "/v1/zones", timeout=5))["files"]
        for f in files:
            if os.path.basename(f["file"]) == name and not f["ok"] and f["problems"]:
                status["problem"] = f["problems"][0]
        return status["problem"] is not None

    during = udp_sampler(srv.port, 60, until=reported)
    took = time.monotonic() - t0
    peak = watcher.stop()
    problem = status["problem"] or "not reported within 60 s"
    return {
        f"{levels} levels ({len(text)} bytes): error shown after (s)": round(took, 2),
        f"{levels} levels: DNS p50 / p99 / max meanwhile (ms)": (
            f"{during['p50_ms']} / {during['p99_ms']} / {during['max_ms']}"),
        f"{levels} levels: peak RSS of child processes (MB)": peak,
        f"{levels} levels: problem": problem[problem.find(":") + 1:][:110],
    }, during


def alias_bomb_scenario(_seconds: float) -> dict:
    figures: dict = {}
    with Served() as srv:
        figures["server RSS before (MB)"] = rss_mb(srv.server.pid)
        idle = udp_sampler(srv.port, 3)
        figures["DNS idle p50 / p99 (ms)"] = f"{idle['p50_ms']} / {idle['p99_ms']}"
        wrong = idle["wrong"] + idle["timeouts"]
        for levels in (8, 9):
            found, during = drop_bomb(srv, levels)
            figures.update(found)
            wrong += during["wrong"] + during["timeouts"]
        after = udp_sampler(srv.port, 2)
        wrong += after["wrong"] + after["timeouts"]
        figures["server RSS after (MB)"] = rss_mb(srv.server.pid)
        figures["DNS wrong answers or timeouts"] = wrong
        figures["zones served"] = ", ".join(z["origin"] for z in json.loads(get(srv.api, "/v1/zones"))["zones"])
    return figures


# ---- the command ---------------------------------------------------------------------------------------------

RUNNERS = {
    "tcp-one-host": lambda s: slow_loris(["127.0.0.9"], 1100, s),
    "tcp-many-hosts": lambda s: slow_loris([f"127.0.1.{i}" for i in range(1, 41)], 28, s),
    "report-bombs": report_bombs,
    "rrl": rrl,
    "alias-bomb": alias_bomb_scenario,
}


def median_of(values: list):
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(values) > 1 and len(numbers) == len(values):
        return round(statistics.median(numbers), 2)
    return ""


def print_table(name: str, runs: list[dict]) -> None:
    print(f"\n== {name} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    keys = list(dict.fromkeys(k for run in runs for k in run))
    width = max(len(k) for k in keys)
    for key in keys:
        values = [run.get(key) for run in runs]
        med = median_of(values)
        cells = " | ".join(str(v) for v in values)
        print(f"  {key:<{width}}  {cells}" + (f"  (median {med})" if med != "" else ""), flush=True)


def role(argv: list[str]) -> int:
    """Attacker processes: `_role loris|bombers|signed ARGS`; prints one JSON line at the end."""
    kind, args = argv[0], argv[1:]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    if kind == "loris":
        port, sources, per, every, retry, seconds = args
        out = asyncio.run(loris_main(int(port), sources.split(","), int(per), float(every), float(retry),
                                     float(seconds)))
    elif kind == "bombers":
        out = bombers_main(int(args[0]), int(args[1]), float(args[2]), int(args[3]))
    else:
        out = signed_main(int(args[0]), float(args[1]), int(args[2]))
    print(json.dumps(out), flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_role":
        return role(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=SCENARIOS, metavar="NAME",
                    help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    ap.add_argument("--seconds", type=float, default=20, help="attack length for the TCP scenarios (default 20); "
                    "the report-bomb phases take half of it each")
    ap.add_argument("--runs", type=int, default=1, help="runs of each scenario (default 1); medians are printed")
    ap.add_argument("--json", metavar="FILE", help="save every figure")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 300 or not 1 <= args.runs <= 20:
        ap.error("--seconds must be 1..300 and --runs 1..20")

    def stop_on(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGHUP, stop_on)
    print(f"gslb attack measurements on loopback, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} (shared, noisy machine: compare within a run), {time.strftime('%Y-%m-%d %H:%M')}")
    results: dict[str, list[dict]] = {}
    for name in args.only or SCENARIOS:
        for _ in range(args.runs):
            results.setdefault(name, []).append(RUNNERS[name](args.seconds))
        print_table(name, results[name])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seconds": args.seconds, "runs": args.runs, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
