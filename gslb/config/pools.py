"""Parse a zone's `pools:` mapping (docs/zone-format.md, "Pools") into frozen `Pool` objects."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from gslb.config.check import parse_check
from gslb.config.model import (
    DEFAULT_CAPACITY_FLOOR,
    DEFAULT_MARGIN_MS,
    DEFAULT_MARGIN_PCT,
    Endpoint,
    Pool,
    Site,
)
from gslb.config.nets import build_net_table
from gslb.config.regions import Regions, missing_problem
from gslb.config.registry import POLICIES
from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem

ALL_DOWN = ("serve_all", "nodata", "servfail")
AFFINITY = ("none", "subnet")
STATUSES = ("up", "down", "auto")
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
GEO_ORDER = ("net", "subdivision", "country", "continent", "default")
POOL_KEYS = {"policy", "ttl", "answers", "fallback", "all_down", "affinity", "check", "sites", "geo", "order",
             "latency_margin_ms", "latency_margin_pct", "capacity", "capacity_floor"}
SITE_KEYS = {"region", "lat", "lon", "endpoints", "status", "weight", "proxy_pool"}
ENDPOINT_KEYS = {"address", "weight", "status", "check_address", "check_port", "proxy_pool"}
MAX_WEIGHT = 1000
CAPACITY = ("fixed", "follow")
PROXY_POOL = re.compile(r"[A-Za-z0-9._-]{1,64}/[^/\s]{1,200}")   # PROXY/POOL: report_name / proxy pool name


class _Where:
    """Appends problems for one file."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file, self.problems = file, problems
        # pool -> sites without coordinates, (line, what): an error only if a latency pool uses the pool
        self.unlocated: dict[str, list[tuple[int, str]]] = {}

    def add(self, line: int, what: str) -> None:
        self.problems.append(Problem(self.file, line, what))


def _line(src: Any, key: Any) -> int:
    return src.line_of(key) if isinstance(src, (SourceMap, SourceList)) else 0


def _choice(src: SourceMap, key: str, allowed: tuple[str, ...], default: str, where: str, w: _Where) -> str:
    value = src.get(key, default)
    if value not in allowed:
        w.add(_line(src, key), f"{where}: {key} {short(value)}, expected one of {' | '.join(allowed)}")
        return default
    return value


def _int(src: SourceMap, key: str, default: int, lo: int, hi: int, where: str, w: _Where) -> int:
    value = src.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        w.add(_line(src, key), f"{where}: {key} {short(value)}, expected a whole number {lo}..{hi}")
        return default
    return value


def _number(src: SourceMap, key: str, default: float, lo: float, hi: float, where: str, w: _Where) -> float:
    value = src.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        w.add(_line(src, key), f"{where}: {key} {short(value)}, expected a number {lo:g}..{hi:g}")
        return default
    return float(value)


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


def _proxy_pool(src: Any, where: str, w: _Where) -> str | None:
    """`proxy_pool: PROXY/POOL`: the proxy's `report_name` and the pool of its config (docs/proxy.md)."""
    if not isinstance(src, SourceMap) or "proxy_pool" not in src:
        return None
    value = src["proxy_pool"]
    if not isinstance(value, str) or not PROXY_POOL.fullmatch(value):
        w.add(src.line_of("proxy_pool"), f"{where}: proxy_pool {short(value)}, expected PROXY/POOL (the proxy's "
                                         "report_name and a pool of its config, e.g. eu-1/app)")
        return None
    return value


def _endpoint(src: Any, where: str, w: _Where, line: int) -> Endpoint | None:
    if isinstance(src, str):
        src_map: Any = {"address": src}
    elif isinstance(src, SourceMap):
        src_map = src
        for key in src:
            if key not in ENDPOINT_KEYS:
                w.add(src.line_of(key), f"{where}: unknown key {short(key)} (known: {', '.join(sorted(ENDPOINT_KEYS))})")
    else:
        w.add(line, f"{where}: expected {{address: IP, weight: N}}, got {short(src)}")
        return None
    try:
        address = str(ipaddress.ip_address(str(src_map.get("address", "")).strip()))
    except ValueError:
        w.add(_line(src_map, "address") or line, f"{where}: address {short(src_map.get('address'))} is not an IP address")
        return None
    weight = _int(src_map, "weight", 1, 0, MAX_WEIGHT, where, w) if isinstance(src_map, SourceMap) else 1
    status = _choice(src_map, "status", STATUSES, "auto", where, w) if isinstance(src_map, SourceMap) else "auto"
    check_address = check_port = None
    if isinstance(src_map, SourceMap) and "check_address" in src_map:
        try:
            check_address = str(ipaddress.ip_address(str(src_map["check_address"]).strip()))
        except ValueError:
            w.add(src_map.line_of("check_address"),
                  f"{where}: check_address {short(src_map['check_address'])} is not an IP address")
    if isinstance(src_map, SourceMap) and "check_port" in src_map:
        check_port = _int(src_map, "check_port", 0, 1, 65535, where, w) or None
    return Endpoint(address=address, weight=weight, status=status, check_address=check_address,
                    check_port=check_port, proxy_pool=_proxy_pool(src_map, where, w))


def _site(name: str, src: Any, where: str, regions: Regions, w: _Where, line: int,
          unlocated: list[tuple[int, str]]) -> Site | None:
    """A site; when it has no coordinates, (line, problem) goes to `unlocated`: only a pool that latency
    steering uses needs them (checked in `parse_pools`, once the fallbacks are known)."""
    if not isinstance(src, SourceMap):
        w.add(line, f"{where}: expected a mapping with endpoints (and region or lat/lon for latency pools)")
        return None
    for key in src:
        if key not in SITE_KEYS:
            w.add(src.line_of(key), f"{where}: unknown key {short(key)} (known: {', '.join(sorted(SITE_KEYS))})")
    region = src.get("region")
    lat, lon = src.get("lat"), src.get("lon")
    if region is not None and lat is None and lon is None and (known := regions.get(str(region))) is not None:
        lat, lon = known.lat, known.lon
    if lat is not None or lon is not None:
        if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)) or isinstance(lat, bool) \
                or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            w.add(src.line_of("lat"), f"{where}: lat {short(lat)} / lon {short(lon)}, expected -90..90 / -180..180")
            lat = lon = None
    elif region is not None:
        unlocated.append((src.line_of("region"), "" if regions.missing else
                          f"{where}: region {short(region)} is not in regions.yaml; give lat/lon too"))
    else:
        unlocated.append((line, f"{where}: needs a region (from regions.yaml) or lat and lon"))
    raw = src.get("endpoints")
    if not isinstance(raw, list) or not raw:
        w.add(src.line_of("endpoints"), f"{where}: endpoints must be a non-empty list")
        raw = SourceList()
    endpoints = []
    for i, item in enumerate(raw):
        endpoint = _endpoint(item, f"{where} endpoint {i + 1}", w, _line(raw, i))
        if endpoint is None:
            continue
        if any(e.address == endpoint.address for e in endpoints):
            w.add(_line(raw, i), f"{where} endpoint {i + 1}: address {endpoint.address} listed twice")
            continue
        endpoints.append(endpoint)
    return Site(
        name=name, endpoints=tuple(endpoints), region=None if region is None else str(region),
        lat=None if lat is None else float(lat), lon=None if lon is None else float(lon),
        status=_choice(src, "status", STATUSES, "auto", where, w),
        weight=_int(src, "weight", 1, 0, MAX_WEIGHT, where, w),
        proxy_pool=_proxy_pool(src, where, w),
    )


def _check_overrides(check: Any, sites_src: Any, where: str, w: _Where) -> None:
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
              w: _Where) -> tuple[str, int, int, int] | None:
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


def _site_list(value: Any, site_names: set[str], where: str, w: _Where, line: int) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if item not in site_names:
            w.add(line, f"{where}: site {short(item)} does not exist (sites: {', '.join(sorted(site_names))})")
        elif item not in out:
            out.append(item)
    return tuple(out)


def _pool(name: str, src: SourceMap, regions: Regions, w: _Where) -> Pool | None:
    where = f"pool {short(name)}"
    for key in src:
        if key not in POOL_KEYS:
            w.add(src.line_of(key), f"{where}: unknown key {short(key)} (known: {', '.join(sorted(POOL_KEYS))})")
    sites_src = src.get("sites")
    sites = []
    if not isinstance(sites_src, SourceMap) or not sites_src:
        w.add(src.line_of("sites"), f"{where}: sites must be a non-empty mapping of site name -> site")
    else:
        for site_name, site_src in sites_src.items():
            site = _site(str(site_name), site_src, f"{where} site {short(site_name)}", regions, w,
                         sites_src.line_of(site_name), w.unlocated.setdefault(name, []))
            if site is not None:
                sites.append(site)
    names = {s.name for s in sites}
    policy = _choice(src, "policy", POLICIES, "latency", where, w)
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
    fallback = src.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        w.add(src.line_of("fallback"), f"{where}: fallback must name a pool")
        fallback = None
    capacity = _choice(src, "capacity", CAPACITY, "fixed", where, w)
    if capacity == "follow" and not any(Pool.proxy_pool_of(s, e) for s in sites for e in s.endpoints):
        w.add(src.line_of("capacity"), f"{where}: capacity: follow needs proxy_pool on its sites or endpoints "
                                       "(the proxy pool whose backend weight each site follows)")
    return Pool(
        name=name, sites=tuple(sites), policy=policy,
        ttl=_int(src, "ttl", 30, 0, 86400, where, w),
        answers=_int(src, "answers", 1, 1, 64, where, w),
        fallback=fallback,
        all_down=_choice(src, "all_down", ALL_DOWN, "serve_all", where, w),
        affinity=_choice(src, "affinity", AFFINITY, "none", where, w),
        check=check, geo=tuple(geo), order=order or tuple(s.name for s in sites),
        latency_margin_ms=_number(src, "latency_margin_ms", DEFAULT_MARGIN_MS, 0, 10_000, where, w),
        latency_margin_pct=_number(src, "latency_margin_pct", DEFAULT_MARGIN_PCT, 0, 100, where, w),
        nets=build_net_table(nets),
        capacity=capacity,
        capacity_floor=_number(src, "capacity_floor", DEFAULT_CAPACITY_FLOOR, 0.01, 1, where, w),
    )


def _check_locations(pools: dict[str, Pool], regions: Regions, w: _Where) -> None:
    """Sites of latency pools need coordinates (a region of regions.yaml, or lat/lon): the estimates are
    distances from the client. Other policies never look at where a site is, so theirs may leave it out
    (a fallback pool decides by its own policy, so it needs them only if it is a latency pool itself).
    A missing regions.yaml is one problem naming the path, not one per site."""
    for pool in pools.values():
        if pool.policy != "latency":
            continue
        for line, what in w.unlocated.get(pool.name, ()):
            if not what:
                problem = missing_problem(regions)
                if problem not in w.problems:
                    w.problems.append(problem)
            else:
                w.add(line, f"{what} (policy latency estimates the RTT from where each site is)")


def parse_pools(src: Any, file: str, regions: Regions, problems: list[Problem]) -> dict[str, Pool]:
    """Pools of one zone file; problems are appended (with file:line), never raised."""
    w = _Where(file, problems)
    if not isinstance(src, SourceMap):
        w.add(0, "pools must be a mapping of pool name -> pool")
        return {}
    pools: dict[str, Pool] = {}
    for name, pool_src in src.items():
        if not isinstance(pool_src, SourceMap):
            w.add(src.line_of(name), f"pool {short(name)}: expected a mapping with policy and sites")
            continue
        pool = _pool(str(name), pool_src, regions, w)
        if pool is not None:
            pools[pool.name] = pool
    _check_locations(pools, regions, w)
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
