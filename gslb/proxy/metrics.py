"""/metrics of `gslb proxy` (its admin port): a prometheus_client custom collector.

Where the counters live (kept as plain integers on the request path, read only here):
  core.Proxy.requests / latency / latency_sum   requests by route, pool, backend, status; time through the proxy
  state.BackendState.connect_errors / retries / ejections / upstream / upstream_sum / active
                                                incremented by http.py (Exchange._connect_failed, _switch,
                                                _finish) and state.py (eject)
  core.Proxy.connections                        open client connections
With `--workers N`, shared.stats_of() carries them all and admin.totals() sums the workers (a second old at
most), so every counter here is the whole proxy's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gslb import __version__
from gslb.proxy.core import BUCKETS, Proxy
from gslb.proxy.shared import merged
from gslb.proxy.state import UPSTREAM_BUCKETS


def _cumulative(edges: tuple[float, ...], counts: list[float]) -> list[tuple[str, float]]:
    out, running = [], 0.0
    for edge, count in zip((*edges, float("inf")), counts):
        running += count
        out.append(("+Inf" if edge == float("inf") else repr(edge), running))
    return out


class ProxyCollector(Collector):
    """Every metric of the live proxy (`get_proxy()`: it changes on reload)."""

    def __init__(self, get_proxy: Callable[[], Proxy]):
        self.get_proxy = get_proxy

    def collect(self) -> Iterator[Metric]:
        proxy = self.get_proxy()
        total = merged(proxy, proxy.share.others() if proxy.share is not None else [])
        info = GaugeMetricFamily("gslb_build_info", "Always 1: the gslb version running.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        requests = CounterMetricFamily("gslb_proxy_requests_total", "Requests answered, by route, pool, backend "
                                       "(- when the proxy answered itself) and status.",
                                       labels=["route", "pool", "backend", "status"])
        for (route, pool, backend, status), count in sorted(total["requests"].items()):
            requests.add_metric([route, pool, backend, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("gslb_proxy_request_seconds", "Request time through the proxy, per pool.",
                                        labels=["pool"])
        for pool, counts in sorted(total["latency"].items()):
            latency.add_metric([pool], _cumulative(BUCKETS, counts), total["latency_sum"].get(pool, 0.0))
        yield latency
        connections = GaugeMetricFamily("gslb_proxy_client_connections", "Open client connections (all workers).")
        connections.add_metric([], total["connections"])
        yield connections
        labels = ["pool", "backend"]
        up = GaugeMetricFamily("gslb_proxy_backend_up", "1 when the backend is healthy and not draining.", labels=labels)
        drain = GaugeMetricFamily("gslb_proxy_backend_draining", "1 while the backend is drained.", labels=labels)
        active = GaugeMetricFamily("gslb_proxy_backend_active", "Requests in flight to the backend.", labels=labels)
        errors = CounterMetricFamily("gslb_proxy_connect_errors_total", "Connections to the backend that failed "
                                     "(refused, reset, timed out).", labels=labels)
        retries = CounterMetricFamily("gslb_proxy_retries_total", "Requests moved to another backend after this "
                                      "one failed.", labels=labels)
        ejections = CounterMetricFamily("gslb_proxy_ejections_total", "Times the backend was ejected (outlier "
                                        "detection or a refused connection).", labels=labels)
        upstream = HistogramMetricFamily("gslb_proxy_upstream_seconds", "Time of a request at its backend "
                                         "(connect to response end).", labels=labels)
        for name, pool in sorted(proxy.pools.items()):
            for b in pool.backends:
                names = [name, b.address]
                counts = total["backends"].get(f"{name}|{b.address}")
                if counts is None:
                    continue
                up.add_metric(names, int(b.healthy and not b.drain))
                drain.add_metric(names, int(b.drain))
                active.add_metric(names, counts[0])
                ejections.add_metric(names, counts[2])
                errors.add_metric(names, counts[3])
                retries.add_metric(names, counts[4])
                upstream.add_metric(names, _cumulative(UPSTREAM_BUCKETS, counts[6:]), counts[5])
        yield from (up, drain, active, errors, retries, ejections, upstream)
