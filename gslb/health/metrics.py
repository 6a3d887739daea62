"""Prometheus metrics of a prober (`gslb probe`'s own /metrics, and the embedded prober of `gslb serve`),
and the registry and exposition every /metrics of gslb uses (serve, probe, proxy admin).

A custom collector: the prober keeps plain counters (gslb/health/prober.py: `failures`, `checks`) and
its views; they become metric families only when /metrics is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gslb.config.model import Target
from gslb.health.prober import Prober
from gslb.health.snapshot import RegionView


def view_families(views: Mapping[str, Mapping[Target, RegionView]]) -> Iterator[Metric]:
    """gslb_check_seconds and gslb_check_up from each region's views (region -> target -> view)."""
    seconds = GaugeMetricFamily("gslb_check_seconds", "Round-trip time of the checks of an address (EWMA), as "
                                "the region's prober sees it.", labels=["region", "address"])
    up = GaugeMetricFamily("gslb_check_up", "1 while the region's prober sees the address up (after rise/fall).",
                           labels=["region", "address"])
    for region, region_views in sorted(views.items()):
        seen: set[str] = set()
        for target, view in sorted(region_views.items(), key=lambda kv: str(kv[0])):
            if target.address in seen:           # an address with two checks: the first one speaks for it
                continue
            seen.add(target.address)
            up.add_metric([region, target.address], 1.0 if view.state == "up" else 0.0)
            if view.rtt_ms is not None:
                seconds.add_metric([region, target.address], view.rtt_ms / 1000)
    yield from (seconds, up)


def counter_families(region: str | None, prober: Prober | None) -> Iterator[Metric]:
    """gslb_check_failures_total and gslb_checks_total of the prober running in this process (none: empty)."""
    failures = CounterMetricFamily("gslb_check_failures_total", "Failed checks by address and reason: timeout, "
                                   "connect, response (status, body, expect), down (health file), prober_error "
                                   "(the prober's own fault, not a vote).", labels=["region", "address", "reason"])
    checks = CounterMetricFamily("gslb_checks_total", "Checks made by the region's prober in this process.",
                                 labels=["region"])
    if prober is not None and region is not None:
        for (address, reason), count in sorted(prober.failures.items()):
            failures.add_metric([region, address, reason], count)
        checks.add_metric([region], prober.checks)
    yield from (failures, checks)


class ProbeCollector(Collector):
    """/metrics of `gslb probe`: its checks, plus what `extra()` yields (the reports it pushed)."""

    def __init__(self, prober: Prober, extra: Callable[[], Iterable[Metric]] = lambda: ()):
        self.prober = prober
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        region = self.prober.region
        yield from view_families({region: self.prober.views()})
        yield from counter_families(region, self.prober)
        errors = CounterMetricFamily("gslb_prober_errors_total", "Checks the prober could not make itself "
                                     "(not votes).", labels=["region"])
        errors.add_metric([region], self.prober.errors_total)
        yield errors
        yield from self.extra()


def make_registry(collector: Collector) -> CollectorRegistry:
    """A registry of its own (not the library's global one): `collector` plus the process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> web.Response:
    """The registry in the Prometheus text format 0.0.4 (what every Prometheus 2.x and promtool read)."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
