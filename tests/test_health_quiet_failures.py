"""Nothing fails silently: refused prober reports are logged and shown with their region, and the
embedded prober of a node with no `health.region` neither adds a vote nobody configured nor leaves a
single node without failover."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from conftest import REPO

from gslb.api.health import refused_source_lines
from gslb.config.health import HealthSettings
from gslb.config.model import Check, Target
from gslb.health import intake as intake_module
from gslb.health.intake import ReportIntake, ReportRefused
from gslb.health.monitor import HealthMonitor
from gslb.health.signing import Verifier, sign
from gslb.health.snapshot import RegionView

T = Target("192.0.2.1", Check(type="tcp", port=80))
DOWN, UP = RegionView("down", error="connection refused"), RegionView("up")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(**settings) -> tuple[HealthMonitor, Clock]:
    clock = Clock()
    m = HealthMonitor(HealthSettings(**settings), lambda snapshot: None, clock)
    m.set_targets([T])
    return m, clock


def test_an_unnamed_embedded_prober_does_not_count_beside_named_regions():
    """3 named regions run: "down in 2 of 3", not "of 4" with the node's own unnamed prober."""
    m, _ = monitor()                                  # embedded, no region: reports as "local"
    m.report("local", {T: DOWN}, 1.0)
    for region, view in (("eu-west-1", DOWN), ("us-east-1", DOWN), ("ap-southeast-1", UP)):
        m.report(region, {T: view}, 1.0)
    health = m.snapshot.of(T)
    assert health.state == "down"
    assert health.reason.startswith("down in 2 of 3 regions (eu-west-1, us-east-1)"), health.reason
    assert m.counted == {"eu-west-1", "us-east-1", "ap-southeast-1"}
    # Its vote would not tip anything either: 1 of 3 named down stays up, the stand-in's down aside.
    m.report("us-east-1", {T: UP}, 1.0)
    assert m.snapshot.of(T).state == "up"
    assert m.snapshot.of(T).reason == "down in 1 of 3 regions (eu-west-1), 2 needed"


def test_a_single_node_with_only_its_unnamed_prober_still_fails_over():
    m, _ = monitor()
    m.report("local", {T: UP}, 1.0)
    assert m.snapshot.of(T).state == "up"
    m.report("local", {T: DOWN}, 1.0)
    assert m.snapshot.of(T).state == "down"
    assert m.snapshot.of(T).reason.startswith("down in 1 of 1 regions (local)")
    assert m.counted == {"local"}


def test_the_unnamed_prober_takes_over_when_the_named_regions_fall_silent(caplog):
    m, clock = monitor()
    m.report("local", {T: DOWN}, 1.0)
    m.report("eu-west-1", {T: UP}, 1.0)
    assert m.snapshot.of(T).state == "up" and m.counted == {"eu-west-1"}
    clock.now += 3.5                                  # eu-west-1 silent for more than 3 intervals
    with caplog.at_level(logging.INFO, logger="gslb.health"):
        m.report("local", {T: DOWN}, 1.0)
    assert m.counted == {"local"}
    assert m.snapshot.of(T).state == "down"           # not grace, not fail-open: the stand-in decides
    assert "counted in the quorum, no named region is live" in caplog.text


def test_a_named_embedded_prober_counts_like_any_region():
    m, _ = monitor(region="eu-west-1")
    assert HealthSettings(region="eu-west-1").standby_region is None
    assert HealthSettings().embedded_region == "local" and HealthSettings().standby_region == "local"
    m.report("eu-west-1", {T: DOWN}, 1.0)
    m.report("us-east-1", {T: UP}, 1.0)
    m.report("ap-southeast-1", {T: DOWN}, 1.0)
    assert m.snapshot.of(T).reason.startswith("down in 2 of 3 regions"), m.snapshot.of(T).reason


def test_with_no_embedded_prober_a_region_called_local_is_an_ordinary_region():
    m, _ = monitor(embedded=False)
    m.report("local", {T: DOWN}, 1.0)
    m.report("eu-west-1", {T: DOWN}, 1.0)
    assert m.counted == {"local", "eu-west-1"}


def _refuse_bad_key(intake: ReportIntake, region: str | None, peer: str) -> ReportRefused:
    body = b'{"region": "x"}'
    header = sign("not-the-servers-key-0123", body, region=region)
    verifier: Verifier = intake.begin(header, peer)
    verifier.update(body)
    try:
        intake.check_mac(verifier, peer)
    except ReportRefused as exc:
        return exc
    raise AssertionError("a report signed with another key was accepted")


def test_a_refused_report_is_logged_and_kept_with_its_region(caplog, monkeypatch):
    monkeypatch.setattr(intake_module, "REFUSAL_LOG_INTERVAL", 0.0)
    intake = ReportIntake("the-servers-shared-secret", {})
    with caplog.at_level(logging.WARNING, logger="gslb.health"):
        refused = _refuse_bad_key(intake, "us-west-2", "127.0.0.9")
    assert refused.status == 401 and intake.refused["bad_signature"] == 1
    assert "region us-west-2 at 127.0.0.9" in caplog.text and "us-west-2 (1)" in caplog.text
    [source] = intake.refused_sources()
    assert source["region"] == "us-west-2" and source["refused"] == {"bad_signature": 1}
    assert not source["ever_accepted"] and not source["accepted_after"]
    [line] = refused_source_lines({"reports": {"refused_from": [source]}}, source["last"])
    assert line.startswith("  refused region us-west-2 from 127.0.0.9: REFUSED (never accepted); 1 bad_signature")


def test_a_report_naming_no_region_is_kept_by_its_address():
    intake = ReportIntake("the-servers-shared-secret", {})
    _refuse_bad_key(intake, None, "127.0.0.10")
    [source] = intake.refused_sources()
    assert source["region"] is None and source["source"] == "peer 127.0.0.10"
    assert "a prober naming no region from 127.0.0.10" in refused_source_lines(
        {"reports": {"refused_from": [source]}}, source["last"])[0]


def test_refused_sources_are_bounded():
    intake = ReportIntake("the-servers-shared-secret", {})
    for i in range(intake_module.MAX_REFUSED_SOURCES + 10):
        _refuse_bad_key(intake, f"r{i}", "127.0.0.11")
    sources = intake.refused_sources()
    assert len(sources) == intake_module.MAX_REFUSED_SOURCES
    assert sources[0]["region"] == f"r{intake_module.MAX_REFUSED_SOURCES + 9}"      # newest first, oldest gone
    assert "r0" not in {s["region"] for s in sources}


ZONE = """\
origin: quiet.test.
soa: {mname: ns1.other.test., rname: h.quiet.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {pool: web}
pools:
  web:
    policy: failover
    check: {type: tcp, port: 9, interval: 0.25}
    sites:
      a: {lat: 0, lon: 0, endpoints: [127.0.0.71]}
"""


def test_a_prober_with_the_wrong_key_is_named_by_the_log_and_gslb_status(serve, tmp_path, caplog):
    """A real `gslb probe` whose key is not the server's: the server logs the region, and `gslb status`
    lists it as heard from but refused (before: it was simply missing)."""
    srv = serve({"quiet.yaml": ZONE}, config_yaml="health:\n  embedded: false\n  secret: the-servers-key-0123456789\n")
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    zones = tmp_path / "probe-zones"
    zones.mkdir()
    (zones / "quiet.yaml").write_text(ZONE)
    (tmp_path / "regions.yaml").write_text("regions:\n  us-west-2: {lat: 45.8, lon: -119.7}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_")}
    probe = subprocess.Popen([sys.executable, "-m", "gslb", "probe", "--region", "us-west-2", "--zones", str(zones),
                              "--data", str(tmp_path), "--interval", "0.25", "--report-to", api],
                             cwd=REPO, env=dict(env, GSLB_SECRET="a-stolen-or-stale-key-0123"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with caplog.at_level(logging.WARNING, logger="gslb.health"):
            deadline = time.monotonic() + 20
            while not srv.server.health_service.intake.sources:
                assert probe.poll() is None and time.monotonic() < deadline, "no report arrived"
                time.sleep(0.05)
    finally:
        probe.terminate()
        probe.wait(10)
    assert "region us-west-2 at 127.0.0.1" in caplog.text, caplog.text
    out = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "refused region us-west-2 from 127.0.0.1: REFUSED (never accepted);" in out.stdout, out.stdout
    assert "bad_signature" in out.stdout and "prober us-west-2" not in out.stdout
