"""Load and validate zone YAML files (docs/zone-format.md) into frozen `Zone` objects.

Every problem is collected with its file:line and raised once as a `ConfigError`, so `gslb check` can
print them all. Pools (the `pools:` key) are parsed by gslb.config.pools.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

import dnslib

from gslb.config import rdata
from gslb.config.kit import Custom, Flag, Int, Invalid, Section, Text, line_of
from gslb.config.model import ExternalPool, RRset, Soa, Zone, ZoneLimits, frozen_map
from gslb.config.names import NameError_, absolute, is_within, parent
from gslb.config.overrides import FILE_NAME as OVERRIDES_FILE
from gslb.config.pools import parse_pools
from gslb.config.regions import Regions
from gslb.config.registry import RECORD_TYPES
from gslb.config.yamlsrc import SourceList, SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem

NAME_KEYS = {"ttl", "pool"}
MAX_TTL = 2**31 - 1
DEFAULT_LIMITS = ZoneLimits()
TTL = Int(0, MAX_TTL, f"a TTL (a whole number of seconds, 0..{MAX_TTL})", says="{value} is not {expected}")
_READ = Custom("read by parse_zone", {})         # a key whose value parse_zone reads itself
# The keys of a zone file and of its soa:, in the order messages list them (schemas: gslb/schema.py).
ZONE_FIELDS = {"ecs": Flag(), "origin": Text("the zone's name, e.g. gslb.example.com."), "pools": _READ,
               "records": _READ, "soa": _READ, "ttl": TTL, "whoami": Flag()}
SOA_FIELDS = {"expire": TTL, "minimum": TTL, "mname": Text("a domain name"), "refresh": TTL, "retry": TTL,
              "rname": Text("a domain name"), "serial": TTL, "ttl": TTL}
_SOA_DEFAULTS = {"refresh": 3600, "retry": 600, "expire": 1209600, "minimum": 60, "serial": 0}


def _ttl(value: Any, where: str, line: int, c: Section) -> int | None:
    try:
        return TTL.convert(value)
    except Invalid as exc:
        c.add(line, f"{where}: {TTL.problem(value, exc)}")
        return None


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _bad_label(name: str) -> str | None:
    """Why an owner name (absolute, lower case) cannot be served, or None. Queries are matched on the
    wire form, where other bytes would be escaped, so owner names keep to letters, digits, '-', '_'."""
    for label in name.rstrip(".").split("."):
        if label and label != "*" and not set(label) <= _LABEL_CHARS:
            return (f"label {short(label)} may only hold letters, digits, '-' and '_' "
                    f"(write an internationalized name in its xn-- form)")
    return None


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def _domain(value: Any, origin: str, where: str, line: int, c: Section) -> str | None:
    if not isinstance(value, str) or not value.strip():
        c.add(line, f"{where}: expected a domain name, got {short(value)}")
        return None
    try:
        return absolute(value, origin)
    except NameError_ as exc:
        c.add(line, f"{where}: {exc}")
        return None


def _int_field(item: Mapping, key: str, lo: int, hi: int, where: str, line: int, c: Section) -> int | None:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        c.add(line, f"{where}: {key} {short(value)}, expected a whole number {lo}..{hi}")
        return None
    return value


# The parsers of the record types declared in gslb/config/registry.py: (type, value, origin, where, line,
# collector) -> a dnslib RD object or the RDATA bytes themselves, or None after adding a problem.
@RECORD_TYPES.implements("A", "AAAA")
def _address(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    v6 = rtype == "AAAA"
    if type(value) is str and not v6:
        # The usual case, without an ipaddress object: a dotted quad the C parser reads back the same
        # way is exactly what ipaddress accepts (no leading zeros, four parts, each 0..255).
        try:
            packed = socket.inet_pton(socket.AF_INET, value)
            if socket.inet_ntop(socket.AF_INET, packed) == value:
                return packed
        except OSError:
            pass
    want = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    try:
        address = want(str(value).strip())
    except ValueError:
        c.add(line, f"{where}: {short(value)} is not an IPv{6 if v6 else 4} address")
        return None
    return address.packed


@RECORD_TYPES.implements("NS", "CNAME", "PTR")
def _name_record(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    target = _domain(value, origin, where, line, c)
    return None if target is None else getattr(dnslib, rtype)(target)


@RECORD_TYPES.implements("TXT")
def _txt(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        c.add(line, f"{where}: TXT value {short(value)} must be a string (quote it)")
        return None
    data = str(value).encode()
    # RFC 1035: a TXT record is a list of <=255-byte strings; split long text the way zone files do.
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    return b"".join(bytes((len(chunk),)) + chunk for chunk in chunks)


@RECORD_TYPES.implements("MX")
def _mx(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    if isinstance(value, str) and len(value.split()) == 2:
        pref, exch = value.split()
        value = {"preference": int(pref) if pref.isdigit() else pref, "exchange": exch}
    if not isinstance(value, Mapping):
        c.add(line, f"{where}: MX expects {{preference: N, exchange: NAME}}, got {short(value)}")
        return None
    pref = _int_field(value, "preference", 0, 65535, where, line, c)
    exch = _domain(value.get("exchange"), origin, f"{where} exchange", line, c)
    return None if pref is None or exch is None else dnslib.MX(exch, pref)


@RECORD_TYPES.implements("SRV")
def _srv(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    if not isinstance(value, Mapping):
        c.add(line, f"{where}: SRV expects {{priority, weight, port, target}}, got {short(value)}")
        return None
    nums = [_int_field(value, k, 0, 65535, where, line, c) for k in ("priority", "weight", "port")]
    target = _domain(value.get("target"), origin, f"{where} target", line, c)
    return None if None in nums or target is None else dnslib.SRV(*nums, target)


@RECORD_TYPES.implements("CAA")
def _caa(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> Any:
    if not isinstance(value, Mapping):
        c.add(line, f"{where}: CAA expects {{flags, tag, value}}, got {short(value)}")
        return None
    flags = _int_field({"flags": value.get("flags", 0)}, "flags", 0, 255, where, line, c)
    tag = value.get("tag")
    if not isinstance(tag, str) or not tag.isalnum() or not 0 < len(tag) <= 15:
        c.add(line, f"{where}: CAA tag {short(tag)}, expected letters/digits like issue, issuewild, iodef")
        return None
    text = value.get("value")
    if not isinstance(text, str):
        c.add(line, f"{where}: CAA value {short(text)} must be a string")
        return None
    return None if flags is None else dnslib.CAA(flags, tag, text)


RECORD_TYPES.complete()
_TYPE_NAMES = {sys.intern(t): sys.intern(t) for t in RECORD_TYPES}


def _rdata(rtype: str, value: Any, origin: str, where: str, line: int, c: Section) -> bytes | None:
    """One record's RDATA in wire form (gslb/config/rdata.py), or None after adding a problem."""
    rd = RECORD_TYPES[rtype](rtype, value, origin, where, line, c)
    return rd if rd is None or type(rd) is bytes else rdata.encode(rd)


def _parse_soa(zone: Section, origin: str, ttl: int) -> Soa | None:
    if not isinstance(zone.get("soa"), Mapping):
        zone.add(zone.line("soa") or 1, "missing soa: {mname, rname, refresh, retry, expire, minimum}")
        return None
    sec = Section(zone.get("soa"), zone.problems, zone.file, "soa ")
    names = ("mname", "rname")           # relative to the origin: read by _domain
    values = {"ttl": ttl} | _SOA_DEFAULTS | sec.read(SOA_FIELDS, own=names)
    for key in names:
        values[key] = _domain(sec.get(key), origin, f"soa {key}", sec.line(key), sec)
    if None in values.values() or len(values) != len(SOA_FIELDS):
        return None
    return Soa(**values)


def parse_zone(src: Any, file: str, regions: Regions, limits: ZoneLimits = DEFAULT_LIMITS) -> Zone:
    """Validate one zone's loaded YAML and build its `Zone`; more names than `limits.zone_names` is refused
    before any of them is parsed.

    :raises ConfigError: listing every problem found, each with file:line.
    """
    if not isinstance(src, SourceMap):
        raise ConfigError([Problem(file, 1, "a zone file must be a mapping with origin, soa and records")])
    c = Section(src, [], file)
    top = c.read(ZONE_FIELDS, own=("origin", "pools", "records", "soa"))
    origin = _domain(src.get("origin"), ".", "origin", src.line_of("origin") or 1, c) if "origin" in src \
        else c.add(1, "missing origin (the zone's name, e.g. origin: gslb.example.com.)")
    if origin is not None and _bad_label(origin) is not None:
        c.add(src.line_of("origin"), f"origin {short(origin)}: {_bad_label(origin)}")
        origin = None
    origin = origin or "invalid."
    ttl = top.get("ttl", 3600)                   # TTL 0 is a valid TTL (RFC 2181 8), not "unset"
    ecs, whoami = top.get("ecs", True), top.get("whoami", False)
    soa = _parse_soa(c, origin, ttl)

    pools_src = src.get("pools") or SourceMap()
    if not isinstance(pools_src, SourceMap):
        c.add(src.line_of("pools"), "pools must be a mapping of pool name -> pool")
        pools_src = SourceMap()
    pools = parse_pools(pools_src, file, regions, c.problems)
    for name, pool in pools.items():
        if pool.check is not None and pool.check.type == "dns" and pool.check.query is None:
            # a dns check asks for the zone's own apex unless told otherwise
            pools[name] = dataclasses.replace(pool, check=dataclasses.replace(pool.check, query=origin))

    rrsets: dict[str, dict[str, RRset]] = {}
    pool_names: dict[str, str] = {}
    external: list[ExternalPool] = []
    seen: dict[str, Any] = {}
    records = src.get("records")
    if not isinstance(records, Mapping):
        c.add(src.line_of("records"), "missing records: (at least the apex NS records)")
        records = SourceMap()
    if limits.zone_names and len(records) > limits.zone_names:
        raise ConfigError([Problem(file, src.line_of("records"),
                                   f"records: {len(records):,} names, more than the limit of "
                                   f"{limits.zone_names:,} (limits: zone_names in the server config)")])
    for raw_name, entry in records.items():
        line = records.line_of(raw_name)
        try:
            name = absolute(str(raw_name), origin)
        except NameError_ as exc:
            c.add(line, f"records: {exc}")
            continue
        if not is_within(name, origin):
            c.add(line, f"name {short(raw_name)} is outside the zone {origin}")
            continue
        if "*" in name and not name.startswith("*.") or name.count("*") > 1:
            c.add(line, f"name {short(raw_name)}: '*' is only allowed as the whole leftmost label (RFC 4592)")
            continue
        if _bad_label(name) is not None:
            c.add(line, f"name {short(raw_name)}: {_bad_label(name)}")
            continue
        if name in seen:
            # YAML sees two keys, DNS one name (names are case-insensitive; "www" is "www.<origin>")
            c.add(line, f"name {short(raw_name)} is {name}, already written as {short(seen[name])} on line "
                        f"{records.line_of(seen[name])}")
            continue
        seen[name] = raw_name
        if not isinstance(entry, Mapping):
            c.add(line, f"{raw_name}: expected a mapping of record types, e.g. {{A: 192.0.2.1}}")
            continue
        _parse_name(name, raw_name, entry, origin, ttl, pools, c, rrsets, pool_names, external)

    _check_zone_rules(origin, rrsets, pool_names, records, c)
    if whoami and ("whoami." + origin in rrsets or "whoami." + origin in pool_names):
        c.add(src.line_of("whoami"), f"whoami: true answers whoami.{origin} itself, but records: has that name")
    if c.problems or soa is None:
        if soa is None and not c.problems:
            c.add(1, "missing soa")
        raise ConfigError(c.problems)
    return Zone(
        origin=origin, file=file, ttl=ttl, soa=soa,
        rrsets=frozen_map({n: frozen_map(t) for n, t in rrsets.items()}),
        pool_names=frozen_map(pool_names), pools=frozen_map(pools), ecs=ecs, whoami=whoami,
        serial_given="serial" in src.get("soa", {}),
        nodes=_nodes(origin, set(rrsets) | set(pool_names)), external_pools=tuple(external),
    )


def _nodes(origin: str, owners: set[str]) -> frozenset[str]:
    """Owners plus every name between them and the origin (empty non-terminals exist too, RFC 4592)."""
    nodes = {origin}
    for name in owners:
        while name not in nodes:
            nodes.add(name)
            name = parent(name)
    return frozenset(nodes)


def _parse_name(name: str, raw_name: Any, entry: SourceMap, origin: str, zone_ttl: int, pools: Mapping,
                c: Section, rrsets: dict, pool_names: dict, external: list) -> None:
    name_ttl = _ttl(entry["ttl"], f"{raw_name} ttl", line_of(entry, "ttl"), c) if "ttl" in entry else None
    name_ttl = zone_ttl if name_ttl is None else name_ttl
    if "pool" in entry:
        pool = entry["pool"]
        if not isinstance(pool, str) or not pool:
            c.add(line_of(entry, "pool"), f"{raw_name}: pool must name a pool")
        else:
            pool_names[name] = pool
            if pool not in pools:       # a pool of another zone file: resolved when all zones are loaded
                external.append(ExternalPool(str(raw_name), pool, line_of(entry, "pool")))
    for key, value in entry.items():
        if key in NAME_KEYS:
            continue
        line = line_of(entry, key)
        rtype = str(key).upper()
        if rtype == "SOA":
            c.add(line, f"{raw_name}: SOA goes in the zone's soa: key, not under records")
            continue
        if rtype not in RECORD_TYPES:
            c.add(line, f"{raw_name}: unknown record type {short(key)} (known: {', '.join(RECORD_TYPES)})")
            continue
        if rtype == "CNAME" and isinstance(value, list) and len(value) != 1:
            c.add(line, f"{raw_name}: a name has at most one CNAME target")
            continue
        values = _as_list(value)
        if not values:
            c.add(line, f"{raw_name} {rtype}: empty list")
            continue
        rdatas = []
        for i, item in enumerate(values):
            item_line = value.line_of(i) if isinstance(value, SourceList) else line
            rd = _rdata(rtype, item, origin, f"{raw_name} {rtype}", item_line, c)
            if rd is not None and rd not in rdatas:   # RFC 2181 5: an RRset has no duplicate records
                rdatas.append(rd)
        if rdatas:
            # One "TXT" string for the whole zone, not one per name (keys of 100,000 small dicts).
            rtype = _TYPE_NAMES.get(rtype, rtype)
            rrsets.setdefault(name, {})[rtype] = RRset(name, rtype, name_ttl, rdata.join(rdatas))


def _check_zone_rules(origin: str, rrsets: dict, pool_names: dict, records: Any, c: Section) -> None:
    """Rules across records: CNAME exclusivity, apex NS, glue for in-zone name servers."""
    def line_for(name: str) -> int:
        for raw in records:
            try:
                if absolute(str(raw), origin) == name:
                    return records.line_of(raw)
            except NameError_:
                pass
        return 1

    for name, types in rrsets.items():
        if "CNAME" in types and (len(types) > 1 or name in pool_names):
            c.add(line_for(name), f"{name}: CNAME cannot stand beside other data (RFC 1034 3.6.2)")
        if "CNAME" in types and name == origin:
            c.add(line_for(name), "the apex cannot be a CNAME (it holds SOA and NS)")
    for name in pool_names:
        clash = {"A", "AAAA", "CNAME"} & set(rrsets.get(name, {}))
        if clash:
            c.add(line_for(name), f"{name}: pool answers A/AAAA, so it cannot also have {', '.join(sorted(clash))}")
    apex_ns = rrsets.get(origin, {}).get("NS")
    if apex_ns is None:
        c.add(line_for(origin) if origin in rrsets else (records.line if isinstance(records, SourceMap) else 1),
              f'missing NS records at the apex: records: {{"@": {{NS: [ns1.{origin}]}}}}')
        return
    for rd in apex_ns.rdatas:
        target = str(rd.label).lower()
        if is_within(target, origin) and not ({"A", "AAAA"} & set(rrsets.get(target, {}))) \
                and target not in pool_names:
            c.add(line_for(origin), f"name server {target} is inside the zone but has no A/AAAA record (glue)")


def load_zone_file(path: str, regions: Regions, limits: ZoneLimits = DEFAULT_LIMITS) -> Zone:
    """Load one zone file; a file over `limits.zone_bytes` is refused before it is read.

    :raises ConfigError: when the file cannot be read, is over a limit or is invalid.
    """
    src = load_yaml_file(path, limits.zone_bytes or None, "limits: zone_bytes in the server config")
    return parse_zone(src, path, regions, limits)


def pool_problems(zone: Zone, zones: Mapping[str, Zone]) -> list[Problem]:
    """Problems with the pools a zone borrows from other zones: each must be defined in exactly one."""
    problems = []
    for ref in zone.external_pools:
        owners = sorted(z.origin for z in zones.values() if ref.pool in z.pools and z.origin != zone.origin)
        if not owners:
            problems.append(Problem(zone.file, ref.line, f"{ref.name}: pool {short(ref.pool)} does not exist in this "
                                    f"zone (pools: {', '.join(sorted(zone.pools)) or 'none defined'}) or any other"))
        elif len(owners) > 1:
            problems.append(Problem(zone.file, ref.line, f"{ref.name}: pool {short(ref.pool)} is defined in several "
                                    f"zones ({', '.join(owners)}); define it in this zone to choose"))
    return problems


def zone_files(directory: str) -> list[str]:
    """The zone files of a directory: *.yaml and *.yml, sorted, hidden files and overrides.yaml skipped."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError([Problem(directory, 0, f"cannot read zone directory: {exc.strerror}")]) from None
    return [os.path.join(directory, n) for n in names
            if n.endswith((".yaml", ".yml")) and not n.startswith(".") and n != OVERRIDES_FILE]


def load_zones(path: str, regions: Regions | None = None, limits: ZoneLimits = DEFAULT_LIMITS) -> dict[str, Zone]:
    """Load every zone under a directory (or one file): origin -> Zone, each file within `limits`.

    :raises ConfigError: listing the problems of every file, and zones defined twice.
    """
    regions = regions if regions is not None else Regions.empty()
    files = zone_files(path) if os.path.isdir(path) else [path]
    zones: dict[str, Zone] = {}
    problems: list[Problem] = []
    for file in files:
        try:
            zone = load_zone_file(file, regions, limits)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if zone.origin in zones:
            problems.append(Problem(file, 1, f"zone {zone.origin} is already defined in {zones[zone.origin].file}"))
            continue
        zones[zone.origin] = zone
    for zone in zones.values():
        problems.extend(pool_problems(zone, zones))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))   # a missing regions.yaml: once, not per file
    return zones
