"""/metrics of `gslb serve`: a prometheus_client custom collector over the counters the server keeps.

Nothing here runs per query. The query path counts plain integers (gslb/dns/stats.py); with `--workers N`
each worker's counters arrive once a second (gslb/dns/workerstats.py) and are summed here. Health,
zones and overrides are read from the live objects when /metrics is asked. The library adds its process
metrics (process_*, python_*). docs/observability.md lists every metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gslb import __version__
from gslb.api.keys import SERVER
from gslb.dns.stats import LATENCY_BUCKETS
from gslb.health.metrics import counter_families, exposition, make_registry, view_families
from gslb.steering.decide import endpoint_usable

# The DNS counters of gslb/dns/stats.py rows: name -> (type, help, label names). Summed over workers.
DNS_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "gslb_dns_queries_total": (
        "counter", "DNS responses sent, by zone (- for none), query type, transport and rcode.",
        ("zone", "qtype", "transport", "rcode")),
    "gslb_dns_answers_total": (
        "counter", "Addresses put in answers, per endpoint: the traffic share.", ("zone", "pool", "site", "address")),
    "gslb_dns_client_location_total": (
        "counter", ("Queries of load-balanced names by where the client address came from (ECS or the source) "
        "and whether GeoIP located it."), ("source", "located")),
    "gslb_dns_fallback_total": (
        "counter", "Queries of a pool answered from its fallback pool.", ("zone", "pool", "fallback")),
    "gslb_dns_all_down_total": (
        "counter", "Queries of a pool with no usable endpoint anywhere (all_down action).", ("zone", "pool", "action")),
    "gslb_dns_responses_total": ("counter", "DNS responses sent, by transport and rcode.", ("proto", "rcode")),
    "gslb_dns_dropped_total": ("counter", "Messages not answered (too short, or responses).", ()),
    "gslb_dns_malformed_total": ("counter", "Queries answered FORMERR (could not be read).", ()),
    "gslb_dns_unsupported_total": ("counter", "Queries answered NOTIMP or BADVERS (opcode, EDNS version).", ()),
    "gslb_dns_internal_errors_total": ("counter", "Queries answered SERVFAIL because of a bug (see the log).", ()),
    "gslb_dns_rrl_limited_total": (
        "counter", "UDP responses held back by rate limiting: dropped, or sent as a TC=1 answer (slipped).",
        ("action",)),
    "gslb_dns_tcp_connections": ("gauge", "Open DNS TCP connections (all processes).", ()),
    "gslb_dns_tcp_refused_total": (
        "counter", "DNS TCP connections closed at once by a cap (total or per client).", ("cap",)),
    "gslb_dns_tcp_evicted_total": (
        "counter", "DNS TCP connections stalled longest, closed at the cap for a newcomer.", ()),
    "gslb_dns_tcp_timeouts_total": (
        "counter", "DNS TCP connections closed idle or with a message not whole in time.", ("timeout",)),
}


def _family(name: str, kind: str, help_text: str, labels: tuple[str, ...]) -> Metric:
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_text, labels=list(labels))


def dns_families(totals: dict[str, dict[tuple, float]]) -> Iterator[Metric]:
    """The DNS counters (summed over processes) as metric families."""
    for name, (kind, help_text, labels) in DNS_METRICS.items():
        family = _family(name, kind, help_text, labels)
        for key, value in sorted(totals.get(name, {}).items()):
            family.add_metric([str(v) for v in key], value)
        yield family
    buckets = totals.get("gslb_dns_query_seconds_bucket", {})
    running, cumulative = 0.0, []
    for i, edge in enumerate((*LATENCY_BUCKETS, float("inf"))):
        running += buckets.get((i,), 0)
        cumulative.append(("+Inf" if edge == float("inf") else repr(edge), running))
    histogram = HistogramMetricFamily("gslb_dns_query_seconds", "Time to handle a query (socket to response), "
                                      "of one query in 64 (sampled: _count is not the query count).")
    histogram.add_metric([], cumulative, totals.get("gslb_dns_query_seconds_sum", {}).get((), 0.0))
    yield histogram


def zone_families(server: Any) -> Iterator[Metric]:
    serial = GaugeMetricFamily("gslb_zone_serial", "SOA serial of each served zone.", labels=["zone"])
    for zone in sorted(server.served_zones.values(), key=lambda z: z.origin):
        serial.add_metric([zone.origin], zone.soa.serial)
    ok = GaugeMetricFamily("gslb_zone_file_ok", "1 when the file's last load succeeded (else the last good zone "
                           "serves).", labels=["file"])
    for status in sorted(server.store.status.values(), key=lambda s: s.file):
        ok.add_metric([status.file], int(status.ok))
    reloads = CounterMetricFamily("gslb_zone_reload_total", "Zone reloads by result: ok (every file good) or "
                                  "failed (a file refused; its last good zone keeps serving).", labels=["result"])
    for result, count in sorted(server.reloads.items()):
        reloads.add_metric([result], count)
    last = GaugeMetricFamily("gslb_zone_last_reload_success_timestamp_seconds",
                             "Unix time of the last reload with every zone file good.")
    last.add_metric([], server.last_reload_success)
    yield from (serial, ok, reloads, last)


def endpoint_families(server: Any) -> Iterator[Metric]:
    """Per endpoint: up (after quorum and overrides), may be answered, overrides in force."""
    snapshot = server.health_service.monitor.snapshot
    labels = ["zone", "pool", "site", "address"]
    up = GaugeMetricFamily("gslb_endpoint_up", "1 when the endpoint counts as up: health after quorum, then its "
                           "override or status (weight and fallback aside).", labels=labels)
    answered = GaugeMetricFamily("gslb_endpoint_answered", "1 when the endpoint may be answered (health, status, "
                                 "overrides, weight); whether it is: gslb_dns_answers_total.", labels=labels)
    override = GaugeMetricFamily("gslb_endpoint_override", "1 for the override deciding an endpoint's state "
                                 "(state up or down, source file or api).", labels=[*labels, "state", "source"])
    for zone in sorted(server.served_zones.values(), key=lambda z: z.origin):
        for pool in zone.pools.values():
            for site in pool.sites:
                for endpoint in site.endpoints:
                    names = [zone.origin, pool.name, site.name, endpoint.address]
                    usable, _ = endpoint_usable(endpoint, site, pool, snapshot, zone=zone.origin)
                    answered.add_metric(names, int(usable))
                    forced = snapshot.forced(zone.origin, pool.name, site.name, endpoint.address)
                    if forced is not None:
                        state = forced.state == "up"
                        override.add_metric([*names, forced.state, forced.source], 1)
                    elif endpoint.status != "auto":
                        state = endpoint.status == "up"
                    elif site.status != "auto":
                        state = site.status == "up"
                    elif pool.check is None:
                        state = True
                    else:
                        state = snapshot.of(pool.target_of(endpoint)).state != "down"
                    up.add_metric(names, int(state))
    yield from (up, answered, override)


def health_families(server: Any) -> Iterator[Metric]:
    """Prober regions, reports, fail-open, and each region's view of every checked address."""
    service = server.health_service
    monitor = service.monitor
    now = time.time()
    live = GaugeMetricFamily("gslb_prober_live", "1 while the prober region reports in time (and is not blind).",
                             labels=["region"])
    last = GaugeMetricFamily("gslb_prober_last_report_timestamp_seconds", "Unix time of the region's last "
                             "accepted report.", labels=["region"])
    errors = CounterMetricFamily("gslb_prober_errors_total", "Checks a prober could not make itself (not votes).",
                                 labels=["region"])
    for name, rep in sorted(monitor.regions.items()):
        live.add_metric([name], int(rep.live(now)))
        last.add_metric([name], rep.received)
        errors.add_metric([name], rep.status.errors_total)
    yield from (live, last, errors)
    intake = service.intake
    reports = CounterMetricFamily("gslb_prober_reports_total", "Prober reports by region (- when none could be "
                                  "trusted) and result: accepted or the refusal reason.", labels=["region", "result"])
    for (region, result), count in sorted(intake.by_region.items()):
        reports.add_metric([region, result], count)
    refused = CounterMetricFamily("gslb_health_reports_refused_total", "Prober reports refused, by reason.",
                                  labels=["reason"])
    for reason, count in intake.refused.items():
        refused.add_metric([reason], count)
    yield from (reports, refused)
    yield from view_families({name: rep.views for name, rep in monitor.regions.items()})
    prober = getattr(service, "prober", None)       # the embedded one (a DNS worker has none)
    yield from counter_families(prober.region if prober is not None else None, prober)
    fail_open = GaugeMetricFamily("gslb_health_fail_open", "1 while no prober reports and every endpoint counts "
                                  "as up.")
    fail_open.add_metric([], int(monitor.fail_open))
    fail_open_total = CounterMetricFamily("gslb_health_fail_open_total", "Times the server failed open.")
    fail_open_total.add_metric([], monitor.fail_open_total)
    version = CounterMetricFamily("gslb_health_version", "Health snapshot version (grows on every change).")
    version.add_metric([], monitor.published.version)
    yield from (fail_open, fail_open_total, version)


class ServeCollector(Collector):
    """Every gslb metric of a running `gslb.server.Server`."""

    def __init__(self, server: Any):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        info = GaugeMetricFamily("gslb_build_info", "Always 1: the gslb version running.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from dns_families(server.dns_totals())
        workers = GaugeMetricFamily("gslb_dns_processes", "Processes answering DNS (--workers), and of them "
                                    "those whose counters reached this one.", labels=["counted"])
        total = 1 + len(server.worker_pids)
        reporting = 1 + (len(server.worker_counters.counters.latest) if server.worker_counters else 0)
        workers.add_metric(["all"], total)
        workers.add_metric(["reporting"], reporting)
        yield workers
        cap = GaugeMetricFamily("gslb_dns_tcp_connections_max", "The effective cap on DNS TCP connections (per "
                                "process).")
        cap.add_metric([], server.tcp_guard.max_connections)
        yield cap
        yield from zone_families(server)
        yield from endpoint_families(server)
        yield from health_families(server)


REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics."""
    return exposition(request.app[REGISTRY])


def add_metrics_route(app: web.Application) -> None:
    """GET /metrics on the API app (app[SERVER] set before)."""
    app[REGISTRY] = make_registry(ServeCollector(app[SERVER]))
    app.router.add_get("/metrics", get_metrics)
