"""The answer table: responses packed in advance, per (name, type), for the fast path.

Each `Entry` is what `authority.lookup` answers, packed once with dnslib. At query time the fast path
only copies the client's question in front of the packed sections and patches the ID, flags and OPT
record. Names of the zones are packed when the table is built; other names (NXDOMAIN, wildcards) are
packed on first use and kept in a bounded memo. Load-balanced names keep a `PoolRef`: their A/AAAA
records come from steering per query, from plans cached per client-location bucket.

Big zones: the plain names (A, AAAA, TXT records and pools, not at the apex, a wildcard, a CNAME or a
delegation) are packed at load from their records' wire form, a few microseconds a name, without dnslib; their
NODATA answers share one packed response per zone and type. So the first query to any of them costs what
a repeated one does. The other names of zones above PREWARM_LIMIT names are packed through dnslib on
first use.

A table is immutable as far as answers go: a zone reload builds a new table and swaps it in, so no
query sees half a reload. A health change swaps the plan cache only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from dnslib import QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from gslb.config.model import Zone
from gslb.config.names import is_within, parent
from gslb.config.rdata import records
from gslb.dns.authority import PoolRef, Result, find_zone, lookup, pool_zone, soa_rr
from gslb.dns.identity import Identity
from gslb.dns.stats import DnsStats
from gslb.dns.wire import name_to_text, text_to_name
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.decide import Plan, SteeringData, net_key, plan
from gslb.steering.location import ClientLocation, Locator

MEMO_LIMIT = 50_000          # packed answers for names outside the zone files (NXDOMAIN, wildcards)
PLAN_LIMIT = 100_000         # cached plans (pool x family x location bucket)
PREWARM_LIMIT = 2_000        # zones up to this many names are packed whole at load; bigger ones on demand
# The trace line steering.decide.plan writes when no pool had a usable endpoint (counted as all_down).
ALL_DOWN_TRACE_PREFIX = "nothing healthy: all_down"
PREWARM_TYPES = tuple(getattr(QTYPE, t) for t in ("SOA", "NS", "A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA"))
BUILD_STEP = 50             # names packed between two turns of the event loop (build_async): ~0.3 ms
FREEZE_NAMES = 10_000        # a table this big is kept out of the garbage collector's walks once built
AA_FLAGS = 0x8400            # QR + AA, rcode NOERROR
FAST_TYPES = {"A": QTYPE.A, "AAAA": QTYPE.AAAA, "TXT": QTYPE.TXT}   # packed at load without dnslib


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """A packed response minus header ID, question and OPT. Compared and hashed by identity."""

    flags: int                 # QR, AA and rcode bits of the response flags word
    an: int
    ns: int
    ar: int
    body: bytes                # answer + authority + additional sections
    pool: PoolRef | None = None
    owner: bytes = b"\xc0\x0c"  # owner of the pool's records: a pointer to the question, or a full name
    nodata: Entry | None = None  # for pool entries: the NODATA response (SOA in authority)
    key: int = 0               # (zone, qtype) label id for gslb_dns_queries_total (gslb/dns/stats.py)


def wire_label(qname: bytes) -> DNSLabel:
    """A dnslib name with exactly these wire labels (bytes a presentation name would have to escape)."""
    labels, pos = [], 0
    while qname[pos]:
        labels.append(qname[pos + 1:pos + 1 + qname[pos]])
        pos += qname[pos] + 1
    return DNSLabel(labels)


def pack_result(qname: bytes, qtype: int, result: Result) -> Entry:
    """Pack a lookup result with dnslib, for a question of this (lower-case, wire) name and type."""
    header = DNSHeader(id=0, qr=1, aa=int(result.aa), rd=0, rcode=result.rcode)
    record = DNSRecord(header, q=DNSQuestion(wire_label(qname), qtype))
    for rr in result.answer:
        record.add_answer(rr)
    for rr in result.authority:
        record.add_auth(rr)
    for rr in result.additional:
        record.add_ar(rr)
    wire = bytes(record.pack())     # dnslib returns a bytearray: an Entry must never change
    qlen = len(qname) + 4
    flags = struct.unpack_from("!H", wire, 2)[0]
    an, ns, ar = struct.unpack_from("!HHH", wire, 6)
    return Entry(flags, an, ns, ar, wire[12 + qlen:])


def build_entry(zones: Mapping[str, Zone], qname: bytes, qtype: int, stats: DnsStats | None = None) -> Entry:
    """The packed answer for (qname, qtype); qname in lower-case wire form. `stats`: label the entry's
    queries with its zone and type."""
    text = name_to_text(qname)
    result = lookup(zones, text, qtype, wire_label(qname))
    entry = pack_result(qname, qtype, result)
    key = stats.query_key(result.zone.origin if result.zone is not None else None, qtype) if stats else 0
    if result.pool is None:
        return dataclasses.replace(entry, key=key) if key else entry
    owner = b"\xc0\x0c" if result.pool.owner == text else text_to_name(result.pool.owner)
    negative = Result(aa=True, answer=result.answer, authority=[soa_rr(result.zone, negative=True)])
    return Entry(entry.flags, entry.an, entry.ns, entry.ar, entry.body, result.pool, owner,
                 pack_result(qname, qtype, negative), key)


def address_rr(owner: bytes, address: str, ttl: int) -> bytes:
    """One A or AAAA record in wire form (an address from a zone file: validated at load)."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    rtype = QTYPE.A if len(packed) == 4 else QTYPE.AAAA
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(packed)) + packed


def _below_cut(zone: Zone, name: str) -> bool:
    """Whether a delegation (a non-apex name with NS records) is at or above `name`."""
    while name != zone.origin and is_within(name, zone.origin):
        if "NS" in zone.rrsets.get(name, ()):
            return True
        name = parent(name)
    return False


def _pack_rrset(rrset) -> tuple[int, bytes]:
    """(count, answer section) of an A, AAAA or TXT RRset owned by the question (a pointer to it): each
    record of its wire form (gslb/config/rdata.py) behind the same owner, type, class and TTL."""
    head = struct.pack("!HHHI", 0xC00C, FAST_TYPES[rrset.rtype], 1, rrset.ttl)
    wire = rrset.wire
    if 2 + (wire[0] << 8 | wire[1]) == len(wire):       # one record, the usual case
        return 1, head + wire
    parts = [head + record for record in records(wire)]
    return len(parts), b"".join(parts)


class _Negatives:
    """A zone's NODATA response (SOA in authority, its owner and names written out, so the same bytes
    follow any question), one `Entry` per asked type for the query counters."""

    __slots__ = ("body", "by_type", "stats", "zone")

    def __init__(self, zone: Zone, stats: DnsStats | None):
        soa = zone.soa
        rdata = text_to_name(soa.mname) + text_to_name(soa.rname) + struct.pack(
            "!IIIII", soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum)
        self.body = text_to_name(zone.origin) + struct.pack(
            "!HHIH", QTYPE.SOA, 1, min(soa.ttl, soa.minimum), len(rdata)) + rdata
        self.zone, self.stats = zone, stats
        self.by_type: dict[int, Entry] = {}

    def entry(self, qtype: int) -> Entry:
        found = self.by_type.get(qtype)
        if found is None:
            key = self.stats.query_key(self.zone.origin, qtype) if self.stats else 0
            found = self.by_type[qtype] = Entry(AA_FLAGS, 0, 1, 0, self.body, key=key)
        return found


@dataclass(frozen=True, slots=True)
class Ready:
    """A plan plus the wire form of each candidate's record, in candidate order, and what the query
    counts (gslb/dns/stats.py): a label id per candidate, whether the client was located, and the
    fallback or all_down label id (0: the pool itself answered)."""

    plan: Plan
    rrs: tuple[bytes, ...]
    keys: tuple[int, ...] = ()
    located: int = 0
    steering: int = 0


class AnswerTable:
    """Zones + health + steering data, ready to answer. See the module docstring."""

    def __init__(self, zones: Mapping[str, Zone], health: HealthSnapshot, data: SteeringData,
                 locator: Locator, identity: Identity | None = None, stats: DnsStats | None = None,
                 build: bool = True):
        """`build`: pack the zones now (False: the caller runs `build_steps()`, or uses `build_async`)."""
        self.zones = zones
        self.stats = stats                          # what queries count; None: nothing (GSLB_DNS_STATS=off)
        self.identity = identity or Identity()      # NSID, CHAOS id.server.: which node answered
        # `whoami.<origin>` of the zones with `whoami: true` -> the zone (answered per asker, slow path)
        self.whoami: dict[bytes, Zone] = {text_to_name("whoami." + z.origin): z for z in zones.values()
                                          if z.whoami}
        self.locator = locator
        self.data = data
        self.health = health
        self._entries: dict[tuple[bytes, int], Entry] = {}
        self._memo: dict[tuple[bytes, int], Entry] = {}
        self._plans: dict[tuple, Plan] = {}
        self._ready: dict[tuple[Entry, str], Ready] = {}
        # Responses by query bytes after the ID, [0] UDP and [1] TCP (gslb/dns/fast.py): a repeated query
        # skips parsing and assembly. Dropped with the plans when health changes.
        self.forms: tuple[dict, dict] = ({}, {})
        self._negatives: dict[bytes, _Negatives] = {}     # names packed at load -> their zone's NODATA
        self._names: set[bytes] = set()
        if build:
            for _ in self.build_steps():
                pass

    @classmethod
    async def build_async(cls, *args, **kwargs) -> AnswerTable:
        """A table built on the event loop in steps of BUILD_STEP names, answering queries in between:
        no thread holds the GIL meanwhile, so a query waits at most one step (about 0.3 ms) during a
        reload, not a GIL hand-over per system call on a busy machine."""
        table = cls(*args, build=False, **kwargs)
        for _ in table.build_steps():
            await asyncio.sleep(0)
        return table

    def build_steps(self) -> Iterator[None]:
        """Pack the zones' plain names (and small zones whole), pausing every BUILD_STEP names."""
        # Millions of small objects and no cycles: the collector would walk them again and again.
        paused = gc.isenabled()
        gc.disable()
        try:
            for zone in self.zones.values():
                yield from self._pack_plain(zone)
            if len(self._names) <= PREWARM_LIMIT:
                for wire in self._names:
                    if wire not in self._negatives:
                        for qtype in PREWARM_TYPES:
                            self.entry(wire, qtype)
        finally:
            if paused:
                gc.enable()
        if len(self._names) >= FREEZE_NAMES:
            gc.freeze()

    def _pack_plain(self, zone: Zone) -> Iterator[None]:
        """Pack the plain names of a zone at load (see the module docstring); the others are noted in
        `_names` and packed by `build_entry` on first use. Pauses every BUILD_STEP names."""
        zones, names, entries, negatives = self.zones, self._names, self._entries, self._negatives
        negative = _Negatives(zone, self.stats)
        stats = self.stats
        keys = {qtype: stats.query_key(zone.origin, qtype) if stats else 0
                for qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.TXT)}
        rrsets, pool_names = zone.rrsets, zone.pool_names
        cuts = False
        for count, (name, types) in enumerate(rrsets.items()):
            if "NS" in types and name != zone.origin:
                cuts = True
                break
            if count % (BUILD_STEP * 20) == 0:
                yield
        inner = any(o != zone.origin and is_within(o, zone.origin) for o in zones)
        shared: dict[tuple[str, int], Entry] = {}
        owners = list(rrsets)
        owners += [n for n in pool_names if n not in rrsets]
        yield
        tail, origin_wire = "." + zone.origin, text_to_name(zone.origin)
        for count, name in enumerate(owners):
            if count % BUILD_STEP == 0:
                yield
            prefix = name[:-len(tail)]
            if "." not in prefix and name.endswith(tail):
                # One label below the origin (most names of a big zone): a third of the build's time
                # went to text_to_name's general loop. Owner names are plain labels (checked at load).
                wire = bytes((len(prefix),)) + prefix.encode("ascii") + origin_wire
            else:
                wire = text_to_name(name)
            names.add(wire)
            if name == zone.origin or name.startswith("*.") or (cuts and _below_cut(zone, name)) \
                    or (inner and find_zone(zones, name) is not zone):
                continue
            packed = self._plain_entries(zone, name, wire, rrsets.get(name, {}), pool_names.get(name), keys,
                                         negative, shared)
            if packed is not None:
                entries.update(packed)
                negatives[wire] = negative

    def _plain_entries(self, zone: Zone, name: str, wire: bytes, types: Mapping, pool: str | None,
                       keys: dict[int, int], negative: _Negatives, shared: dict) -> list | None:
        """The (key, Entry) pairs of a plain name, or None when it needs dnslib (other types, an rdata
        of an unexpected form, a pool whose zone is gone). The plain names of one pool share one Entry
        per family (records owned by the question: the same bytes for each), so its plans and packed
        records are cached once per client, not once per name and client; its PoolRef's `owner` is the
        first such name."""
        packed = []
        for rtype, rrset in types.items():
            qtype = FAST_TYPES.get(rtype)
            if qtype is None:
                return None
            count, body = _pack_rrset(rrset)
            packed.append(((wire, qtype), Entry(AA_FLAGS, count, 0, 0, body, key=keys[qtype])))
        if pool is not None:
            owner_zone = pool_zone(self.zones, zone, pool)
            if owner_zone is None or "A" in types or "AAAA" in types:
                return None
            for qtype, family in ((QTYPE.A, 4), (QTYPE.AAAA, 6)):
                entry = shared.get((pool, qtype))
                if entry is None:
                    entry = shared[pool, qtype] = Entry(AA_FLAGS, 0, 0, 0, b"", PoolRef(owner_zone, pool, family, name),
                                                        b"\xc0\x0c", negative.entry(qtype), keys[qtype])
                packed.append(((wire, qtype), entry))
        return packed

    def entry(self, qname: bytes, qtype: int) -> Entry:
        """The packed answer for a lower-case wire name and a type (built on first use if needed)."""
        key = (qname, qtype)
        found = self._entries.get(key) or self._memo.get(key)
        if found is None:
            negatives = self._negatives.get(qname)
            if negatives is not None:       # a name packed at load, asked for a type it has not: NODATA
                return negatives.entry(qtype)
            found = build_entry(self.zones, qname, qtype, self.stats)
            if qname in self._names:
                self._entries[key] = found
            else:
                if len(self._memo) >= MEMO_LIMIT:
                    self._memo.clear()
                self._memo[key] = found
        return found

    def set_health(self, health: HealthSnapshot) -> None:
        """Use a new health snapshot: cached plans are dropped and recomputed on demand."""
        self.health = health
        self._plans = {}
        self._ready = {}
        self.forms = ({}, {})

    def plan(self, ref: PoolRef, location: ClientLocation, client_ip: tuple[int, int] | None = None) -> Plan:
        """The steering plan for this pool and client location bucket, and the client's block of any
        `net:` rules (cached until health changes)."""
        nets = net_key(ref.zone, ref.pool, client_ip) if client_ip is not None else ()
        key = (ref.zone.origin, ref.pool, ref.family, location.bucket, location.prefix_len, nets)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= PLAN_LIMIT:
                self._plans = {}
            found = self._plans[key] = plan(ref.zone, ref.pool, ref.family, location, self.health, self.data,
                                            client_ip)
        return found

    def ready(self, entry: Entry, client: Client) -> Ready:
        """The plan for a pool entry and client, with its records packed (cached per client address)."""
        key = (entry, client.address)
        found = self._ready.get(key)
        if found is None:
            location = self.locator.locate_client(client)
            p = self.plan(entry.pool, location, client.ip)
            rrs = tuple(address_rr(entry.owner, c.address, p.ttl) for c in p.candidates)
            if len(self._ready) >= PLAN_LIMIT:
                self._ready = {}
            found = self._ready[key] = self._counted(Ready(p, rrs), entry.pool, location) \
                if self.stats is not None else Ready(p, rrs)
        return found

    def _counted(self, ready: Ready, ref: PoolRef, location: ClientLocation) -> Ready:
        """`ready` with the label ids its queries count under (once per cached plan, not per query)."""
        stats, p, zone = self.stats, ready.plan, ref.zone.origin
        keys = tuple(stats.label_id(("a", zone, p.pool, c.site, c.address)) for c in p.candidates)
        steering = 0
        if any(line.startswith(ALL_DOWN_TRACE_PREFIX) for line in p.trace):
            action = "serve_all" if p.outcome == "answer" else p.outcome
            steering = stats.label_id(("all_down", zone, ref.pool, action))
        elif p.pool != ref.pool and p.outcome == "answer":
            steering = stats.label_id(("fallback", zone, ref.pool, p.pool))
        return Ready(p, ready.rrs, keys, int(location.known), steering)
