"""A fleet on loopback, run as an operator runs one: two `gslb serve` nodes started at different times from
two git clones of one zones repository, three `gslb probe` regions reporting to both, real HTTP sites,
and a local unbound delegating the zone to both nodes. Every step goes through the `gslb` command line
(`drain`, `undrain`, `status`), git, signals and real DNS, and waits on the event itself.

Measured figures (drain to withdrawal on both nodes, a restart holding the drain, an overrides.yaml
edit reaching both) are printed: run with `-s` to see them.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from conftest import REGIONS_YAML, REPO
from httpsite import HttpSite, free_port
from test_cli_functional import UNBOUND, free_dual_port

OPERATOR = "fleet-operator-token-0123456789"
READER = "fleet-read-token-0123456789"
PROBER_KEY = "fleet-prober-shared-key-0123456789"
SITES = {"a": "127.0.0.61", "b": "127.0.0.62", "c": "127.0.0.63"}
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-1")
GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None or UNBOUND is None, reason="needs git and unbound (Debian packages)")


def zone(port: int) -> str:
    return f"""\
origin: fleet.test.
soa: {{mname: ns1.fleet.test., rname: hostmaster.fleet.test.}}
records:
  "@": {{NS: [ns1.fleet.test., ns2.fleet.test.]}}
  ns1: {{A: 192.0.2.53}}
  ns2: {{A: 192.0.2.54}}
  static: {{A: 192.0.2.10}}
  www: {{pool: web}}
pools:
  web:
    policy: failover           # a, then b, then c
    ttl: 0
    check: {{type: http, port: {port}, path: /healthz, interval: 0.25, timeout: 0.5}}
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{SITES['a']}]}}
      b: {{lat: 0, lon: 0, endpoints: [{SITES['b']}]}}
      c: {{lat: 0, lon: 0, endpoints: [{SITES['c']}]}}
"""


def wait_for(what: str, condition: Callable[[], object], timeout: float = 15.0, every: float = 0.02,
             explain: Callable[[], str] = str):
    """Poll `condition` until it returns something true; its value. Fails naming `what` at the deadline,
    with what `explain()` says."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {explain()}"
        time.sleep(every)


def tail(path: Path, lines: int = 15) -> str:
    return f"--- {path.name}:\n" + "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="ops", GIT_AUTHOR_EMAIL="ops@example.net", GIT_COMMITTER_NAME="ops",
               GIT_COMMITTER_EMAIL="ops@example.net", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    return subprocess.run([GIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                          check=True).stdout


def gslb_cli(*args: str, token: str | None = OPERATOR, timeout: float = 30) -> subprocess.CompletedProcess:
    """`gslb ARGS` as an operator runs it, with $GSLB_API_TOKEN set to `token`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_")}
    if token is not None:
        env["GSLB_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "gslb", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def answer(port: int, name: str = "www.fleet.test.", rdtype: str = "A") -> list[str] | None:
    """The addresses (or for SOA, the serial) one node answers, asked directly; None when it does not answer."""
    q = dns.message.make_query(name, rdtype)
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None
    if rdtype == "SOA":
        return [str(rr.serial) for rrset in r.answer for rr in rrset]
    return sorted(rr.address for rrset in r.answer for rr in rrset if rr.rdtype == dns.rdatatype.A)


class Node:
    """One `gslb serve` process with its own clone of the zones, state directory, ports and log."""

    def __init__(self, name: str, base: Path, origin: Path, data: Path):
        self.name = name
        self.zones = base / f"{name}-zones"
        self.state = base / f"{name}-state"
        self.log = base / f"{name}.log"
        self.config = base / f"{name}.yaml"
        self.dns, self.api_port = free_dual_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.data = data
        self.proc: subprocess.Popen | None = None
        git(base, "clone", "-q", str(origin), str(self.zones))
        self.config.write_text(f"""\
node_id: {name}
api: {{listen: "127.0.0.1:{self.api_port}", token: {OPERATOR}, read_token: {READER}}}
health:
  secret: {PROBER_KEY}
  state_dir: {self.state}
  report_interval: 0.25
""")

    def start(self) -> float:
        """Start and wait until it answers DNS and its API; returns the seconds until DNS answered."""
        began = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_")}
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gslb", "serve", "--zones", str(self.zones), "--data", str(self.data),
                 "--config", str(self.config), "--listen", f"127.0.0.1:{self.dns}"],
                cwd=REPO, env=dict(env, GSLB_LOG_LEVEL="INFO"), stdout=out, stderr=subprocess.STDOUT)
        wait_for(f"{self.name} to answer DNS",
                 lambda: self._alive() and answer(self.dns, "static.fleet.test.") == ["192.0.2.10"], 30)
        answered = time.monotonic() - began
        wait_for(f"{self.name}'s API", self._api_up, 30)      # bound after DNS: not yet there at times
        return answered

    def _api_up(self) -> bool:
        try:
            self.get("/healthz")
        except OSError:
            return False
        return True

    def _alive(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()}"
        return True

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def get(self, path: str) -> dict:
        req = urllib.request.Request(f"{self.api}{path}", headers={"Authorization": f"Bearer {OPERATOR}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)

    def logged_at(self, text: str) -> float:
        """The unix time of the last log line holding `text` (the log's timestamps are local time, ms)."""
        [line] = [line for line in self.log.read_text().splitlines() if text in line][-1:]
        stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        return stamp.timestamp()

    def serial(self) -> str:
        [serial] = answer(self.dns, "fleet.test.", "SOA") or ["?"]
        return serial

    def settled(self) -> bool:
        """Every named region live and counted, every endpoint up."""
        health = self.get("/v1/health")
        live = {r for r, p in health["probers"].items() if p["live"] and p.get("counted", True)}
        states = [e["state"] for z in health["zones"] for p in z["pools"] for s in p["sites"] for e in s["endpoints"]]
        self.seen = f"{self.name}: regions counted {sorted(live)}, endpoint states {states}"
        return live == set(REGIONS) and bool(states) and all(s == "up" for s in states)

    def explain(self) -> str:
        """What the node last showed, and the tails of its log and the probers' logs."""
        logs = [self.log, *sorted(self.log.parent.glob("probe-*.log"))]
        return "\n".join([getattr(self, "seen", ""), *map(tail, logs)])


def unbound_conf(directory: Path, port: int, nodes: list[Node]) -> str:
    stubs = "".join(f"    stub-addr: 127.0.0.1@{n.dns}\n" for n in nodes)
    return f"""server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-not-query-localhost: no
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    local-zone: "test." nodefault       # unbound answers test. itself by default (RFC 6761)
remote-control:
    control-enable: no
stub-zone:
    name: "fleet.test"
{stubs}"""


class Fleet:
    """Everything of the fleet test; `close()` stops what was started."""

    def __init__(self, base: Path):
        self.base = base
        self.procs: list[subprocess.Popen] = []
        self.sites: list[HttpSite] = []
        self.nodes: list[Node] = []
        self.figures: dict[str, float | str] = {}

    def close(self) -> None:
        procs = [n.proc for n in self.nodes if n.proc is not None] + self.procs
        for proc in procs:                      # all at once: they stop in parallel
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for site in self.sites:
            site.close()


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.close()
        print("\nfleet figures:", json.dumps(f.figures, indent=1))


def start_sites(f: Fleet) -> int:
    """One HTTP site per address, all on one port."""
    while True:
        port = free_port(SITES["a"])
        try:
            f.sites = [HttpSite(address, port).start() for address in SITES.values()]
            return port
        except OSError:
            for site in f.sites:
                site.close()
            f.sites = []


def test_a_fleet_of_two_nodes(fleet: Fleet, tmp_path: Path):
    began = time.monotonic()
    f = fleet
    port = start_sites(f)
    data = tmp_path / "data"
    data.mkdir()
    (data / "regions.yaml").write_text(REGIONS_YAML)
    origin = tmp_path / "zones-origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "fleet.yaml").write_text(zone(port))
    git(origin, "add", "fleet.yaml")
    git(origin, "commit", "-q", "-m", "fleet.test")
    ns1, ns2 = Node("ns1", tmp_path, origin, data), Node("ns2", tmp_path, origin, data)
    f.nodes = [ns1, ns2]

    # Three prober regions, reporting to both nodes (the second node comes up later: they retry).
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_")}
    for region in REGIONS:
        with open(tmp_path / f"probe-{region}.log", "w") as out:
            f.procs.append(subprocess.Popen(
                [sys.executable, "-m", "gslb", "probe", "--region", region, "--zones", str(origin), "--data",
                 str(data), "--interval", "0.25", "--report-to", ns1.api, "--report-to", ns2.api],
                cwd=REPO, env=dict(env, GSLB_SECRET=PROBER_KEY), stdout=out, stderr=subprocess.STDOUT))
    f.figures["ns1 start s"] = round(ns1.start(), 2)
    ns1_second = int(time.time())
    wait_for("ns1: 3 regions live, every endpoint up", ns1.settled, 20, 0.1, ns1.explain)
    # Started at different times: a serial taken from the load time would differ between the nodes.
    wait_for("a later wall-clock second than ns1's start", lambda: int(time.time()) > ns1_second, 2)
    f.figures["ns2 start s"] = round(ns2.start(), 2)
    wait_for("ns2: 3 regions live, every endpoint up", ns2.settled, 20, 0.1, ns2.explain)

    # One serial for one content.
    serial = ns1.serial()
    assert serial.isdigit() and ns2.serial() == serial, (serial, ns2.serial())
    f.figures["serial"] = serial
    # The node's unnamed embedded prober is a stand-in: 3 named regions decide, not 4.
    reason = ns1.get("/v1/health")["zones"][0]["pools"][0]["sites"][0]["endpoints"][0]["reason"]
    assert reason == "up in 3 of 3 regions", reason
    for node in f.nodes:
        assert answer(node.dns) == [SITES["a"]]

    # A resolver delegating the zone to both nodes.
    resolver_port = free_port()
    (tmp_path / "unbound.conf").write_text(unbound_conf(tmp_path, resolver_port, f.nodes))
    with open(tmp_path / "unbound.log", "w") as out:
        f.procs.append(subprocess.Popen([UNBOUND, "-d", "-c", str(tmp_path / "unbound.conf")], stdout=out,
                                        stderr=subprocess.STDOUT))
    resolved = lambda: resolve(resolver_port)
    assert wait_for("unbound to resolve through the delegation", resolved, 20, 0.1) == [SITES["a"]]
    assert resolve(resolver_port, "fleet.test.", "SOA") == [serial]

    # gslb status over both nodes: they agree (reads need the read token: without it, exit 1).
    status = gslb_cli("status", "--api", ns1.api, "--api", ns2.api, token=None)
    assert status.returncode == 1 and "a read token is needed" in status.stdout, status.stdout
    status = gslb_cli("status", "--api", ns1.api, "--api", ns2.api, "--token", READER, token=None)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{serial} on all 2 nodes" in status.stdout and "all 2 nodes agree" in status.stdout

    # A prober's key cannot drain.
    refused = gslb_cli("drain", "web/a", "--reason", "stolen key", "--api", ns1.api, "--api", ns2.api,
                       token=PROBER_KEY)
    assert refused.returncode != 0, refused.stdout
    assert "prober key" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert all(answer(node.dns) == [SITES["a"]] for node in f.nodes)
    assert all(node.get("/v1/overrides")["overrides"] == [] for node in f.nodes)

    # Drain site a on both nodes. Both have withdrawn it by the time the command returns, each within
    # 1 s (in practice milliseconds) of the drain reaching it; from the command's start the time includes
    # the interpreter's start, reported as measured.
    t0, wall0 = time.monotonic(), time.time()
    drain = subprocess.Popen(
        [sys.executable, "-m", "gslb", "drain", "web/a", "--reason", "CHG-42 rack move", "--for", "1h",
         "--api", ns1.api, "--api", ns2.api], cwd=REPO, env=dict(env, GSLB_API_TOKEN=OPERATOR),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    withdrawn: dict[str, float] = {}        # node -> wall time it was first seen answering without site a

    def both_withdrawn() -> bool:
        for node in f.nodes:
            if node.name not in withdrawn and answer(node.dns) == [SITES["b"]]:
                withdrawn[node.name] = time.time()
        return len(withdrawn) == 2 or drain.poll() is not None

    wait_for("both nodes to withdraw site a, or the drain to end", both_withdrawn, 20, 0.005)
    out, _ = drain.communicate(timeout=30)
    command_s = time.monotonic() - t0
    assert drain.returncode == 0, out
    assert len(out.strip().splitlines()) == 2, out                      # one line per node
    assert all(answer(node.dns) == [SITES["b"]] for node in f.nodes)     # withdrawn when it returns
    for node in f.nodes:
        seen = withdrawn.setdefault(node.name, time.time())
        received = node.logged_at("override set over the API: web/a down")
        f.figures[f"drain reached {node.name} -> withdrawn s"] = round(max(0.0, seen - received), 3)
        f.figures[f"drain started -> {node.name} withdrawn s"] = round(seen - wall0, 3)
        assert seen - received < 1.0, (node.name, seen - received)
    f.figures["drain command s"] = round(command_s, 3)
    assert resolve(resolver_port) == [SITES["b"]]

    # ns2 stops; its state is made older than state_max_age (300 s), as after a long outage; it comes
    # back: the drain holds from its first answer on.
    assert ns2.stop() == 0
    old = time.time() - 400
    for path in ns2.state.iterdir():
        if path.name == "health.json":
            body = json.loads(path.read_text())
            body["saved_at"] = old
            path.write_text(json.dumps(body))
        os.utime(path, (old, old))
    f.figures["ns2 restart s"] = round(ns2.start(), 2)
    assert answer(ns2.dns) == [SITES["b"]]
    assert "not used" in ns2.log.read_text()                    # the health state was too old: ignored
    assert ns2.serial() == serial                               # a restart keeps the serial
    wait_for("ns2: 3 regions live again", ns2.settled, 20, 0.1, ns2.explain)

    # An overrides.yaml edit, committed once and pulled on each node, reaches both.
    (origin / "overrides.yaml").write_text("""\
overrides:
  - selector: web/b
    state: down
    reason: "CHG-43 b's storage is being replaced"
    by: ops
""")
    git(origin, "add", "overrides.yaml")
    git(origin, "commit", "-q", "-m", "drain b")
    t0 = time.monotonic()
    for node in f.nodes:
        git(node.zones, "pull", "-q", "--ff-only")
    reached: dict[str, float] = {}

    def both_reached() -> bool:
        for node in f.nodes:
            if node.name not in reached and answer(node.dns) == [SITES["c"]]:
                reached[node.name] = time.monotonic() - t0
        return len(reached) == 2

    wait_for("the overrides.yaml edit to reach both nodes", both_reached, 10, 0.01)
    f.figures.update({f"overrides.yaml pulled -> {n} s": round(s, 3) for n, s in reached.items()})
    assert resolve(resolver_port) == [SITES["c"]]
    status = gslb_cli("status", "--api", ns1.api, "--api", ns2.api, "--token", READER, token=None)
    assert status.returncode == 0, status.stdout
    assert "web/b DOWN (file" in status.stdout and "CHG-43" in status.stdout
    [drained] = [line for line in status.stdout.splitlines() if "web/a DOWN (api" in line]
    assert "CHG-42 rack move" in drained and " until 20" in drained and "[on all nodes]" in drained, drained

    # Undrain a on both; then drain it on ns1 alone: gslb status says the nodes disagree (exit 2).
    undrain = gslb_cli("undrain", "web/a", "--api", ns1.api, "--api", ns2.api)
    assert undrain.returncode == 0, undrain.stdout + undrain.stderr
    wait_for("site a back on both", lambda: all(answer(n.dns) == [SITES["a"]] for n in f.nodes), 5)
    one = gslb_cli("drain", "web/a", "--reason", "only here", "--api", ns1.api)
    assert one.returncode == 0, one.stdout + one.stderr
    status = gslb_cli("status", "--api", ns1.api, "--api", ns2.api, "--token", READER, token=None)
    assert status.returncode == 2, status.stdout
    assert "only on ns1" in status.stdout and "DISAGREE" in status.stdout
    # And a node that cannot be reached is exit 1 once they agree again.
    assert gslb_cli("undrain", "web/a", "--api", ns1.api).returncode == 0
    assert ns2.stop() == 0
    status = gslb_cli("status", "--api", ns1.api, "--api", ns2.api, "--token", READER, token=None)
    assert status.returncode == 1 and "UNREACHABLE: " in status.stdout, status.stdout
    f.figures["whole test s"] = round(time.monotonic() - began, 1)


def resolve(port: int, name: str = "www.fleet.test.", rdtype: str = "A") -> list[str] | None:
    """What the resolver returns (recursion desired), as `answer` does for a node."""
    q = dns.message.make_query(name, rdtype)
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=1.0)
    except (dns.exception.Timeout, OSError):
        return None
    if rdtype == "SOA":
        return [str(rr.serial) for rrset in r.answer for rr in rrset] or None
    return sorted(rr.address for rrset in r.answer for rr in rrset if rr.rdtype == dns.rdatatype.A) or None
