"""Flapping of latency answers: answer changes per minute for a client between sites of equal RTT.

Prober reports arrive every second through the real aggregator (gslb.health.monitor), each an EWMA
(alpha 0.3, as the prober keeps) of check RTTs with noise like real probes: 35 ms +- 3 ms (Gaussian) and,
one check in ten, a queueing spike (exponential, mean 8 ms). Two servers get the same reports; the
second starts 2 minutes late. Steering is the real `plan()`.

"before": the old behaviour (lowest estimate wins, RTT published on a 10 % move from the value kept).
"after": the default margins (10 ms and 10 %) and RTT steps.

    .venv/bin/python bench/flap.py [--minutes 30] [--sites 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import random
import textwrap
from types import MappingProxyType

import gslb.health.monitor as monitor_mod
import gslb.steering.latency as latency_mod
from gslb.config.health import HealthSettings
from gslb.config.latency import LatencyTable
from gslb.config.model import Target
from gslb.config.regions import Region, Regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import parse_zone
from gslb.health.monitor import HealthMonitor
from gslb.health.rttstep import rtt_step
from gslb.health.snapshot import RegionView
from gslb.steering.decide import SteeringData, plan
from gslb.steering.location import ClientLocation

REGIONS = Regions(MappingProxyType({"eu-central-1": Region("eu-central-1", 50.1, 8.7)}))
CLIENT = ClientLocation("EU", "FR", None, 48.86, 2.35, 16)


def _old_rtt_differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > max(1.0, 0.1 * a)


def zone(sites: int, before: bool):
    margins = "    latency_margin_ms: 0\n    latency_margin_pct: 0\n" if before else ""
    rows = "".join(f"      s{i}: {{lat: 50, lon: 5, endpoints: [192.0.2.{i + 1}]}}\n" for i in range(sites))
    text = textwrap.dedent("""\
        origin: t.test.
        soa: {mname: ns.t.test., rname: h.t.test.}
        records: {"@": {NS: ns.other.test.}, www: {pool: main}}
        pools:
          main:
            policy: latency
            check: {type: tcp, port: 9}
        """) + margins + "    sites:\n" + rows
    return parse_zone(load_yaml(text, "t.yaml"), "t.yaml", REGIONS)


def run(minutes: int, sites: int, seed: int, before: bool) -> tuple[float, int, int]:
    """(answer changes per minute on server A, samples where A and B disagree, samples compared)."""
    monitor_mod._rtt_differs = _old_rtt_differs if before else _orig_differs
    latency_mod.rtt_step = (lambda ms: ms) if before else rtt_step
    z = zone(sites, before)
    check = z.pools["main"].check
    targets = [Target(f"192.0.2.{i + 1}", check) for i in range(sites)]
    now = [0.0]
    servers = [HealthMonitor(HealthSettings(region="node"), lambda s: None, clock=lambda: now[0]) for _ in range(2)]
    for m in servers:
        m.set_targets(targets)
    rng = random.Random(seed)
    ewma = {t: 35.0 for t in targets}
    data = SteeringData(REGIONS, LatencyTable.empty())
    answers, disagree, compared = [], 0, 0
    for second in range(minutes * 60):
        now[0] = float(second)
        for t in targets:
            sample = 35.0 + rng.gauss(0, 3) + (rng.expovariate(1 / 8) if rng.random() < 0.1 else 0.0)
            ewma[t] = 0.7 * ewma[t] + 0.3 * sample
        report = {t: RegionView("up", rtt_ms=ewma[t]) for t in targets}
        servers[0].report("eu-central-1", report, 1.0)
        a = plan(z, "main", 4, CLIENT, servers[0].published, data).site
        answers.append(a)
        if second >= 120:
            servers[1].report("eu-central-1", report, 1.0)
            compared += 1
            disagree += a != plan(z, "main", 4, CLIENT, servers[1].published, data).site
    changes = sum(x != y for x, y in itertools.pairwise(answers))
    return changes / minutes, disagree, compared


_orig_differs = monitor_mod._rtt_differs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--sites", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for label, before in (("before", True), ("after", False)):
        per_min, disagree, compared = run(args.minutes, args.sites, args.seed, before)
        print(f"{label:6}: {per_min:6.2f} answer changes per minute ({args.sites} sites of equal RTT, "
              f"{args.minutes} min); two servers disagreed in {disagree} of {compared} seconds")


if __name__ == "__main__":
    main()
