"""What the query path counts, as plain integers: a query pays a dict-of-int increment or two, never a
Prometheus object. `gslb/api/metrics.py` turns these counters into metrics when /metrics is read.

Label sets are interned once (when an answer table entry or a cached plan is built) into small integers,
so the hot path indexes dicts by int:

    queries   key = (label id << 5) | (rcode << 1) | tcp, label id of (zone, qtype)
    answers   key = label id of (zone, pool, site, address), once per address put in an answer
    location  index = (ecs << 1) | located
    steering  key = label id of ("fallback", zone, pool, fallback pool) or ("all_down", zone, pool, action)

`counters()` decodes them into rows of label values (the form `--workers N` processes send to the
first one, gslb/dns/workerstats.py), and `add_rows` sums such rows.

Setting the environment variable GSLB_DNS_STATS=off turns the per-query counting off. It exists only to
measure what the counting costs (bench/dns.py); the metrics then read zero.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict

from dnslib import QTYPE, RCODE

# Query types counted by name; any other type is counted as "other" (a client choosing the type must not
# be able to add a time series per type).
COUNTED_TYPES = frozenset(getattr(QTYPE, t) for t in (
    "A", "AAAA", "CNAME", "MX", "NS", "SOA", "TXT", "SRV", "CAA", "PTR", "NAPTR", "DS", "DNSKEY", "HTTPS",
    "SVCB", "TLSA", "ANY", "AXFR", "IXFR", "HINFO"))
NO_ZONE = "-"                 # the query is for no zone this server has (REFUSED), or could not be read
# Edges of gslb_dns_query_seconds: a fast-path answer takes a few microseconds, the slow path tens.
LATENCY_BUCKETS = (0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1)
SAMPLE_EVERY = 64             # one query in this many is timed: two clock reads per 64 queries


def qtype_label(qtype: int) -> str:
    return QTYPE.get(qtype) if qtype in COUNTED_TYPES else "other"


def stats_enabled() -> bool:
    """False when GSLB_DNS_STATS=off (for measuring the counting's cost only)."""
    return os.environ.get("GSLB_DNS_STATS", "on").lower() not in ("off", "0", "no", "false")


class DnsStats:
    """One process's query counters (one per `gslb serve` process, kept across zone reloads)."""

    def __init__(self) -> None:
        self.queries: defaultdict[int, int] = defaultdict(int)
        self.answers: defaultdict[int, int] = defaultdict(int)
        self.location = [0, 0, 0, 0]
        self.steering: defaultdict[int, int] = defaultdict(int)
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)     # sampled query times, per bucket (+Inf last)
        self.latency_sum = 0.0
        self.sample_every = SAMPLE_EVERY
        self._ids: dict[tuple, int] = {}
        self._labels: list[tuple] = []
        self._lock = threading.Lock()
        self.label_id(("none",))        # id 0 stands for "nothing to count" (Ready.steering)

    def label_id(self, labels: tuple) -> int:
        """The small integer standing for a label set (interned; the set of label sets stays as small as
        the zones: zones, pools, sites, addresses, 20 query types)."""
        found = self._ids.get(labels)
        if found is None:
            with self._lock:            # tables are built in a thread while the loop may intern too
                found = self._ids.get(labels)
                if found is None:
                    found = len(self._labels)
                    self._labels.append(labels)       # the list first: a reader of an id never misses it
                    self._ids[labels] = found
        return found

    def query_key(self, zone: str | None, qtype: int) -> int:
        """The part of a `queries` key naming (zone, qtype); the response adds rcode and transport."""
        return self.label_id(("q", zone or NO_ZONE, qtype_label(qtype))) << 5

    def count_response(self, zone: str | None, qtype: int | None, out: bytes | None, tcp: bool) -> None:
        """Count a response made off the fast path (errors, CHAOS, ANY, whoami): same counter, labelled here."""
        if out is None or len(out) < 4:
            return
        key = self.label_id(("q", zone or NO_ZONE, "-" if qtype is None else qtype_label(qtype))) << 5
        self.queries[key | (out[3] & 0xF) << 1 | tcp] += 1

    def observe(self, seconds: float) -> None:
        """One sampled query's handling time."""
        for i, edge in enumerate(LATENCY_BUCKETS):
            if seconds <= edge:
                self.latency[i] += 1
                break
        else:
            self.latency[-1] += 1
        self.latency_sum += seconds

    def counters(self) -> dict[str, list[list]]:
        """Every counter as rows of label values with the count last, keyed by metric name."""
        labels = self._labels
        queries: dict[tuple, int] = defaultdict(int)
        for key, n in list(self.queries.items()):
            _, zone, qtype = labels[key >> 5]
            rcode = RCODE.get((key >> 1) & 0xF)
            queries[(zone, qtype, "tcp" if key & 1 else "udp", str(rcode))] += n
        fallback, all_down = [], []
        for key, n in list(self.steering.items()):
            kind, *rest = labels[key]
            (fallback if kind == "fallback" else all_down).append([*rest, n])
        return {
            "gslb_dns_queries_total": [[*k, n] for k, n in queries.items()],
            "gslb_dns_answers_total": [[*labels[key][1:], n] for key, n in list(self.answers.items())],
            "gslb_dns_client_location_total": [
                ["ecs" if i & 2 else "address", "yes" if i & 1 else "no", n] for i, n in enumerate(self.location)],
            "gslb_dns_fallback_total": fallback,
            "gslb_dns_all_down_total": all_down,
            "gslb_dns_query_seconds_bucket": [[i, n] for i, n in enumerate(self.latency)],
            "gslb_dns_query_seconds_sum": [[self.latency_sum]],
        }


def handler_counters(handler, guard) -> dict[str, list[list]]:
    """The DNS handler's and TCP guard's counters (gslb/dns/server.py, tcpguard.py) as rows, like
    `DnsStats.counters`."""
    rrl = handler.rate_limit
    return {
        "gslb_dns_responses_total": [[proto, str(RCODE.get(rcode)), n] for proto, counts in
                                     zip(("udp", "tcp"), handler.responses) for rcode, n in enumerate(counts) if n],
        "gslb_dns_dropped_total": [[handler.dropped]],
        "gslb_dns_malformed_total": [[handler.malformed]],
        "gslb_dns_unsupported_total": [[handler.unsupported]],
        "gslb_dns_internal_errors_total": [[handler.failures]],
        "gslb_dns_rrl_limited_total": [["dropped", rrl.dropped if rrl else 0], ["slipped", rrl.slipped if rrl else 0]],
        "gslb_dns_tcp_connections": [[guard.open]],
        "gslb_dns_tcp_refused_total": [["total", guard.refused_total_cap], ["client", guard.refused_client_cap]],
        "gslb_dns_tcp_evicted_total": [[guard.evicted]],
        "gslb_dns_tcp_timeouts_total": [["idle", guard.closed_idle], ["message", guard.closed_message_timeout]],
    }


def add_rows(total: dict[str, dict[tuple, float]], rows: dict[str, list[list]]) -> None:
    """Add counter rows (`counters()`, `handler_counters()` or a worker's copy of them) into `total`."""
    for name, items in rows.items():
        into = total.setdefault(name, {})
        for row in items:
            key = tuple(row[:-1])
            into[key] = into.get(key, 0) + row[-1]


class WorkerCounters:
    """The latest counters each `--workers N` process sent (the first process keeps these)."""

    def __init__(self) -> None:
        self.latest: dict[int, dict[str, list[list]]] = {}
        self.received: dict[int, float] = {}

    def update(self, worker: int, rows: dict[str, list[list]]) -> None:
        self.latest[worker] = rows
        self.received[worker] = time.monotonic()
