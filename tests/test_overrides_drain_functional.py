"""`gslb drain` / `gslb undrain` (real subprocesses) against two servers: the site leaves both nodes' answers
within 1 s, one line per node, non-zero exit when a node fails; and a `gslb serve` process that reads
overrides.yaml again on SIGHUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import dns.message
import dns.query
from conftest import REPO
from httpsite import free_port
from test_overrides_serve import BOTH_A, ONLY_B, TOKEN, ZONE, answers, wait_answers

CONFIG = f"api: {{token: {TOKEN}}}\nhealth: {{report_interval: 30}}\n"


def gslb(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **(env or {})})


def url(srv) -> str:
    return f"http://{srv.api[0]}:{srv.api[1]}"


def test_drain_and_undrain_every_node_within_a_second(serve):
    one, two = serve({"ov.yaml": ZONE}, config_yaml=CONFIG), serve({"ov.yaml": ZONE}, config_yaml=CONFIG)
    assert answers(one) == answers(two) == BOTH_A
    started = time.monotonic()
    done = gslb("drain", "web/a", "--reason", "CHG-42 switch swap", "--for", "30m", "--by", "dave",
                "--api", url(one), "--api", url(two), env={"GSLB_API_TOKEN": TOKEN})
    returned = time.monotonic()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(": ok: web/a down until " in line and ", 2 endpoints" in line for line in lines)
    assert lines[0].startswith(url(one)) and lines[1].startswith(url(two))
    # The API calls were made before the command returned: both nodes answer without the site already.
    waited = [wait_answers(srv, ONLY_B, 1.0) for srv in (one, two)]
    print(f"gslb drain took {returned - started:.2f} s (process start included); answers without the site "
          f"{max(waited) * 1000:.0f} ms after it returned")
    for srv in (one, two):
        entry = srv.server.health_service.overrides.api
        assert [(str(s), e.by, e.reason) for s, e in entry.items()] == [("web/a", "dave", "CHG-42 switch swap")]
        assert 1790 < next(iter(entry.values())).until - time.time() <= 1800
    done = gslb("undrain", "web/a", "--api", url(one), "--api", url(two), "--token", TOKEN)
    assert done.returncode == 0, done.stdout
    assert all(": ok: web/a cleared (was down: CHG-42 switch swap)" in line for line in done.stdout.splitlines())
    for srv in (one, two):
        wait_answers(srv, BOTH_A, 1.0)
    done = gslb("undrain", "web/a", "--api", url(one), "--token", TOKEN)   # nothing to clear is not a failure
    assert done.returncode == 0 and "no runtime override here" in done.stdout


def test_drain_reports_each_failing_node_and_exits_non_zero(serve):
    one = serve({"ov.yaml": ZONE}, config_yaml=CONFIG)
    gone = f"http://127.0.0.1:{free_port()}"
    done = gslb("drain", "web/b", "--reason", "r", "--api", url(one), "--api", gone, "--token", TOKEN)
    assert done.returncode == 1
    ok, failed = done.stdout.splitlines()
    assert ok.startswith(f"{url(one)}: ok: web/b down, 1 endpoint")
    assert failed.startswith(f"{gone}: error: cannot reach it:")
    assert answers(one) == BOTH_A                           # web/b is the failover site: a still answers
    done = gslb("drain", "web/c", "--reason", "r", "--api", url(one), "--token", TOKEN)
    assert done.returncode == 1
    assert done.stdout.strip() == f"{url(one)}: error: 404: web/c: no site 'c' in pool web (sites: a, b)"
    done = gslb("drain", "web/a", "--reason", "r", "--api", url(one), "--token", "not-the-token")
    assert done.returncode == 1 and f"{url(one)}: error: 401: missing or wrong bearer token" in done.stdout
    assert answers(one) == BOTH_A
    done = gslb("drain", "web/a/nope", "--reason", "r", "--api", url(one))
    assert done.returncode == 2 and "not an IP address" in done.stdout
    done = gslb("drain", "web/a", "--reason", "r", "--for", "3 weeks", "--api", url(one))
    assert done.returncode == 2 and "duration '3 weeks'" in done.stdout


def test_gslb_serve_reads_overrides_again_on_sighup(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "ov.yaml").write_text(ZONE)
    dns_port, api_port = free_port(), free_port()
    (tmp_path / "server.yaml").write_text(
        f"zones: zones\ndata: {REPO / 'data'}\nlisten: 127.0.0.1:{dns_port}\napi: 127.0.0.1:{api_port}\n"
        f"reload_interval: 3600\nhealth: {{state_dir: state, embedded: false}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "serve", "--config", str(tmp_path / "server.yaml")],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ask() -> list[str] | None:
        q = dns.message.make_query("www.ov.test", "A")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return None
        return sorted(rd.address for rrset in r.answer for rd in rrset)

    def wait(expected: list[str], limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if ask() == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"answer {ask()}, not {expected}, after {limit} s")

    try:
        wait(BOTH_A, 20)
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        (zones / "overrides.yaml").write_text("overrides:\n  - {selector: web/a, state: down, reason: hup}\n")
        proc.send_signal(signal.SIGHUP)                    # the watcher looks once an hour: only HUP reads it
        wait(ONLY_B, 3)
    finally:
        proc.terminate()
        proc.wait(20)
