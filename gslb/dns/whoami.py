"""`whoami.ZONE TXT`: what gslb sees of the asker, for a zone with `whoami: true` (docs/zone-format.md).

One TXT record per fact, TTL 0 (never cached): the resolver's address, the ECS subnet it sent, the
network steering decides for, the location GeoIP gives it and the prober region nearest to it (both as
steering sees them: the same functions answer the zone's pools), and the node that answered. Rare,
so answered on the slow path; the fast path hands these names over.
"""

from __future__ import annotations

from gslb.config.model import Zone
from gslb.dns.authority import Result, soa_rr
from gslb.dns.identity import TYPE_ANY, TYPE_TXT, txt_rr
from gslb.dns.table import AnswerTable, pack_result
from gslb.dns.wire import Query
from gslb.steering.client import client_for
from gslb.steering.latency import nearest_prober_region

LABEL = "whoami"


def facts(table: AnswerTable, zone: Zone, q: Query, client_ip: str) -> list[str]:
    """The lines of the answer, as `key=value` texts."""
    ecs = (q.ecs.address, q.ecs.source) if q.ecs is not None else None
    client = client_for(client_ip, ecs, zone.ecs)
    location = table.locator.locate(client.address)
    out = [f"resolver={client_ip}"]
    if ecs is None:
        out.append("ecs=none")
    else:
        out.append(f"ecs={ecs[0]}/{ecs[1]}" + ("" if client.ecs else
                   " (not used: " + ("the zone has ecs: false)" if not zone.ecs else "source prefix 0)")))
    out.append(f"client={client.network} ({'ecs' if client.ecs else 'source address'})")
    if location.known:
        out += [f"{key}={value}" for key, value in (("continent", location.continent), ("country", location.country),
                                                     ("subdivision", location.subdivision)) if value]
        if location.lat is not None and location.lon is not None:
            out.append(f"coordinates={location.lat:.4f},{location.lon:.4f}")
        out.append(f"geoip_prefix=/{location.prefix_len}")
    else:
        out.append("location=unknown")
    out.append(f"prober_region={nearest_prober_region(location, table.health, table.data.regions) or 'none'}")
    out.append(f"node={table.identity.node_id}")
    return out


def whoami(table: AnswerTable, zone: Zone, q: Query, client_ip: str) -> tuple[int, int, int, bytes, int]:
    """(flags, answer count, authority count, body, ECS scope) for a query of `whoami.<zone>`: the
    facts for TXT or ANY, else NODATA with the zone's SOA (the name exists)."""
    if q.qtype not in (TYPE_TXT, TYPE_ANY):
        packed = pack_result(q.qname, q.qtype, Result(authority=[soa_rr(zone, negative=True)]))
        return packed.flags, packed.an, packed.ns, packed.body, 0
    lines = facts(table, zone, q, client_ip)
    body = b"".join(txt_rr(b"\xc0\x0c", line) for line in lines)
    # The answer names the ECS subnet it was given: valid for that whole subnet (RFC 7871 7.2.1).
    return 0x8400, len(lines), 0, body, q.ecs.source if q.ecs is not None else 0
