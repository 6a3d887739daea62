"""DNS over TCP under slow and greedy clients: the caps, the message deadline, the idle timeout, the
descriptor reserve, and the slow-loris attack of issue 13 against a real `gslb serve` under a low
`ulimit -n`, with its embedded prober checking real HTTP sites."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode
import pytest
from conftest import EXAMPLE_ZONE, REPO
from httpsite import HttpSite, LoopThread, free_port
from metricsutil import samples, value

from gslb.config.dnslimits import TcpLimits
from gslb.config.server import load_server_config
from gslb.dns.tcpguard import BUSY_IDLE_TIMEOUT, EVICT_AFTER, effective_max_connections, fd_reserve
from gslb.errors import ConfigError

STATIC = "static.gslb.example.com"
STATIC_ADDRESSES = ["192.0.2.10", "192.0.2.11"]


def until(predicate, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"not {what} after {limit} s")


def connect(srv, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((srv.host, srv.port))
    return sock


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """True when the server closed `sock` within `wait` seconds (EOF or reset), False when still open."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True


def tcp_query(sock: socket.socket, name: str = STATIC) -> dns.message.Message:
    wire = dns.message.make_query(name, "A").to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    return dns.query.receive_tcp(sock, time.time() + 2)[0]


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in msg.answer for rd in rrset)


def guard(srv):
    return srv.server.tcp_guard


# ---- configuration ----------------------------------------------------------------------------------

def test_tcp_config_defaults_and_values(tmp_path):
    assert load_server_config(None).tcp == TcpLimits(1000, 32, 10.0, 2.0)
    path = tmp_path / "server.yaml"
    path.write_text("tcp:\n  max_connections: 50\n  max_per_client: 5\n  idle_timeout: 3\n  message_timeout: 0.5\n")
    assert load_server_config(str(path)).tcp == TcpLimits(50, 5, 3.0, 0.5)


KNOWN = "max_connections, max_per_client, idle_timeout, message_timeout"
COUNT = "expected a number of connections 1..1000000"


@pytest.mark.parametrize(("text", "message"), [
    ("tcp: 5\n", f"server.yaml:1: tcp: 5, expected a mapping of {KNOWN}"),
    ("tcp:\n  max_connections: 0\n", f"server.yaml:2: tcp max_connections: 0, {COUNT}"),
    ("tcp:\n  max_per_client: true\n", f"server.yaml:2: tcp max_per_client: True, {COUNT}"),
    ("tcp:\n  idle_timeout: ten\n", "server.yaml:2: tcp idle_timeout: 'ten', expected seconds 0.05..3600"),
    ("tcp:\n  message_timeout: 0\n", "server.yaml:2: tcp message_timeout: 0, expected seconds 0.05..600"),
    ("tcp:\n  idle: 3\n", f"server.yaml:2: tcp idle: unknown key (known: {KNOWN})"),
])
def test_tcp_config_problems_name_the_line(tmp_path, text, message):
    path = tmp_path / "server.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_server_config(str(path))
    assert str(err.value).strip().endswith(message)


def test_the_total_cap_keeps_descriptors_in_reserve():
    assert fd_reserve(256) == 64 and fd_reserve(1024) == 256 and fd_reserve(65536) == 16384
    assert effective_max_connections(1000, 256) == 192          # ulimit -n 256: 64 kept back
    assert effective_max_connections(1000, 1024) == 768         # the common default: a quarter kept back
    assert effective_max_connections(1000, 65536) == 1000       # the configured cap is lower
    assert effective_max_connections(1000, resource.RLIM_INFINITY) == 1000
    assert effective_max_connections(1000, 50) == 1             # absurd limits still leave TCP one slot


# ---- the message deadline and the idle timeout ---------------------------------------------------------

def test_a_trickled_message_is_closed_at_its_deadline(serve):
    """One byte every 0.1 s used to re-arm the idle timer for ever; now the message has 0.5 s in all."""
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {idle_timeout: 5, message_timeout: 0.5}\n")
    sock = connect(srv)
    try:
        sock.sendall(b"\x01")                    # a length prefix claiming 256+ bytes that never come
        started = time.monotonic()
        sent = 1
        while not closed_by_peer(sock, 0.1):
            assert time.monotonic() - started < 3, "a trickling connection is still open after 3 s"
            try:
                sock.sendall(b"\x00")
                sent += 1
            except ConnectionError:
                break
        took = time.monotonic() - started
    finally:
        sock.close()
    assert 0.45 <= took < 1.5, took
    assert sent >= 4                             # bytes kept arriving, and did not extend the deadline
    until(lambda: guard(srv).closed_message_timeout == 1 and guard(srv).open == 0, 2, "counted and released")
    assert guard(srv).closed_idle == 0


def test_a_pipelined_split_message_gets_its_own_deadline(serve):
    """A whole query answered, then half of the next one: the half is closed at the deadline, measured
    from its own first byte, and the whole one was answered."""
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {idle_timeout: 5, message_timeout: 0.4}\n")
    wire = dns.message.make_query(STATIC, "A").to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    sock = connect(srv)
    try:
        sock.sendall(framed + framed[:5])
        answer = dns.query.receive_tcp(sock, time.time() + 2)[0]
        assert addresses(answer) == STATIC_ADDRESSES
        started = time.monotonic()
        assert closed_by_peer(sock, 3)
        assert 0.3 <= time.monotonic() - started < 1.4
    finally:
        sock.close()
    until(lambda: guard(srv).closed_message_timeout == 1, 2, "counted")


def test_idle_timeout_between_messages(serve):
    """Queries keep a connection open (each resets the idle timer); silence closes it (RFC 7766)."""
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {idle_timeout: 0.4, message_timeout: 2}\n")
    sock = connect(srv)
    try:
        started = time.monotonic()
        while True:                                      # three idle timeouts long, one query every 0.2 s
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
            quiet = time.monotonic()
            if quiet - started > 1.2:
                break
            time.sleep(0.2)
        assert closed_by_peer(sock, 3), "an idle connection was not closed"
        assert 0.3 <= time.monotonic() - quiet < 1.2
    finally:
        sock.close()
    until(lambda: guard(srv).closed_idle == 1 and guard(srv).open == 0, 2, "counted and released")
    assert guard(srv).closed_message_timeout == 0


BIG_TXT = ", ".join(f'"{i:03d}{"x" * 250}"' for i in range(60))
BIG_ZONE = f"""\
origin: big.test.
soa: {{mname: ns1.big.test., rname: h.big.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  big: {{TXT: [{BIG_TXT}]}}
"""


def test_a_client_that_does_not_read_its_answers_is_closed(serve):
    """Pipelined queries for 15 KB answers and no reading: once its write buffer is full the server stops
    reading too, and the idle timer closes the connection instead of holding unread answers for ever."""
    srv = serve({"big.yaml": BIG_ZONE}, config_yaml="tcp: {idle_timeout: 0.5, message_timeout: 2}\n")
    wire = dns.message.make_query("big.big.test", "TXT").to_wire()
    framed = (struct.pack("!H", len(wire)) + wire) * 1000     # 15 MB of answers: more than kernels buffer
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    sock.settimeout(1)
    try:
        try:
            sock.sendall(framed)
        except (TimeoutError, ConnectionError):
            pass
        until(lambda: guard(srv).closed_idle == 1, 5, "the idle timer closed the non-reading client")
        until(lambda: guard(srv).open == 0, 2, "released")
        assert srv.server.handler.responses[1][0] < 1000   # it stopped reading queries
    finally:
        sock.close()


def test_pipelined_queries_with_big_answers_are_all_answered_in_order(serve):
    """Flow control loses nothing: 300 queries sent at once (4.5 MB of answers), then read; every answer
    comes, in order, although the server paused reading while the client was not reading."""
    srv = serve({"big.yaml": BIG_ZONE}, config_yaml="tcp: {idle_timeout: 5, message_timeout: 2}\n")
    queries = [dns.message.make_query("big.big.test", "TXT") for _ in range(300)]
    for i, q in enumerate(queries):
        q.id = i
    payload = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    try:
        sock.sendall(payload)                     # 11 KB: fits the buffers, the answers do not
        ids = [dns.query.receive_tcp(sock, time.time() + 5)[0].id for _ in queries]
    finally:
        sock.close()
    assert ids == list(range(300))


# ---- the caps -------------------------------------------------------------------------------------------

def test_per_client_cap(serve):
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {max_per_client: 3, idle_timeout: 30}\n")
    held = [connect(srv) for _ in range(3)]
    try:
        for sock in held:
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
        over = connect(srv)
        assert closed_by_peer(over, 2), "a 4th connection from the same address was kept"
        over.close()
        assert guard(srv).refused_client_cap == 1
        other = connect(srv, "127.0.0.2")             # another client is not affected
        assert addresses(tcp_query(other)) == STATIC_ADDRESSES
        other.close()
        held.pop().close()                            # a slot of its own frees: the client may connect again
        until(lambda: guard(srv).by_client.get("127.0.0.1") == 2, 2, "released")
        again = connect(srv)
        assert addresses(tcp_query(again)) == STATIC_ADDRESSES
        again.close()
        assert guard(srv).refused_client_cap == 1 and guard(srv).refused_total_cap == 0
    finally:
        for sock in held:
            sock.close()


def test_total_cap_and_a_shorter_idle_timeout_under_load(serve):
    """4 connections at most: a 5th (from a 5th address) is closed at once. With more than half the
    slots taken, a connection's idle timeout drops to BUSY_IDLE_TIMEOUT; those armed before keep theirs."""
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {max_connections: 4, max_per_client: 4, idle_timeout: 30}\n")
    guard(srv).evict_after = 60                 # nothing is stalled long enough to make room: refused
    calm = [connect(srv, f"127.0.0.{10 + i}") for i in range(2)]       # 2 of 4 open: not busy
    try:
        for sock in calm:
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
        busy = [connect(srv, f"127.0.0.{20 + i}") for i in range(2)]   # 3 and 4 of 4: busy
        started = time.monotonic()
        until(lambda: guard(srv).open == 4, 2, "4 open")
        over = connect(srv, "127.0.0.30")
        assert closed_by_peer(over, 2), "a connection over the total cap was kept"
        over.close()
        assert guard(srv).refused_total_cap == 1 and guard(srv).refused_client_cap == 0
        for sock in busy:
            assert closed_by_peer(sock, 5), "the busy idle timeout did not close a connection"
            sock.close()
        assert BUSY_IDLE_TIMEOUT - 0.1 <= time.monotonic() - started < BUSY_IDLE_TIMEOUT + 1
        until(lambda: guard(srv).open == 2 and guard(srv).closed_idle == 2, 2, "released and counted")
        for sock in calm:                             # their 30 s idle timers still hold them
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
    finally:
        for sock in calm:
            sock.close()


def test_at_the_cap_the_longest_stalled_connection_makes_room(serve):
    """A newcomer at the total cap closes the connection longest without a whole message (here one that
    trickled a byte of a message), not the ones that just asked; with nothing stalled it is refused."""
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="tcp: {max_connections: 3, max_per_client: 3, idle_timeout: 30, message_timeout: 30}\n")
    guard(srv).evict_after = 0                         # the oldest is evicted whatever its age
    stalled = connect(srv, "127.0.0.40")
    stalled.sendall(b"\x01")                           # a 256+ byte message that never comes
    until(lambda: guard(srv).open == 1, 2, "the stalled connection admitted")
    busy = [connect(srv, f"127.0.0.{41 + i}") for i in range(2)]
    try:
        for sock in busy:
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
        newcomer = connect(srv, "127.0.0.43")
        assert addresses(tcp_query(newcomer)) == STATIC_ADDRESSES
        assert closed_by_peer(stalled, 2), "the stalled connection was kept"
        assert guard(srv).evicted == 1 and guard(srv).refused_total_cap == 0
        for sock in busy:                              # the ones that asked were left alone
            assert addresses(tcp_query(sock)) == STATIC_ADDRESSES
        guard(srv).evict_after = 60
        refused = connect(srv, "127.0.0.44")
        assert closed_by_peer(refused, 2), "a connection over the cap was kept with nothing stalled"
        refused.close()
        assert guard(srv).refused_total_cap == 1 and guard(srv).open == 3
        newcomer.close()
    finally:
        stalled.close()
        for sock in busy:
            sock.close()


def test_metrics_show_the_tcp_counts(serve):
    srv = serve({"example.yaml": EXAMPLE_ZONE}, config_yaml="tcp: {max_per_client: 1, idle_timeout: 30}\n")
    first = connect(srv)
    second = connect(srv)
    assert closed_by_peer(second, 2)
    second.close()
    with urllib.request.urlopen(f"http://{srv.api[0]}:{srv.api[1]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    first.close()
    s = samples(text)
    assert value(s, "gslb_dns_tcp_connections") == 1
    assert value(s, "gslb_dns_tcp_refused_total", cap="client") == 1
    assert ("gslb_dns_tcp_refused_total", frozenset({("cap", "total")})) in s
    assert value(s, "gslb_dns_tcp_refused_total", cap="total") == 0
    assert value(s, "gslb_dns_tcp_timeouts_total", timeout="idle") == 0


# ---- the slow-loris attack against `gslb serve` under ulimit -n 256 --------------------------------------

A, B = "127.0.0.61", "127.0.0.62"
NOFILE = 256


class SlowLoris(LoopThread):
    """Connections that each send one byte every `every` seconds and never finish a message; a connection
    the server closes is opened again after `retry` seconds. Runs on its own event loop thread."""

    def __init__(self, port: int, sources: list[str], per_source: int, every: float = 0.3, retry: float = 0.5):
        super().__init__()
        self.port, self.every, self.retry = port, every, retry
        self.stopping = False
        self.attempts = self.open = self.max_open = self.closed_by_server = 0
        self.tasks = [(s, i) for s in sources for i in range(per_source)]
        self.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self.running = [self.loop.create_task(self._one(source)) for source, _ in self.tasks]

    async def _one(self, source: str) -> None:
        while not self.stopping:
            self.attempts += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(self.retry)
                continue
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            try:
                writer.write(b"\x01")              # a 256+ byte message announced, sent one byte at a time
                while not self.stopping:
                    try:
                        if await asyncio.wait_for(reader.read(1), self.every) == b"":
                            self.closed_by_server += 1
                            break
                    except TimeoutError:
                        writer.write(b"\x00")
            except (OSError, ConnectionError):
                self.closed_by_server += 1
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(self.retry)

    async def _stop(self) -> None:
        self.stopping = True
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

    def close(self) -> None:
        self.run(self._stop())
        super().close()


def _zone(port: int) -> str:
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


@pytest.fixture
def served(tmp_path):
    """`gslb serve` as a process with RLIMIT_NOFILE 256, an embedded prober and two healthy HTTP sites."""
    site_port = free_port(A)
    sites = [HttpSite(A, site_port).start(), HttpSite(B, site_port).start()]
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "t.yaml").write_text(_zone(site_port))
    (tmp_path / "server.yaml").write_text("tcp: {idle_timeout: 3, message_timeout: 1}\n")
    dns_port, api_port = free_port(), free_port()
    log_file = open(tmp_path / "serve.log", "w")  # noqa: SIM115 -- closed below, after the process
    proc = subprocess.Popen(                    # the shell sets the limit (no preexec_fn: threads run here)
        ["sh", "-c", f'ulimit -n {NOFILE} && exec "$0" "$@"', sys.executable, "-m", "gslb", "serve",
         "--config", str(tmp_path / "server.yaml"), "--zones", str(tmp_path / "zones"),
         "--listen", f"127.0.0.1:{dns_port}", "--api", f"127.0.0.1:{api_port}"],
        cwd=tmp_path, stdout=log_file, stderr=log_file, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        until(lambda: _udp(dns_port) == [A, B], 20, "both sites answered")
        until(lambda: _states(api_port) == {A: "up", B: "up"}, 10, "both sites seen up by the prober")
        yield dns_port, api_port, tmp_path / "serve.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            log_file.close()
            for site in sites:
                site.close()


def _udp(port: int) -> list[str] | None:
    try:
        r = dns.query.udp(dns.message.make_query("www.t.test", "A"), "127.0.0.1", port=port, timeout=1)
    except dns.exception.Timeout:
        return None
    return addresses(r) if r.rcode() == dns.rcode.NOERROR else [dns.rcode.to_text(r.rcode())]


def _tcp(port: int, source: str) -> list[str] | None:
    try:
        r = dns.query.tcp(dns.message.make_query("www.t.test", "A"), "127.0.0.1", port=port, timeout=2,
                          source=source)
    except (OSError, EOFError, dns.exception.Timeout):
        return None
    return addresses(r) if r.rcode() == dns.rcode.NOERROR else [dns.rcode.to_text(r.rcode())]


def _get(api_port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}{path}", timeout=2) as resp:
        assert resp.status == 200
        return resp.read().decode()


def _states(api_port: int) -> dict[str, str]:
    """Each endpoint's health state, from GET /v1/health."""
    doc = json.loads(_get(api_port, "/v1/health"))
    return {e["address"]: e.get("state") for zone in doc["zones"] for pool in zone["pools"]
            for site in pool["sites"] for e in site["endpoints"]}


def _metric(text: str, name: str) -> int:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return int(float(found.group(1)))


def _hold_under(attack: SlowLoris, dns_port: int, api_port: int, seconds: float,
                tcp_source: str | None) -> tuple[int, int]:
    """While the attack runs: UDP answers both healthy sites, the API answers, and (with `tcp_source`) a
    fresh TCP connection gets the same answer. Returns the rounds checked and the most DNS TCP
    connections the server reported open meanwhile."""
    rounds = most_open = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _udp(dns_port) == [A, B], f"UDP answer during the attack (round {rounds})"
        if tcp_source is not None:
            assert _tcp(dns_port, tcp_source) == [A, B], f"TCP answer during the attack (round {rounds})"
        assert '"ok": true' in _get(api_port, "/healthz")
        most_open = max(most_open, _metric(_get(api_port, "/metrics"), "gslb_dns_tcp_connections"))
        rounds += 1
        time.sleep(0.1)
    assert attack.open > 0, "the attack stopped by itself"
    return rounds, most_open


def test_slow_loris_from_one_host_leaves_dns_the_api_and_health_alone(served):
    """Issue 13, scaled down: 300 trickling connections from one host against a server allowed 256
    descriptors. Before the caps, the descriptors ran out: new TCP and the API hung, the prober could
    not connect and withdrew both healthy sites, and the pool answered SERVFAIL."""
    dns_port, api_port, _ = served
    attack = SlowLoris(dns_port, ["127.0.0.9"], NOFILE + 44)
    try:
        until(lambda: attack.attempts >= NOFILE + 44, 10, "every attacking connection tried")
        rounds, most_open = _hold_under(attack, dns_port, api_port, 4.0, tcp_source="127.0.0.1")
        metrics = _get(api_port, "/metrics")
    finally:
        attack.close()
    assert rounds >= 5
    assert _states(api_port) == {A: "up", B: "up"}
    assert most_open <= 32 + 2                        # the per-client cap, plus our own TCP query closing
    assert _metric(metrics, 'gslb_dns_tcp_refused_total{cap="client"}') > NOFILE
    assert _metric(metrics, 'gslb_dns_tcp_timeouts_total{timeout="message"}') >= 32
    s = samples(metrics)
    for address in ("127.0.0.61", "127.0.0.62"):
        assert value(s, "gslb_endpoint_answered", zone="t.test.", pool="web", site="main", address=address) == 1


def test_slow_loris_from_many_hosts_stops_at_the_descriptor_reserve(served):
    """300 trickling connections from 10 addresses, each under the per-client cap: the total cap
    (256 - 64 reserved = 192) holds them, so UDP, the API and the prober keep their descriptors, and a
    fresh TCP client still gets its answer: it evicts the connection stalled longest."""
    dns_port, api_port, _ = served
    attack = SlowLoris(dns_port, [f"127.0.1.{i}" for i in range(1, 11)], 30)
    try:
        until(lambda: attack.attempts >= 300, 10, "every attacking connection tried")
        until(lambda: _metric(_get(api_port, "/metrics"), 'gslb_dns_tcp_refused_total{cap="total"}') > 0,
              10, "the cap reached")
        time.sleep(EVICT_AFTER)      # the burst that filled the cap is now old enough to be evicted
        _, most_open = _hold_under(attack, dns_port, api_port, 3.0, tcp_source="127.0.0.1")
        metrics = _get(api_port, "/metrics")
    finally:
        attack.close()
    assert _metric(metrics, "gslb_dns_tcp_connections_max") == NOFILE - fd_reserve(NOFILE)
    assert most_open <= NOFILE - fd_reserve(NOFILE)   # the cap held (reached: refused and evicted below)
    assert _metric(metrics, 'gslb_dns_tcp_refused_total{cap="total"}') > 0
    assert _metric(metrics, "gslb_dns_tcp_evicted_total") > 0
    assert _states(api_port) == {A: "up", B: "up"}
