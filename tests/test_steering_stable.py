"""Stable latency steering: margins (no flapping between near-equal sites) and agreement between servers
that receive the same prober reports. Pure steering and the health aggregator: no sockets."""

from __future__ import annotations

import itertools
import random
import textwrap
from types import MappingProxyType

import pytest

from gslb.config.health import HealthSettings
from gslb.config.latency import LatencyTable
from gslb.config.model import Target
from gslb.config.regions import Region, Regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import parse_zone
from gslb.health.monitor import HealthMonitor
from gslb.health.rttstep import rtt_step
from gslb.health.snapshot import EndpointHealth, HealthSnapshot, RegionView
from gslb.steering.decide import SteeringData, plan
from gslb.steering.location import ClientLocation

REGIONS = Regions(MappingProxyType({
    "eu-central-1": Region("eu-central-1", 50.1, 8.7), "us-east-1": Region("us-east-1", 38.9, -77.4),
    "eu-west-3": Region("eu-west-3", 48.86, 2.35)}))
DATA = SteeringData(REGIONS, LatencyTable.empty())
PARIS = ClientLocation("EU", "FR", None, 48.86, 2.35, 16)
SITES = {"ams": "192.0.2.1", "lon": "192.0.2.2", "fra": "192.0.2.3"}


def make_zone(extra: str = ""):
    """A latency pool of three sites; `extra` is more pool keys, one per line."""
    keys = "".join(f"    {line}\n" for line in extra.splitlines())
    text = textwrap.dedent("""\
        origin: t.test.
        soa: {mname: ns.t.test., rname: h.t.test.}
        records:
          "@": {NS: ns.other.test.}
          www: {pool: main}
        pools:
          main:
            policy: latency
            check: {type: tcp, port: 9}
        """) + keys + textwrap.indent(textwrap.dedent("""\
        sites:
          ams: {lat: 52.4, lon: 4.9, endpoints: [192.0.2.1]}
          lon: {lat: 51.5, lon: -0.1, endpoints: [192.0.2.2]}
          fra: {lat: 50.1, lon: 8.7, endpoints: [192.0.2.3]}
        """), "    ")
    return parse_zone(load_yaml(text, "t.yaml"), "t.yaml", REGIONS)


def measured(zone, rtts: dict[str, float], region: str = "eu-central-1") -> HealthSnapshot:
    check = zone.pools["main"].check
    return HealthSnapshot({Target(SITES[s], check): EndpointHealth(
        "up", regions=MappingProxyType({region: RegionView("up", rtt_ms=ms)})) for s, ms in rtts.items()})


def site_for(zone, rtts: dict[str, float], data: SteeringData = DATA) -> str:
    return plan(zone, "main", 4, PARIS, measured(zone, rtts), data).site


def test_equal_sites_answer_the_first_in_file_order_whatever_the_wobble():
    zone = make_zone()
    rng = random.Random(3)
    for _ in range(200):
        rtts = {s: 30 + rng.uniform(-4, 4) for s in SITES}      # three sites, equal RTT, +-4 ms noise
        assert site_for(zone, rtts) == "ams"


def test_a_site_wins_only_when_faster_by_both_margins():
    zone = make_zone()
    # RTTs count in steps (41.58 for 42, 32.58 for 33, ...: test_rtts_count_in_steps...)
    assert site_for(zone, {"ams": 42, "lon": 33, "fra": 45}) == "ams"     # 9.0 ms: within 10 ms
    assert site_for(zone, {"ams": 42, "lon": 29, "fra": 45}) == "lon"     # 13.4 ms and 32 %: both
    assert site_for(zone, {"ams": 300, "lon": 280, "fra": 320}) == "ams"  # 13.9 ms but 4.8 %: within 10 %
    assert site_for(zone, {"ams": 300, "lon": 260, "fra": 320}) == "lon"  # 39.9 ms and 13.6 %


def test_margins_are_pool_keys_and_zero_turns_them_off():
    zone = make_zone("latency_margin_ms: 0\nlatency_margin_pct: 0")
    assert zone.pools["main"].latency_margin_ms == 0.0
    assert site_for(zone, {"ams": 40, "lon": 38, "fra": 45}) == "lon"
    zone = make_zone("latency_margin_ms: 50\nlatency_margin_pct: 5")
    assert site_for(zone, {"ams": 100, "lon": 60, "fra": 120}) == "ams"   # 40 ms < 50 ms


def test_the_rest_of_the_ranking_uses_the_margins_too():
    """When the preferred site is down, the next place is decided the same way among the others."""
    zone = make_zone()
    check = zone.pools["main"].check
    health = measured(zone, {"ams": 30, "lon": 33, "fra": 31})         # steps 29.55, 32.58, 29.55
    targets = dict(health.targets)
    targets[Target("192.0.2.1", check)] = EndpointHealth("down", regions=targets[Target("192.0.2.1", check)].regions)
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(targets), DATA)
    assert p.site == "lon"           # lon and fra are within the margin: file order, not the 2 ms
    assert any("within the margin of site fra (29.55 ms)" in line for line in p.trace), p.trace


def test_trace_shows_the_margin_and_rtts_with_decimals():
    zone = make_zone()
    p = plan(zone, "main", 4, PARIS, measured(zone, {"ams": 33.37, "lon": 27.91, "fra": 45.5}), DATA)
    text = "\n".join(p.trace)
    assert "margin 10 ms and 10 %" in text
    assert "27.91 ms measured from eu-central-1" in text and "latency 26.80 ms" in text   # its 5 % step
    assert "latency 32.58 ms" in text and "within the margin of site lon (26.80 ms)" in text


def test_rtts_count_in_steps_that_depend_on_the_value_only():
    assert [rtt_step(v) for v in (0.4, 12.7, 19.99)] == [0.0, 12.0, 19.0]
    assert rtt_step(100.0) == rtt_step(96.0) == 95.3 and rtt_step(100.1) == 100.06


def test_the_embedded_prober_region_is_not_used_for_latency():
    """A server's own prober measures from that server: other servers never see those RTTs."""
    zone = make_zone()
    rtts = {"ams": 60, "lon": 20, "fra": 60}
    assert site_for(zone, rtts) == "lon"
    local = SteeringData(REGIONS, LatencyTable.empty(), local_region="eu-central-1")
    p = plan(zone, "main", 4, PARIS, measured(zone, rtts), local)
    # by distance: London, Amsterdam and Frankfurt are all within 10 ms of Paris, so file order
    assert p.site == "ams" and "probe" not in "\n".join(p.trace) and "distance" in "\n".join(p.trace)


def _monitor() -> tuple[HealthMonitor, list[HealthSnapshot]]:
    published: list[HealthSnapshot] = []
    monitor = HealthMonitor(HealthSettings(region="node"), published.append, clock=lambda: 1000.0)
    return monitor, published


def test_two_servers_fed_the_same_reports_answer_alike():
    """Server B starts late (it never saw the early reports) and each has its own embedded prober with
    different RTTs; both get the shared eu-central-1 reports. Every decision must be the same."""
    zone = make_zone()
    check = zone.pools["main"].check
    targets = [Target(a, check) for a in SITES.values()]
    a, _ = _monitor()
    b, _ = _monitor()
    a.set_targets(targets)
    b.set_targets(targets)
    data_a = SteeringData(REGIONS, LatencyTable.empty(), local_region="eu-west-3")   # in Paris itself
    data_b = SteeringData(REGIONS, LatencyTable.empty(), local_region="us-east-1")
    rng = random.Random(11)
    base = {"192.0.2.1": 40.5, "192.0.2.2": 60.0, "192.0.2.3": 30.0}    # ams vs fra: at the margin
    disagreements, seen = 0, set()
    for step in range(400):
        shared = {t: RegionView("up", rtt_ms=base[t.address] + rng.gauss(0, 3)) for t in targets}
        a.report("eu-central-1", shared, 1.0)
        a.report("eu-west-3", {t: RegionView("up", rtt_ms=rng.uniform(1, 90)) for t in targets}, 1.0)
        if step >= 150:
            b.report("eu-central-1", shared, 1.0)
            b.report("us-east-1", {t: RegionView("up", rtt_ms=rng.uniform(1, 90)) for t in targets}, 1.0)
            pa = plan(zone, "main", 4, PARIS, a.published, data_a)
            pb = plan(zone, "main", 4, PARIS, b.published, data_b)
            disagreements += pa.site != pb.site
            seen.add(pa.site)
    assert disagreements == 0 and seen == {"ams", "fra"}   # the reports cross the margin both ways


@pytest.mark.parametrize("margins, most", [("", 0), ("latency_margin_ms: 0\nlatency_margin_pct: 0", None)])
def test_a_client_between_two_equal_sites_does_not_flap(margins, most):
    """Reports every second through the aggregator, each an EWMA (alpha 0.3, as the prober's) of samples
    with 3 ms of noise: with the default margins the answer never changes; with the margins off it does."""
    zone = make_zone(margins)
    check = zone.pools["main"].check
    targets = [Target(a, check) for a in SITES.values()]
    monitor, _ = _monitor()
    monitor.set_targets(targets)
    rng = random.Random(5)
    ewma = {t: 35.0 for t in targets}
    answers = []
    for _ in range(300):
        for t in targets:
            sample = 35.0 + rng.gauss(0, 3)
            ewma[t] = 0.7 * ewma[t] + 0.3 * sample
        monitor.report("eu-central-1", {t: RegionView("up", rtt_ms=ewma[t]) for t in targets}, 1.0)
        answers.append(plan(zone, "main", 4, PARIS, monitor.published, DATA).site)
    changes = sum(x != y for x, y in itertools.pairwise(answers))
    if most is None:
        assert changes > 10
    else:
        assert changes == most and answers[0] == "ams"
