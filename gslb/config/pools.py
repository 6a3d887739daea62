"""Parse a zone's `pools:` mapping (docs/zone-format.md, "Pools") into frozen `Pool` objects."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from gslb.config.check import parse_check
from gslb.config.kit import Address, Choice, Custom, Int, Invalid, Number, Section, Text, line_of
from gslb.config.model import Endpoint, Pool, Site
from gslb.config.nets import build_net_table
from gslb.config.regions import Regions, missing_problem
from gslb.config.registry import POLICIES
from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem

ALL_DOWN = ("serve_all", "nodata", "servfail")
AFFINITY = ("none", "subnet")
STATUSES = ("up", "down", "auto")
CAPACITY = ("fixed", "follow")
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
GEO_ORDER = ("net", "subdivision", "country", "continent", "default")
MAX_WEIGHT = 1000
PROXY_POOL = re.compile(r"[A-Za-z0-9._-]{1,64}/[^/\s]{1,200}")   # PROXY/POOL: report_name / proxy pool name


def _proxy_pool(value: Any) -> str:
    if not isinstance(value, str) or not PROXY_POOL.fullmatch(value):
        raise Invalid
    return value


_OWN = Custom("read by its own parser", {})         # a key parse_pools reads itself (schema: gslb/schema.py)
_WEIGHT, _STATUS = Int(0, MAX_WEIGHT), Choice(STATUSES)
_PROXY_POOL = Custom("PROXY/POOL (the proxy's report_name and a pool of its config, e.g. eu-1/app)",
                     {"type": "string", "pattern": f"^{PROXY_POOL.pattern}$"}, _proxy_pool)
_IP = Address(says="{value} is not an IP address")
# The keys of a pool, a site and an endpoint, in the order messages list them.
ENDPOINT_FIELDS = {"address": _IP, "check_address": _IP, "check_port": Int(1, 65535), "proxy_pool": _PROXY_POOL,
                   "status": _STATUS, "weight": _WEIGHT}
SITE_FIELDS = {"endpoints": _OWN, "lat": Number(-90, 90), "lon": Number(-180, 180), "proxy_pool": _PROXY_POOL,
               "region": Custom("a region of regions.yaml", {"type": "string"}, lambda v: None if v is None else str(v)), "status": _STATUS,
               "weight": _WEIGHT}
POOL_FIELDS = {
    "affinity": Choice(AFFINITY), "all_down": Choice(ALL_DOWN), "answers": Int(1, 64), "capacity": Choice(CAPACITY),
    "capacity_floor": Number(0.01, 1), "check": _OWN, "fallback": Text("a pool's name", says="must name a pool"),
    "geo": _OWN, "latency_margin_ms": Number(0, 10_000), "latency_margin_pct": Number(0, 100), "order": _OWN,
    "policy": Choice(POLICIES), "sites": _OWN, "ttl": Int(0, 86400)}
_POOL_OWN = ("check", "geo", "order", "sites")


def geo_key_kind(key: str) -> str:
    """How a `geo:` key is matched: "net" (net:10.0.0.0/8), "subdivision" (US-CA), "continent" (EU),
    "country" (DE) or "default".

    Continent codes win over the same two letters as a country; write `country:AS` for American Samoa.
    """
    if key == "default":
        return "default"
    if key.startswith("net:"):
        return "net"
    if key.startswith("country:"):
        return "country"
    if key.startswith("continent:"):
        return "continent"
    if "-" in key:
        return "subdivision"
    return "continent" if key in CONTINENTS else "country"


def _geo_rank(key: str) -> tuple[int, int]:
    """Rules are tried in a fixed order, not file order: net (most specific first), subdivision, country,
    continent, default."""
    kind = geo_key_kind(key)
    return GEO_ORDER.index(kind), -int(key.rpartition("/")[2]) if kind == "net" else 0


def _endpoint(src: Any, where: str, w: Section, line: int) -> Endpoint | None:
    if isinstance(src, str):
        src = {"address": src}
    elif not isinstance(src, SourceMap):
        w.add(line, f"{where}: expected {{address: IP, weight: N}}, got {short(src)}")
        return None
    sec = Section(src, w.problems, w.file, f"{where}: ", " ", line=line)
    values = sec.read(ENDPOINT_FIELDS)
    if "address" not in values:
        if "address" not in src:
            sec.bad("address", f"{short(None)} is not an IP address")
        return None
    return Endpoint(**values)


def _site(name: str, src: Any, where: str, regions: Regions, w: Section, line: int,
          unlocated: list[tuple[int, str]]) -> Site | None:
    """A site; when it has no coordinates, (line, problem) goes to `unlocated`: only a pool that latency
    steering uses needs them (checked in `parse_pools`, once the fallbacks are known)."""
    if not isinstance(src, SourceMap):
        w.add(line, f"{where}: expected a mapping with endpoints (and region or lat/lon for latency pools)")
        return None
    sec = Section(src, w.problems, w.file, f"{where}: ", " ")
    values = sec.read(SITE_FIELDS, own=("endpoints",))
    region, lat, lon = values.get("region"), values.get("lat"), values.get("lon")
    if "lat" in src or "lon" in src:
        for key, other in (("lat", "lon"), ("lon", "lat")):
            if key not in src:
                sec.bad(other, f"needs {key} too (or neither, with a region of regions.yaml)")
        if lat is None or lon is None:
            lat = lon = None
    elif region is not None and (known := regions.get(region)) is not None:
        lat, lon = known.lat, known.lon
    elif region is not None:
        unlocated.append((src.line_of("region"), "" if regions.missing else
                          f"{where}: region {short(region)} is not in regions.yaml; give lat/lon too"))
    else:
        unlocated.append((line, f"{where}: needs a region (from regions.yaml) or lat and lon"))
    raw = src.get("endpoints")
    if not isinstance(raw, list) or not raw:
        sec.add(src.line_of("endpoints"), f"{where}: endpoints must be a non-empty list")
        raw = SourceList()
    endpoints: list[Endpoint] = []
    for i, item in enumerate(raw):
        endpoint = _endpoint(item, f"{where} endpoint {i + 1}", w, line_of(raw, i))
        if endpoint is None:
            continue
        if any(e.address == endpoint.address for e in endpoints):
            w.add(line_of(raw, i), f"{where} endpoint {i + 1}: address {endpoint.address} listed twice")
            continue
        endpoints.append(endpoint)
    return Site(name=name, endpoints=tuple(endpoints), **values | {"lat": lat, "lon": lon})


def _check_overrides(check: Any, sites_src: Any, where: str, w: Section) -> None:
    """check_address/check_port on an endpoint of a pool without a check would silently do nothing."""
    if check is not None or not isinstance(sites_src, SourceMap):
        return
    for site_name, site_src in sites_src.items():
        raw = site_src.get("endpoints") if isinstance(site_src, SourceMap) else site_src
        for i, item in enumerate(raw if isinstance(raw, list) else ()):
            for key in ("check_address", "check_port"):
                if isinstance(item, SourceMap) and key in item:
                    w.add(item.line_of(key), f"{where} site {short(site_name)} endpoint {i + 1}: {key} needs "
                                             "a check: on the pool")


def _net_rule(key: str, where: str, line: int, seen: dict[tuple[int, int, int], int],
              w: Section) -> tuple[str, int, int, int] | None:
    """A `net:CIDR` geo key as (normalized key, version, network as an integer, prefix length), or None
    (a problem is added): not a network, host bits set past the prefix, or a network listed twice."""
    text = key[4:].strip()
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        w.add(line, f"{where} {short(key)}: not a network; write net:10.0.0.0/8 or net:2001:db8::/32")
        return None
    if "/" not in text:
        w.add(line, f"{where} {short(key)}: needs a prefix length; write net:{net}")
        return None
    if int(net.network_address) != int(ipaddress.ip_address(text.partition("/")[0])):
        w.add(line, f"{where} {short(key)}: address bits set past /{net.prefixlen}; write net:{net}")
        return None
    ident = (net.version, int(net.network_address), net.prefixlen)
    if ident in seen:
        w.add(line, f"{where} {short(key)}: network {net} is already listed on line {seen[ident]}")
        return None
    seen[ident] = line
    return f"net:{net}", net.version, int(net.network_address), net.prefixlen


def _site_list(value: Any, site_names: set[str], where: str, w: Section, line: int) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if item not in site_names:
            w.add(line, f"{where}: site {short(item)} does not exist (sites: {', '.join(sorted(site_names))})")
        elif item not in out:
            out.append(item)
    return tuple(out)


def _pool(name: str, src: SourceMap, regions: Regions, w: Section,
          unlocated: dict[str, list[tuple[int, str]]]) -> Pool:
    where = f"pool {short(name)}"
    values = Section(src, w.problems, w.file, f"{where}: ", " ").read(POOL_FIELDS, own=_POOL_OWN)
    sites_src = src.get("sites")
    sites = []
    if not isinstance(sites_src, SourceMap) or not sites_src:
        w.add(src.line_of("sites"), f"{where}: sites must be a non-empty mapping of site name -> site")
    else:
        for site_name, site_src in sites_src.items():
            site = _site(str(site_name), site_src, f"{where} site {short(site_name)}", regions, w,
                         sites_src.line_of(site_name), unlocated.setdefault(name, []))
            if site is not None:
                sites.append(site)
    names = {s.name for s in sites}
    policy = values.get("policy", "latency")
    geo: list[tuple[str, tuple[str, ...]]] = []
    nets: list[tuple[str, int, int, int]] = []
    geo_src = src.get("geo")
    if geo_src is not None:
        if not isinstance(geo_src, SourceMap):
            w.add(src.line_of("geo"), f"{where}: geo must map a location (EU, DE, US-CA, net:CIDR, default) to sites")
        else:
            seen_nets: dict[tuple[int, int, int], int] = {}
            for key, value in geo_src.items():
                key_text, line = str(key), geo_src.line_of(key)
                if geo_key_kind(key_text) == "net":
                    net = _net_rule(key_text, f"{where} geo", line, seen_nets, w)
                    if net is None:
                        continue
                    key_text = net[0]
                    nets.append(net)
                geo.append((key_text, _site_list(value, names, f"{where} geo {key}", w, line)))
            geo.sort(key=lambda kv: _geo_rank(kv[0]))
    elif policy == "geo":
        w.add(src.line_of("policy"), f"{where}: policy geo needs a geo: mapping (with a default)")
    order = ()
    if "order" in src:
        order = _site_list(src["order"], names, f"{where} order", w, src.line_of("order"))
    check = parse_check(src.get("check"), where, w.file, src.line_of("check"), w.problems)
    _check_overrides(check, sites_src, where, w)
    if values.get("capacity") == "follow" and not any(Pool.proxy_pool_of(s, e) for s in sites for e in s.endpoints):
        w.add(src.line_of("capacity"), f"{where}: capacity: follow needs proxy_pool on its sites or endpoints "
                                       "(the proxy pool whose backend weight each site follows)")
    return Pool(name=name, sites=tuple(sites), check=check, geo=tuple(geo), order=order or tuple(s.name for s in sites),
                nets=build_net_table(nets), **values)


def _check_locations(pools: dict[str, Pool], regions: Regions, w: Section,
                     unlocated: dict[str, list[tuple[int, str]]]) -> None:
    """Sites of latency pools need coordinates (a region of regions.yaml, or lat/lon): the estimates are
    distances from the client. Other policies never look at where a site is, so theirs may leave it out
    (a fallback pool decides by its own policy, so it needs them only if it is a latency pool itself).
    A missing regions.yaml is one problem naming the path, not one per site."""
    for pool in pools.values():
        if pool.policy != "latency":
            continue
        for line, what in unlocated.get(pool.name, ()):
            if not what:
                problem = missing_problem(regions)
                if problem not in w.problems:
                    w.problems.append(problem)
            else:
                w.add(line, f"{what} (policy latency estimates the RTT from where each site is)")


def parse_pools(src: Any, file: str, regions: Regions, problems: list[Problem]) -> dict[str, Pool]:
    """Pools of one zone file; problems are appended (with file:line), never raised."""
    w = Section(src, problems, file)
    unlocated: dict[str, list[tuple[int, str]]] = {}
    if not isinstance(src, SourceMap):
        w.add(0, "pools must be a mapping of pool name -> pool")
        return {}
    pools: dict[str, Pool] = {}
    for name, pool_src in src.items():
        if not isinstance(pool_src, SourceMap):
            w.add(src.line_of(name), f"pool {short(name)}: expected a mapping with policy and sites")
            continue
        pools[str(name)] = _pool(str(name), pool_src, regions, w, unlocated)
    _check_locations(pools, regions, w, unlocated)
    for pool in pools.values():
        if pool.fallback is not None and pool.fallback not in pools:
            w.add(src[pool.name].line_of("fallback"), f"pool {short(pool.name)}: fallback pool {short(pool.fallback)} does not exist")
    for pool in pools.values():
        chain, current = [pool.name], pool
        while current.fallback is not None and current.fallback in pools:
            if current.fallback in chain:
                w.add(src[pool.name].line_of("fallback"),
                      f"pool {short(pool.name)}: loop in fallbacks: {' -> '.join(chain + [current.fallback])}")
                break
            chain.append(current.fallback)
            current = pools[current.fallback]
    return pools
