"""Regional proxies telling DNS directly (issue 15), for real: two `gslb serve` nodes on loopback (each with
its embedded prober checking the proxies' /healthz), two `gslb proxy` processes (regions eu and us, at
127.0.0.61 and 127.0.0.62) over two real backends each, reporting to both nodes.

The zone's checks of the proxies are slow on purpose (interval 1 s, fall 3: at least 2 s after /healthz
turns 503), so a withdrawal within that time can only come from the proxy's report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from conftest import REPO, running_server
from httpsite import free_port
from proxyharness import Backend

from gslb.health.proxyreport import encode_proxy_report
from gslb.health.signing import HEADER, sign

EU, US = "127.0.0.61", "127.0.0.62"
SECRET = "proxy-report-test-secret"


def both_free() -> int:
    """A port free on both proxy addresses (each proxy's admin port: the zone checks one port)."""
    for _ in range(50):
        port = free_port(EU)
        try:
            import socket
            with socket.socket() as s:
                s.bind((US, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on both addresses")


def zone(admin_port: int) -> str:
    check = f"{{type: http, port: {admin_port}, path: /healthz, interval: 1, fall: 3, rise: 1}}"
    sites = (f"      eu: {{lat: 0, lon: 0, proxy_pool: eu-1/app, endpoints: [{EU}]}}\n"
             f"      us: {{lat: 0, lon: 0, proxy_pool: us-1/app, endpoints: [{US}]}}\n")
    return f"""\
origin: p.test.
soa: {{mname: ns1.p.test., rname: h.p.test., serial: 1}}
records:
  "@": {{NS: ns1.other.test.}}
  fo: {{pool: fo}}
  cap: {{pool: cap}}
pools:
  fo:
    policy: failover
    ttl: 1
    check: {check}
    sites:
{sites}  cap:
    policy: weighted
    ttl: 1
    capacity: follow
    capacity_floor: 0.1
    check: {check}
    sites:
{sites}"""


class ProxyProcess:
    """A `gslb proxy` process for one region, over its own backends."""

    def __init__(self, tmp, name: str, host: str, admin_port: int, apis: list[str], backends: list[Backend]):
        self.name, self.host, self.admin_port, self.apis, self.backends = name, host, admin_port, apis, backends
        self.path = tmp / f"{name}.yaml"
        self.listen = free_port(host)
        self.write(report=True)
        self.proc: subprocess.Popen | None = None
        self.start()

    def write(self, report: bool) -> None:
        items = ", ".join(f'"{b.address}"' for b in self.backends)
        text = (f"listen: [{self.host}:{self.listen}]\nadmin: {self.host}:{self.admin_port}\naccess_log: false\n"
                f"pools:\n  app:\n    backends: [{items}]\n"
                f"    check: {{type: http, path: /healthz, interval: 0.2, rise: 1, fall: 1}}\n"
                f"routes:\n  - {{default: true, pool: app}}\n")
        if report:
            text += f"report_to: [{', '.join(self.apis)}]\nreport_name: {self.name}\nreport_key: {SECRET}\n"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gslb", "--log-level", "WARNING", "proxy", "--config",
                                      str(self.path)], cwd=REPO)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def answers(srv, name: str = "fo.p.test") -> list[str]:
    return sorted(rd.address for rrset in srv.query(name, "A").answer for rd in rrset)


def wait_until(condition, limit: float, what: str, step: float = 0.02) -> float:
    """Seconds until `condition()` holds (polled every `step`); fails naming `what` past `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not within {limit} s: {what}")


def health(srv) -> dict:
    with urllib.request.urlopen(f"http://{srv.api[0]}:{srv.api[1]}/v1/health", timeout=5) as resp:
        return json.load(resp)


def endpoint(doc: dict, pool: str, address: str) -> dict:
    for p in doc["zones"][0]["pools"]:
        if p["name"] == pool:
            for site in p["sites"]:
                for e in site["endpoints"]:
                    if e["address"] == address:
                        return e
    raise KeyError(address)


def live_proxies(srv) -> set[str]:
    return set(srv.server.health_service.monitor.proxy_views)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy-reports")
    admin_port = both_free()
    config = f"health: {{secret: {SECRET}, report_interval: 0.5}}\n"
    with running_server(tmp / "n1", {"p.yaml": zone(admin_port)}, config_yaml=config) as n1, \
            running_server(tmp / "n2", {"p.yaml": zone(admin_port)}, config_yaml=config) as n2:
        nodes = [n1, n2]
        apis = [f"http://{n.api[0]}:{n.api[1]}" for n in nodes]
        backends = {"eu": [Backend("eu1"), Backend("eu2")], "us": [Backend("us1"), Backend("us2")]}
        proxies = {"eu": ProxyProcess(tmp, "eu-1", EU, admin_port, apis, backends["eu"]),
                   "us": ProxyProcess(tmp, "us-1", US, admin_port, apis, backends["us"])}
        try:
            wait_until(lambda: all(live_proxies(n) == {"eu-1/app", "us-1/app"} for n in nodes), 20,
                       "both proxies reporting to both nodes", 0.1)
            wait_until(lambda: all(answers(n) == [EU] for n in nodes), 20, "both nodes answering eu", 0.1)
            yield nodes, proxies, backends
        finally:
            for p in proxies.values():
                p.close()
            for group in backends.values():
                for b in group:
                    b.close()


def restore(nodes, proxies, backends) -> None:
    """Every backend and proxy up and reporting, both nodes answering eu (a test leaves the fleet so)."""
    for b in backends["eu"] + backends["us"]:
        if b.runner is None:
            b.start()
    for p in proxies.values():
        if p.proc is None or p.proc.poll() is not None:
            p.write(report=True)
            p.start()
    wait_until(lambda: all(n.server.health_service.monitor.proxy_views.get("eu-1/app") is not None
                           and n.server.health_service.monitor.proxy_views["eu-1/app"].healthy == 2
                           for n in nodes), 15, "eu-1 reporting 2 healthy", 0.05)
    wait_until(lambda: all(answers(n) == [EU] for n in nodes), 15, "both nodes answering eu again", 0.05)


def test_backends_die_both_nodes_withdraw_at_once_and_return(fleet):
    nodes, proxies, backends = fleet
    restore(nodes, proxies, backends)
    for b in backends["eu"]:
        b.stop()                                     # the backends die, not the proxy
    gone = wait_until(lambda: all(answers(n) == [US] for n in nodes), 5, "both nodes withdraw eu")
    # The probers would need at least 2 s after /healthz turns 503 (interval 1 s, fall 3): this is the report.
    assert gone < 2.0, gone
    for n in nodes:
        e = endpoint(health(n), "fo", EU)
        assert not e["answered"] and e["why"].startswith("down (proxy eu-1/app: 0 of 2 backends healthy"), e
        assert e["proxy"]["healthy"] == 0 and e["proxy"]["counted"], e["proxy"]
        kinds = [ev.kind for ev in n.server.health_service.events.ring]
        assert "proxy.pool_empty" in kinds
    # While the nodes take its reports, the proxy's /healthz leaves the empty pool to them: the checks do
    # not mark eu down, so its return waits for no `rise` of theirs.
    with urllib.request.urlopen(f"http://{EU}:{proxies['eu'].admin_port}/healthz", timeout=5) as resp:
        assert resp.status == 200 and json.load(resp)["told_dns_by_report"] is True
    for b in backends["eu"]:
        b.start()
    back = wait_until(lambda: all(answers(n) == [EU] for n in nodes), 5, "both nodes answer eu again")
    assert back < 2.0, back
    # gslb status shows the proxy's view beside the probers'
    api = f"http://{nodes[0].api[0]}:{nodes[0].api[1]}"
    status = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, capture_output=True,
                            text=True, timeout=20, check=True).stdout
    assert "proxy eu-1: live" in status and "proxy eu-1/app" in status and "2/2 backends" in status, status
    # Each node's own prober must have judged every endpoint before the nodes can agree (a node that
    # started a moment later may still say "unknown" for one).
    wait_until(lambda: all(e["state"] == "up" for n in nodes for p in health(n)["zones"][0]["pools"]
                           for site in p["sites"] for e in site["endpoints"]), 10, "both nodes judged every endpoint")
    apis = [a for n in nodes for a in ("--api", f"http://{n.api[0]}:{n.api[1]}")]
    fleet_status = subprocess.run([sys.executable, "-m", "gslb", "status", *apis], cwd=REPO, capture_output=True,
                                  text=True, timeout=20, check=False)
    assert fleet_status.returncode == 0, fleet_status.stdout          # exit 0: the nodes agree
    fleet_status = fleet_status.stdout
    assert "regional proxies (per node):" in fleet_status
    (row,) = [line for line in fleet_status.splitlines() if line.strip().startswith("eu-1 ")]
    assert row.count("live (app 2/2)") == 2, fleet_status


def test_a_killed_proxy_is_decided_by_the_probers(fleet):
    nodes, proxies, backends = fleet
    restore(nodes, proxies, backends)
    proxies["eu"].kill()                 # no last word: its last report said healthy, and it cannot hold eu up
    wait_until(lambda: all(answers(n) == [US] for n in nodes), 10, "the probers withdraw eu")
    e = endpoint(health(nodes[0]), "fo", EU)
    assert e["state"] == "down" and e["why"].startswith("down"), e
    proxies["eu"].start()
    wait_until(lambda: all(answers(n) == [EU] for n in nodes), 15, "eu answered again after the proxy restarts")


def test_silent_proxy_falls_back_to_the_checks(fleet):
    nodes, proxies, backends = fleet
    restore(nodes, proxies, backends)
    for b in backends["eu"]:
        b.stop()
    wait_until(lambda: all(answers(n) == [US] for n in nodes), 5, "withdrawn by the report")
    proxies["eu"].write(report=False)     # the proxy keeps running (it reloads its file) but stops reporting
    wait_until(lambda: all("eu-1/app" not in live_proxies(n) for n in nodes), 8, "eu-1 silent on both nodes", 0.05)
    # Not reporting, its /healthz counts the empty pool again: the checks take eu down themselves.
    wait_until(lambda: all(endpoint(health(n), "fo", EU)["state"] == "down" for n in nodes), 8,
               "the checks see eu down", 0.1)
    assert all(answers(n) == [US] for n in nodes)
    # Its last report said the pool is empty; were it still counted, eu would stay out for good. Stale, it
    # is not: the checks, which see /healthz turn 200 again, bring eu back.
    for b in backends["eu"]:
        b.start()
    wait_until(lambda: all(answers(n) == [EU] for n in nodes), 10, "eu back, decided by the checks")
    doc = health(nodes[0])
    assert doc["proxies"]["eu-1"]["live"] is False and doc["proxies"]["eu-1"]["pools"]["app"]["healthy"] == 0
    e = endpoint(doc, "fo", EU)
    assert e["proxy"]["counted"] is False and e["state"] == "up" and "proxy" not in e["why"], e
    proxies["eu"].close()                 # restore() starts it again, reporting


def _post(srv, body: bytes, header: str) -> int:
    request = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", data=body, method="POST",
                                     headers={HEADER: header, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_forged_and_replayed_proxy_reports_are_refused(fleet):
    nodes, proxies, backends = fleet
    restore(nodes, proxies, backends)
    srv = nodes[0]
    intake = srv.server.health_service.intake
    empty = encode_proxy_report("eu-1", None, 1.0, {"app": (0, 2, 0, 2)})
    bad = intake.refused["bad_signature"]
    assert _post(srv, empty, sign("not-the-servers-key", empty)) == 401
    assert intake.refused["bad_signature"] == bad + 1
    time.sleep(0.3)
    assert answers(srv) == [EU]                                   # the forged report withdrew nothing
    healthy = encode_proxy_report("eu-1", None, 1.0, {"app": (2, 2, 2, 2)})
    header = sign(SECRET, healthy)
    assert _post(srv, healthy, header) == 200
    replays = intake.refused["replay"]
    assert _post(srv, healthy, header) == 409                     # the same report again: a replay
    old = sign(SECRET, empty, now=time.time() - 5)                # signed before the proxy's last one
    assert _post(srv, empty, old) == 409
    assert intake.refused["replay"] == replays + 2
    assert answers(srv) == [EU]


def test_capacity_follow_moves_the_share_within_2_s(fleet):
    nodes, proxies, backends = fleet
    restore(nodes, proxies, backends)

    def eu_share(srv, n: int = 1000) -> float:
        counts = Counter(a for _ in range(n) for a in answers(srv, "cap.p.test"))
        return counts[EU] / n

    for srv in nodes:
        assert 0.40 <= eu_share(srv, 400) <= 0.60                 # weights 1:1, both pools whole
    backends["eu"][0].stop()                                       # half of eu's backend weight gone
    took = wait_until(lambda: all(n.server.health.proxy("eu-1/app") is not None
                                  and n.server.health.proxy("eu-1/app").healthy == 1 for n in nodes), 2,
                      "both nodes see eu at half capacity")
    assert took < 2.0
    # eu weighs 1 x 0.5 against us 1: a third of the answers (the target: half its weight share, 25 %, +-10
    # points). Over 2,000 answers one standard deviation is 1.05 points: 4.5 points is a bound that holds.
    for srv in nodes:
        share = eu_share(srv, 2000)
        assert abs(share - 1 / 3) < 0.045, share
    # gslb explain (its API) shows the proxy's view and the weight it gives
    url = f"http://{nodes[0].api[0]}:{nodes[0].api[1]}/v1/explain?name=cap.p.test&type=A"
    with urllib.request.urlopen(url, timeout=5) as resp:
        lines = "\n".join(json.load(resp)["lines"])
    assert "proxy eu-1/app: 1 of 2 backends healthy, weight 1/2" in lines, lines
    assert f"candidate {EU} (site eu) weight 0.5 share 33%" in lines, lines
    backends["eu"][0].start()
    wait_until(lambda: all(n.server.health.proxy("eu-1/app").healthy == 2 for n in nodes), 3, "eu whole again")
