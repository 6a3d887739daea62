"""The amplification factor of the zones' worst UDP answer: its size over the smallest query that gets it.

A reflection attack sends small queries "from" a victim; what it gains is the size of the answer over
the size of the query. `gslb check` prints the worst one so that an operator sees what response rate
limiting (docs/security.md) has to bound: with RRL, a prefix gets at most `responses_per_second` full
answers, so the reflected traffic is at most rate x largest answer per prefix.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from dnslib import QTYPE

from gslb.config.model import Zone
from gslb.config.regions import Regions
from gslb.dns.fast import answer_fast
from gslb.dns.slow import answer_slow
from gslb.dns.table import AnswerTable
from gslb.dns.wire import EDNS_PAYLOAD, text_to_name
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

NAME_LIMIT = 50_000          # names looked at: enough for any hand-written zone, bounded for generated ones


@dataclass(frozen=True, slots=True)
class Amplification:
    """The worst (largest factor) UDP answer found."""

    name: str
    qtype: str
    edns: bool               # asked with EDNS (payload 1232) or without
    query_size: int
    answer_size: int
    names_checked: int

    @property
    def factor(self) -> float:
        return self.answer_size / self.query_size


def _query(qname: bytes, qtype: int, edns: bool) -> bytes:
    opt = struct.pack("!BHHBBHH", 0, 41, EDNS_PAYLOAD, 0, 0, 0, 0) if edns else b""
    return struct.pack("!6H", 0, 0, 1, 0, 0, 1 if edns else 0) + qname + struct.pack("!HH", qtype, 1) + opt


def worst_answer(zones: Mapping[str, Zone], regions: Regions | None = None) -> Amplification | None:
    """Ask every name of the zones (up to NAME_LIMIT) for each type it has, and ANY, with and without
    EDNS, through the server's own answering code; the answer with the largest size/query ratio."""
    table = AnswerTable(zones, HealthSnapshot(), SteeringData(regions) if regions else SteeringData(),
                        Locator(None))
    best: Amplification | None = None
    checked = 0
    for zone in sorted(zones.values(), key=lambda z: z.origin):
        for owner in sorted(zone.names):
            if checked >= NAME_LIMIT:
                break
            checked += 1
            types = set(zone.rrsets.get(owner, {})) | ({"A", "AAAA"} if owner in zone.pool_names else set())
            if owner == zone.origin:
                types |= {"SOA", "NS"}
            qname = text_to_name(owner)
            for rtype in sorted(types | {"ANY"}):
                for edns in (True, False):
                    query = _query(qname, getattr(QTYPE, rtype), edns)
                    out = answer_fast(table, query, "192.0.2.1", False) or answer_slow(table, query, "192.0.2.1",
                                                                                        False)
                    if out is None:
                        continue
                    if best is None or len(out) / len(query) > best.factor:
                        best = Amplification(owner, rtype, edns, len(query), len(out), 0)
    if best is None:
        return None
    return Amplification(best.name, best.qtype, best.edns, best.query_size, best.answer_size, checked)
