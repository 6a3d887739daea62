"""What an authoritative server answers for (name, type), per RFC 1034 4.3.2, RFC 2308 and RFC 4592.

`lookup` is independent of the client: for a load-balanced name it returns a `PoolRef` standing for the
A/AAAA records that steering picks per query. The answer table packs these results once; the slow path
uses them too, so both paths answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dnslib
from dnslib import QTYPE, RR

from gslb.config.model import Zone
from gslb.config.names import is_within, parent
from gslb.dns.wire import RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL

MAX_CNAME_CHAIN = 8
FAMILY_OF = {QTYPE.A: 4, QTYPE.AAAA: 6}


@dataclass(frozen=True, slots=True)
class PoolRef:
    """Stands for the A/AAAA answers of a load-balanced name, decided per query by steering."""

    zone: Zone               # the zone that defines the pool (may differ from the zone asked)
    pool: str
    family: int
    owner: str               # the name the records are for (the question, or the end of a CNAME chain)


@dataclass(slots=True)
class Result:
    rcode: int = 0
    aa: bool = True
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    pool: PoolRef | None = None
    zone: Zone | None = None


def pool_zone(zones: Mapping[str, Zone], zone: Zone, pool: str) -> Zone | None:
    """The zone that defines a pool a name of `zone` uses: its own, or another zone that has it (None
    when the zone that had it was removed since: the store logs that)."""
    if pool in zone.pools:
        return zone
    return next((z for z in sorted(zones.values(), key=lambda z: z.origin) if pool in z.pools), None)


def find_zone(zones: Mapping[str, Zone], qname: str) -> Zone | None:
    """The served zone holding qname: the longest matching origin."""
    name = qname
    while True:
        zone = zones.get(name)
        if zone is not None:
            return zone
        if name == ".":
            return None
        name = parent(name)


def _rrs(zone: Zone, owner: str, rtype: str) -> list[RR]:
    rrset = zone.rrsets[owner][rtype] if rtype in zone.rrsets.get(owner, {}) else None
    if rrset is None:
        return []
    return [RR(owner, getattr(QTYPE, rtype), rdata=rd, ttl=rrset.ttl) for rd in rrset.rdatas]


def soa_rr(zone: Zone, negative: bool = False) -> RR:
    """The zone's SOA; as a negative answer its TTL is min(SOA TTL, minimum) (RFC 2308 3)."""
    s = zone.soa
    rd = dnslib.SOA(s.mname, s.rname, (s.serial, s.refresh, s.retry, s.expire, s.minimum))
    return RR(zone.origin, QTYPE.SOA, rdata=rd, ttl=min(s.ttl, s.minimum) if negative else s.ttl)


def _types_at(zone: Zone, name: str) -> set[str]:
    types = set(zone.rrsets.get(name, {}))
    if name in zone.pool_names:
        types |= {"A", "AAAA"}
    if name == zone.origin:
        types.add("SOA")
    return types


def _exists(zone: Zone, name: str) -> bool:
    """True when the name owns records or is an empty non-terminal (has names below it)."""
    return name in zone.nodes


def _zone_cut(zone: Zone, name: str) -> str | None:
    """The delegation point (a non-apex name with NS records) at or above name, if any."""
    node = name
    while node != zone.origin and is_within(node, zone.origin):
        if "NS" in zone.rrsets.get(node, {}):
            return node
        node = parent(node)
    return None


def _wildcard(zone: Zone, name: str) -> str | None:
    """The wildcard owner that synthesizes `name` (RFC 4592: `*.` + the closest encloser), if any."""
    node = name
    while node != zone.origin:
        node = parent(node)
        if _exists(zone, node):
            candidate = "*." + node
            return candidate if candidate in zone.rrsets or candidate in zone.pool_names else None
    return None


def _additional(zone: Zone, rrs: list[RR], result: Result) -> None:
    """Glue/addresses for in-zone names that NS, MX and SRV records point to."""
    seen = {(str(r.rname).lower(), r.rtype) for r in result.additional}
    for rr in rrs:
        target = None
        if rr.rtype in (QTYPE.NS, QTYPE.MX):
            target = str(rr.rdata.label).lower()
        elif rr.rtype == QTYPE.SRV:
            target = str(rr.rdata.target).lower()
        if target is None or not is_within(target, zone.origin):
            continue
        for rtype in ("A", "AAAA"):
            if (target, getattr(QTYPE, rtype)) not in seen:
                seen.add((target, getattr(QTYPE, rtype)))
                result.additional.extend(_rrs(zone, target, rtype))


def lookup(zones: Mapping[str, Zone], qname: str, qtype: int, qlabel: dnslib.DNSLabel | None = None) -> Result:
    """Answer (qname, qtype) from the served zones; qname absolute and lower case.

    `qlabel` is the question's name exactly as on the wire (any byte in a label): records owned by the
    question name are written with it. Names outside every zone get REFUSED (no AA). CNAMEs are followed
    inside the zone.
    """
    def owner_label(name: str) -> dnslib.DNSLabel:
        return qlabel if qlabel is not None and name == qname else dnslib.DNSLabel(name)

    zone = find_zone(zones, qname)
    if zone is None:
        return Result(rcode=RCODE_REFUSED, aa=False)
    result = Result(zone=zone)
    name = qname
    chased: set[str] = set()        # names whose CNAME is in the answer already: a loop stops there
    for _ in range(MAX_CNAME_CHAIN):
        cut = _zone_cut(zone, name)
        if cut is not None and not (cut == name and qtype == QTYPE.DS):
            # Below a delegation: a referral, not an authoritative answer (RFC 1034 4.3.2 step 3b).
            ns = _rrs(zone, cut, "NS")
            result.aa = bool(result.answer)
            result.authority.extend(ns)
            _additional(zone, ns, result)
            return result
        owner = name
        if not _exists(zone, name):
            wildcard = _wildcard(zone, name)
            if wildcard is None:
                result.rcode = RCODE_NXDOMAIN
                result.authority.append(soa_rr(zone, negative=True))
                return result
            owner = wildcard
        types = _types_at(zone, owner)
        if "CNAME" in types and qtype != QTYPE.CNAME:
            for rr in _rrs(zone, owner, "CNAME"):
                rr.rname = owner_label(name)
                result.answer.append(rr)
            target = str(result.answer[-1].rdata.label).lower()
            chased.add(name)
            if find_zone(zones, target) is not zone or target in chased:
                return result          # leaves the zone (the resolver follows it), or loops (RFC 1034 3.6.2)
            name = target
            continue
        rtype = QTYPE.get(qtype, None)
        if qtype in FAMILY_OF and owner in zone.pool_names:
            pool = zone.pool_names[owner]
            owner_zone = pool_zone(zones, zone, pool)
            if owner_zone is None:
                result.rcode = RCODE_SERVFAIL
                return result
            result.pool = PoolRef(owner_zone, pool, FAMILY_OF[qtype], name)
            return result
        if rtype == "SOA" and owner == zone.origin:
            result.answer.append(soa_rr(zone))
            return result
        found = _rrs(zone, owner, rtype) if isinstance(rtype, str) and rtype in types else []
        if found:
            for rr in found:
                rr.rname = owner_label(name)
            result.answer.extend(found)
            _additional(zone, found, result)
            return result
        result.authority.append(soa_rr(zone, negative=True))     # NODATA (RFC 2308 2.2)
        return result
    return result   # a CNAME chain longer than MAX_CNAME_CHAIN: answer what we have
