"""Local faults are not votes: a check the prober itself cannot make (here: `gslb serve`'s process is out
of file descriptors, as under the TCP slow-loris of issue 13) is a prober error. The endpoint keeps its
state and stays in the answers; the error is counted and shown (/v1/health, `gslb status`)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import dns.message
import dns.query
import dns.rcode
from conftest import REGIONS_YAML, REPO
from httpsite import HttpSite, free_port
from zonetext import http_check, pool_zone

from gslb.config.model import Check, Target

A, B = "127.0.0.71", "127.0.0.72"     # A serves /healthz; nothing listens on B (down from the start)
FALL = 2

# Runs `gslb serve` in this process under a low descriptor limit. A thread reads commands on stdin:
# "exhaust" opens /dev/null until EMFILE and keeps taking any descriptor that comes free (as a flood
# of connections would); "release" closes them.
WRAPPER = textwrap.dedent("""\
    import logging, os, resource, sys, threading, time
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    logging.getLogger("gslb.prober").setLevel(logging.DEBUG)     # one line per prober error
    held, exhausting = [], threading.Event()
    def grab():
        while True:
            exhausting.wait()
            try:
                while True:
                    held.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as exc:
                if not hasattr(grab, "told"):
                    grab.told = print(f"EXHAUSTED {len(held)} errno {exc.errno}", file=sys.stderr, flush=True)
            time.sleep(0.002)
    def control():
        for line in sys.stdin:
            if line.strip() == "exhaust":
                exhausting.set()
            elif line.strip() == "release":
                exhausting.clear()
                time.sleep(0.05)
                while held:
                    os.close(held.pop())
                print("RELEASED", file=sys.stderr, flush=True)
    threading.Thread(target=grab, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    from gslb.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def zone(port: int) -> str:
    return pool_zone("lf.test", {"a": [A], "b": [B]}, all_down="servfail",
                     check=http_check(port, interval=0.2, timeout=0.5, rise=1, fall=FALL))


class Serve:
    """`gslb serve` in a subprocess through WRAPPER; its stderr lines are collected by a thread."""

    def __init__(self, tmp, port: int):
        (tmp / "zones").mkdir()
        (tmp / "zones" / "lf.yaml").write_text(zone(port))
        (tmp / "data").mkdir()
        (tmp / "data" / "regions.yaml").write_text(REGIONS_YAML)
        self.dns_port, self.api_port = free_port(), free_port()
        (tmp / "server.yaml").write_text(
            f"zones: {tmp / 'zones'}\ndata: {tmp / 'data'}\nlisten: ['127.0.0.1:{self.dns_port}']\n"
            f"api: 127.0.0.1:{self.api_port}\nreload_interval: 1\n"
            f"health: {{report_interval: 0.2, state_dir: {tmp / 'state'}}}\n")
        (tmp / "wrapper.py").write_text(WRAPPER)
        env = dict(os.environ, GSLB_LOG_LEVEL="INFO", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(tmp / "wrapper.py"), "serve", "--config",
                                      str(tmp / "server.yaml")], cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            self.new.put(line)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def log_count(self, pattern: str) -> int:
        return sum(1 for line in list(self.lines) if re.search(pattern, line))

    def answer(self) -> str:
        """The answer to www.lf.test A: the address(es), or the rcode when it is not NOERROR."""
        q = dns.message.make_query("www.lf.test", "A")
        reply = dns.query.udp(q, "127.0.0.1", port=self.dns_port, timeout=2)
        if reply.rcode() != dns.rcode.NOERROR:
            return dns.rcode.to_text(reply.rcode())
        return ",".join(sorted(rd.address for rrset in reply.answer for rd in rrset))

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/v1/health", timeout=5) as resp:
            return json.load(resp)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def until(predicate, limit: float, what: str, serve: Serve | None = None):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, dns.exception.DNSException):
            value = None
        if value:
            return value
        time.sleep(0.05)
    tail = "".join(serve.lines[-30:]) if serve else ""
    raise AssertionError(f"not {what} after {limit} s\n{tail}")


def test_a_site_stays_up_while_the_prober_is_out_of_file_descriptors(tmp_path):
    port = free_port(A)
    site = HttpSite(A, port).start()
    serve = Serve(tmp_path, port)
    try:
        until(lambda: serve.answer() == A, 20, "answering A", serve)
        until(lambda: {e["address"]: e["state"] for e in
                       serve.health()["zones"][0]["pools"][0]["sites"][0]["endpoints"]} == {A: "up"}, 5, "A up")
        serve.send("exhaust")
        until(lambda: serve.log_count(r"EXHAUSTED \d+ errno 24"), 5, "out of descriptors", serve)
        # Both targets are checked every 0.2 s: wait for enough prober errors that, were they votes,
        # A would have fallen (FALL in a row) several times over. A must be answered all along.
        wanted = 4 * (FALL + 1)
        while serve.log_count(r"prober error #\d+") < wanted:
            assert serve.answer() == A, "A left the answers while only the prober was failing\n" + \
                "".join(serve.lines[-20:])
            assert serve.proc.poll() is None, "".join(serve.lines[-30:])
            time.sleep(0.02)
        assert serve.answer() == A
        errors = [line for line in serve.lines if "prober error #" in line]
        assert any("too many open files" in line for line in errors), errors[:3]
        serve.send("release")
        until(lambda: serve.log_count("RELEASED"), 5, "released", serve)
        health = until(serve.health, 10, "the API answering again", serve)
        prober = health["probers"]["local"]
        assert prober["prober_errors"] >= wanted
        assert "too many open files" in prober["last_prober_error"]
        endpoint = health["zones"][0]["pools"][0]["sites"][0]["endpoints"][0]
        assert (endpoint["address"], endpoint["state"], endpoint["answered"]) == (A, "up", True)
        until(lambda: serve.health()["probers"]["local"]["live"], 5, "the prober counted again", serve)
        status = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", f"http://127.0.0.1:{serve.api_port}"],
                                cwd=REPO, capture_output=True, text=True, timeout=20, check=True).stdout
        assert re.search(r"prober local: live, .* \d+ prober errors \(last: .*too many open files", status), status
        assert serve.answer() == A
        site.status = 503                          # real failures are still votes
        until(lambda: serve.answer() == "SERVFAIL", 5, "A withdrawn when it really fails", serve)
    finally:
        serve.stop()
        site.close()


async def test_a_timeout_while_the_prober_loop_is_stalled_is_a_prober_error():
    """The endpoint never answers; once while the prober's own loop is blocked for most of the timeout
    (a prober error, state held), then with the loop free (a vote: down after FALL)."""
    from gslb.health.prober import Prober

    async def hang(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    target = Target("127.0.0.1", Check(type="http", port=server.sockets[0].getsockname()[1],
                                       path="/", interval=0.1, timeout=0.4, rise=1, fall=1))
    prober = Prober("test", lambda region, views: None, report_interval=0.1)
    prober.restore({target: ("up", None)})
    await prober.start()
    prober.set_targets([target])
    try:
        # Stall the loop (as an overloaded prober would) for the whole of every check's timeout.
        deadline = time.monotonic() + 5
        while prober.errors_total < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            time.sleep(0.3)  # noqa: ASYNC251 -- blocks the loop on purpose: 0.3 s >= LAG_FRACTION * 0.4 s
        assert prober.errors_total >= 2
        view = prober.views()[target]
        assert view.state == "up" and "event loop was" in view.prober_error
        deadline = time.monotonic() + 5           # loop free: the timeout is the endpoint's, a vote
        while prober.views()[target].state != "down" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert prober.views()[target].state == "down"
        assert "timeout after 0.4 s" in prober.views()[target].error
    finally:
        await prober.stop()
        server.close()


async def test_a_prober_that_cannot_bind_its_source_address_is_blind_not_voting():
    """Checks sent from an address this host does not have (EADDRNOTAVAIL) are prober errors; with
    nothing else, the prober says it is blind, and the aggregator leaves it out of the quorum."""
    from gslb.config.health import HealthSettings
    from gslb.health.monitor import HealthMonitor
    from gslb.health.prober import Prober
    from gslb.health.snapshot import RegionView

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    target = Target("127.0.0.1", Check(type="tcp", port=server.sockets[0].getsockname()[1], interval=0.05,
                                       fall=1))
    prober = Prober("eu-west-1", lambda region, views: None, report_interval=0.05, source="192.0.2.1")
    prober.restore({target: ("up", None)})
    await prober.start()
    prober.set_targets([target])
    try:
        deadline = time.monotonic() + 5
        # Blind after 3 report intervals of only errors; wait for the third error too (a loaded machine
        # may run fewer checks in that time).
        while (prober.status().blind is None or prober.status().errors_total < 3) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        status, view = prober.status(), prober.views()[target]
    finally:
        await prober.stop()
        server.close()
    assert status.blind is not None and status.errors_total >= 3
    assert view.state == "up" and "cannot assign requested address" in view.prober_error
    # In the aggregator: the blind region's (stale) down view does not count, even with quorum "any".
    monitor = HealthMonitor(HealthSettings(quorum="any"), lambda snapshot: None)
    monitor.set_targets([target])
    monitor.report("eu-west-1", {target: RegionView("down", prober_error=view.prober_error)}, 1.0, status)
    monitor.report("us-east-1", {target: RegionView("up")}, 1.0)
    assert monitor.snapshot.of(target).state == "up"
    assert not monitor.regions["eu-west-1"].live(time.time())
    monitor.report("eu-west-1", {target: RegionView("down")}, 1.0)     # it can see again: its vote counts
    assert monitor.snapshot.of(target).state == "down"
