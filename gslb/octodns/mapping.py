"""octoDNS records <-> a gslb zone file's `records:` and `pools:` (docs/migrating.md, "octoDNS").

Both directions work on plain data: an octoDNS record is (name, type, data) where data is what octoDNS's
YAML holds for it (`ttl`, `value`/`values`, `dynamic`, `octodns`); a gslb zone is the mapping its YAML
holds. The provider (gslb.octodns.provider) turns these into octoDNS Record objects and files.

A dynamic A/AAAA record becomes one gslb pool named after the record:
- each octoDNS pool is a site of the same name, its values the endpoints (weight, status up/down/obey ->
  up/down/auto);
- the record's own `values`, which octoDNS serves when every pool of a rule is down, are the site
  `values`, forced up, tried last;
- each rule is one `geo:` entry per geo (`EU`, `DE`, `US-CA`) and per subnet (`net:10.0.0.0/8`), the
  catch-all rule is `default`; each entry lists the rule's pool, then its fallback chain, then `values`;
- `octodns.healthcheck` is the pool's `check:`.
What gslb adds beyond that (answers, all_down, check intervals, headers ...) travels in the record's
`octodns: {gslb: {pool: {...}, check: {...}}}`, so a round trip loses nothing.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from octodns.record.geo import GeoCodes

from gslb.config.names import NameError_, absolute
from gslb.config.pools import CONTINENTS, geo_key_kind

STATIC_TYPES = ("NS", "A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "PTR")
DYNAMIC_TYPES = ("A", "AAAA")
VALUES_SITE = "values"              # the site holding the record's default values
DEFAULT_ZONE_TTL = 3600
DEFAULT_POOL_TTL = 30
# octoDNS's healthcheck defaults (octodns.record.base.Record.healthcheck_*)
OCTO_PROTOCOL, OCTO_PORT, OCTO_PATH = "HTTPS", 443, "/_dns"
PROTOCOL_TO_CHECK = {"HTTP": "http", "HTTPS": "https", "TCP": "tcp"}
CHECK_TO_PROTOCOL = {v: k for k, v in PROTOCOL_TO_CHECK.items()}
# Pool and check keys the mapping itself writes; any other key travels in `octodns.gslb`.
MAPPED_POOL_KEYS = frozenset({"policy", "ttl", "sites", "geo", "order", "check"})
MAPPED_CHECK_KEYS = frozenset({"type", "port", "path", "host"})
GSLB_EXTRA_KEYS = frozenset({"pool", "check", "values_site"})


class MappingError(ValueError):
    """A record (named in the message) that gslb's zone format cannot express, or the other way round."""


@dataclass
class OctoRecord:
    """One octoDNS record as plain data: `name` relative to the zone ("" for the apex)."""

    name: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> list[Any]:
        if "values" in self.data:
            return list(self.data["values"])
        return [self.data["value"]] if self.data.get("value") is not None else []


def plain(value: Any) -> Any:
    """octoDNS value objects (str/dict/list subclasses) as plain YAML-safe data."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def _where(origin: str, name: str, rtype: str | None = None) -> str:
    fqdn = f"{name}.{origin}" if name else origin
    return f"{fqdn} {rtype}" if rtype else fqdn


# --- octoDNS -> gslb ---------------------------------------------------------------------------------


def _static_items(rec: OctoRecord) -> list[Any]:
    values = [plain(v) for v in rec.values]
    if rec.type == "TXT":
        # octoDNS keeps ';' escaped inside TXT values; gslb's TXT is the text itself
        return [v.replace("\\;", ";") for v in values]
    if rec.type == "CAA":
        return [{"flags": v.get("flags", 0), "tag": v["tag"], "value": v["value"]} for v in values]
    if rec.type == "MX":
        return [{"preference": v["preference"], "exchange": v["exchange"]} for v in values]
    if rec.type == "SRV":
        return [{"priority": v["priority"], "weight": v["weight"], "port": v["port"], "target": v["target"]}
                for v in values]
    return values


def geo_from_octodns(code: str) -> str:
    """An octoDNS geo code (`EU`, `EU-DE`, `NA-US-CA`) as a gslb `geo:` key (`EU`, `DE`, `US-CA`)."""
    parts = code.split("-")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        # A country code that is also a continent code (AS: American Samoa) needs the explicit form.
        return f"country:{parts[1]}" if parts[1] in CONTINENTS else parts[1]
    return f"{parts[1]}-{parts[2]}"


def _check(rec: OctoRecord, where: str, fqdn: str) -> dict[str, Any] | None:
    octo = rec.data.get("octodns") or {}
    extras = (octo.get("gslb") or {})
    if "check" in extras and extras["check"] is None:
        return None                 # the gslb pool had no check: nothing is probed
    hc = octo.get("healthcheck") or {}
    protocol = hc.get("protocol", OCTO_PROTOCOL)
    if protocol not in PROTOCOL_TO_CHECK:
        raise MappingError(f"{where}: healthcheck protocol {protocol} has no gslb check "
                           f"(gslb checks: HTTP, HTTPS, TCP)")
    check: dict[str, Any] = {"type": PROTOCOL_TO_CHECK[protocol], "port": int(hc.get("port", OCTO_PORT))}
    if protocol in ("HTTP", "HTTPS"):
        check["path"] = hc.get("path", OCTO_PATH)
        # octoDNS asks with the record's name as Host unless told otherwise
        check["host"] = hc.get("host") or fqdn.rstrip(".")
    for key, value in (extras.get("check") or {}).items():
        if key in ("type", "port", "path"):
            raise MappingError(f"{where}: octodns.gslb.check.{key}: set it in octodns.healthcheck")
        if value is None:
            check.pop(key, None)    # e.g. host: null -> the endpoint's address is the Host header
        else:
            check[key] = value
    return check


def _dynamic_signature(rec: OctoRecord) -> tuple:
    dyn = rec.data["dynamic"]
    fallbacks = {pid: (p.get("fallback") if p.get("fallback") != "default" else None)
                 for pid, p in dyn["pools"].items()}
    return (rec.data["ttl"], repr(plain(dyn["rules"])), repr(sorted(fallbacks.items())),
            repr(plain((rec.data.get("octodns") or {}).get("healthcheck"))),
            repr(plain((rec.data.get("octodns") or {}).get("gslb"))))


def _pool_from_dynamic(origin: str, name: str, recs: list[OctoRecord]) -> dict[str, Any]:
    """One gslb pool from the dynamic A and/or AAAA records of one name."""
    where = _where(origin, name, "/".join(r.type for r in recs))
    if len({_dynamic_signature(r) for r in recs}) > 1:
        raise MappingError(f"{where}: the A and AAAA dynamic records differ in ttl, rules, fallbacks or "
                           f"healthcheck; gslb answers both from one pool, so they must match")
    first = recs[0]
    octo = first.data.get("octodns") or {}
    extras = octo.get("gslb") or {}
    unknown = set(extras) - GSLB_EXTRA_KEYS
    if unknown:
        raise MappingError(f"{where}: octodns.gslb: unknown key {min(unknown)} "
                           f"(known: {', '.join(sorted(GSLB_EXTRA_KEYS))})")
    dyn = first.data["dynamic"]
    pool_ids = sorted({pid for r in recs for pid in r.data["dynamic"]["pools"]})
    with_values = extras.get("values_site", True) is not False
    if with_values and VALUES_SITE in pool_ids:
        raise MappingError(f"{where}: an octoDNS pool may not be named {VALUES_SITE!r} here: gslb keeps the "
                           f"record's default values in the site of that name")
    sites: dict[str, Any] = {}
    for pid in pool_ids:
        endpoints = []
        for rec in recs:
            pool = rec.data["dynamic"]["pools"].get(pid)
            if pool is None:
                raise MappingError(f"{where}: pool {pid} is in one of A/AAAA only")
            for value in pool["values"]:
                endpoint: dict[str, Any] = {"address": str(value["value"])}
                if int(value.get("weight", 1)) != 1:
                    endpoint["weight"] = int(value["weight"])
                status = value.get("status", "obey")
                if status != "obey":
                    endpoint["status"] = status
                endpoints.append(endpoint)
        sites[pid] = {"endpoints": sorted(endpoints, key=_address_key)}
    fallbacks = {pid: p.get("fallback") for pid, p in dyn["pools"].items()}
    if with_values:
        values = sorted((str(v) for r in recs for v in r.values), key=_ip_key)
        if not values:
            raise MappingError(f"{where}: a dynamic record needs values (served when every pool is down)")
        sites[VALUES_SITE] = {"endpoints": [{"address": v, "status": "up"} for v in values]}
    geo: dict[str, list[str]] = {}
    for i, rule in enumerate(dyn["rules"]):
        chain, current = [], rule["pool"]
        while current not in (None, "default"):
            chain.append(current)
            current = fallbacks.get(current)
        if with_values:
            chain.append(VALUES_SITE)
        keys = [f"net:{s}" for s in sorted(rule.get("subnets") or [])]
        keys += [geo_from_octodns(g) for g in sorted(rule.get("geos") or [])]
        if not keys:
            if i != len(dyn["rules"]) - 1:
                raise MappingError(f"{where}: rule {i + 1} matches everyone but is not the last rule")
            keys = ["default"]
        for key in keys:
            geo[key] = chain
    pool: dict[str, Any] = {"policy": "geo", "ttl": int(first.data["ttl"])}
    check = _check(first, where, _where(origin, name))
    if check is not None:
        pool["check"] = check
    for key, value in (extras.get("pool") or {}).items():
        if key in MAPPED_POOL_KEYS:
            raise MappingError(f"{where}: octodns.gslb.pool.{key} is written from the record itself")
        pool[key] = value
    pool["sites"] = sites
    pool["geo"] = geo
    return pool


def _ip_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def _address_key(endpoint: dict[str, Any]) -> tuple[int, int]:
    return _ip_key(endpoint["address"])


def _pool_name(name: str) -> str:
    return name or "@"


def to_gslb(origin: str, records: list[OctoRecord], zone_ttl: int = DEFAULT_ZONE_TTL) -> tuple[dict, dict]:
    """(records, pools) of a gslb zone file holding `records`.

    :raises MappingError: naming the first record gslb's format cannot express.
    """
    by_name: dict[str, list[OctoRecord]] = {}
    for rec in records:
        by_name.setdefault(rec.name, []).append(rec)
    out_records: dict[str, Any] = {}
    out_pools: dict[str, Any] = {}
    for name in sorted(by_name, key=_name_key):
        recs = sorted(by_name[name], key=lambda r: STATIC_TYPES.index(r.type) if r.type in STATIC_TYPES else 99)
        dynamic = [r for r in recs if r.data.get("dynamic")]
        static = [r for r in recs if not r.data.get("dynamic")]
        entry: dict[str, Any] = {}
        for rec in dynamic:
            if rec.type not in DYNAMIC_TYPES:
                raise MappingError(f"{_where(origin, name, rec.type)}: dynamic {rec.type} records have no gslb "
                                   f"equivalent (gslb pools answer A and AAAA)")
        if dynamic:
            clash = [r.type for r in static if r.type in ("A", "AAAA", "CNAME")]
            if clash:
                raise MappingError(f"{_where(origin, name, clash[0])}: a static {clash[0]} beside a dynamic "
                                   f"{dynamic[0].type}: gslb answers A and AAAA of a name from its pool; "
                                   f"make the {clash[0]} dynamic too (same rules)")
            out_pools[_pool_name(name)] = _pool_from_dynamic(origin, name, dynamic)
            entry["pool"] = _pool_name(name)
        ttls = {int(r.data["ttl"]) for r in static}
        if len(ttls) > 1:
            detail = ", ".join(f"{r.type} {r.data['ttl']}" for r in static)
            raise MappingError(f"{_where(origin, name)}: TTLs differ by type ({detail}); a gslb zone file has one "
                               f"ttl per name: give these records the same ttl")
        for rec in static:
            if rec.type not in STATIC_TYPES:
                raise MappingError(f"{_where(origin, name, rec.type)}: gslb zone files have no {rec.type} records")
            items = _static_items(rec)
            entry[rec.type] = items[0] if len(items) == 1 else items
        if ttls and ttls != {zone_ttl}:
            entry["ttl"] = ttls.pop()
        out_records["@" if not name else name] = entry
    return out_records, out_pools


def _name_key(name: str) -> tuple:
    # the apex first, then names sorted from the top label down (svc, a.svc, b.svc, www)
    return (name != "", list(reversed(name.split("."))))


def common_ttl(records: list[OctoRecord]) -> int:
    """The most common TTL of static records: a new zone file's `ttl`, so few names need their own."""
    counts = Counter(int(r.data["ttl"]) for r in records if not r.data.get("dynamic"))
    if not counts:
        return DEFAULT_ZONE_TTL
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


# --- gslb -> octoDNS ---------------------------------------------------------------------------------


def _relative(name: str, origin: str, where: str) -> str:
    try:
        full = absolute(str(name), origin)
    except NameError_ as exc:
        raise MappingError(f"{where}: {exc}") from None
    if full == origin:
        return ""
    if not full.endswith("." + origin):
        raise MappingError(f"{where}: {name} is outside the zone {origin}")
    return full[: -len(origin) - 1]


def _target(value: Any, origin: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}: expected a domain name, got {value!r}")
    if value.strip() == ".":
        return "."
    try:
        return absolute(value, origin)
    except NameError_ as exc:
        raise MappingError(f"{where}: {exc}") from None


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def _octo_values(rtype: str, raw: Any, origin: str, where: str) -> list[Any]:
    items = _as_list(raw)
    out: list[Any] = []
    for item in items:
        if rtype in ("A", "AAAA"):
            out.append(str(ipaddress.ip_address(str(item))))
        elif rtype in ("CNAME", "NS", "PTR"):
            out.append(_target(item, origin, where))
        elif rtype == "TXT":
            out.append(str(item).replace(";", "\\;"))
        elif rtype == "MX":
            if isinstance(item, str):
                pref, exchange = item.split(None, 1)
                item = {"preference": int(pref), "exchange": exchange}
            out.append({"preference": int(item["preference"]),
                        "exchange": _target(item["exchange"], origin, where)})
        elif rtype == "SRV":
            out.append({"priority": int(item["priority"]), "weight": int(item["weight"]),
                        "port": int(item["port"]), "target": _target(item["target"], origin, where)})
        elif rtype == "CAA":
            out.append({"flags": int(item.get("flags", 0)), "tag": str(item["tag"]), "value": str(item["value"])})
    return out


def geo_to_octodns(key: str, where: str) -> str:
    """A gslb `geo:` key (EU, DE, country:AS, US-CA) as an octoDNS geo code (EU, EU-DE, OC-AS, NA-US-CA)."""
    kind = geo_key_kind(key)
    code = key.split(":", 1)[1] if ":" in key else key
    if kind == "continent":
        return code
    country = code.split("-", 1)[0]
    prefix = GeoCodes.country_to_code(country)
    if prefix is None:
        raise MappingError(f"{where}: geo {key}: octoDNS does not know the country {country}")
    return prefix if kind == "country" else f"{prefix}-{code.split('-', 1)[1]}"


def _healthcheck(check: Any, fqdn: str, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(octodns.healthcheck, octodns.gslb.check) for a gslb check; (.., None) when nothing is extra."""
    if not isinstance(check, dict):
        raise MappingError(f"{where}: check must be a mapping")
    ctype = check.get("type", "http")
    if ctype not in CHECK_TO_PROTOCOL:
        raise MappingError(f"{where}: check type {ctype} has no octoDNS healthcheck protocol (HTTP, HTTPS, TCP)")
    protocol = CHECK_TO_PROTOCOL[ctype]
    port = int(check.get("port") or {"http": 80, "https": 443}.get(ctype, 0))
    hc: dict[str, Any] = {}
    if protocol != OCTO_PROTOCOL:
        hc["protocol"] = protocol
    if port != OCTO_PORT:
        hc["port"] = port
    extra = {k: plain(v) for k, v in check.items() if k not in MAPPED_CHECK_KEYS}
    if ctype in ("http", "https"):
        path = check.get("path", "/")
        if path != OCTO_PATH:
            hc["path"] = path
        host = check.get("host")
        if host is None:
            extra["host"] = None        # gslb's default Host is the address; octoDNS's is the record name
        elif host != fqdn.rstrip("."):
            hc["host"] = host
    return hc, (extra or None)


def _chains(pool: dict[str, Any], where: str) -> list[tuple[str, list[str]]]:
    """(geo key, site chain) in file order; failover and single-site weighted pools as one `default`."""
    policy = pool.get("policy", "latency")
    sites = list(pool.get("sites") or {})
    if policy == "geo":
        geo = pool.get("geo") or {}
        if "default" not in geo:
            raise MappingError(f"{where}: a geo pool needs a default rule for octoDNS (its last, catch-all rule)")
        return [(str(k), [str(s) for s in _as_list(v)]) for k, v in geo.items()]
    if policy == "failover":
        return [("default", [str(s) for s in _as_list(pool.get("order") or sites)])]
    if policy == "weighted" and len(sites) == 1:
        return [("default", sites)]
    raise MappingError(f"{where}: policy {policy} has no octoDNS equivalent (octoDNS dynamic records "
                       f"express geo, subnet and failover rules over weighted pools)")


def _rules(chains: list[tuple[str, list[str]]], values_site: bool, where: str) -> tuple[list[dict], dict]:
    """octoDNS rules and pool fallbacks from the gslb chains."""
    fallback: dict[str, str | None] = {}
    rules: dict[str, dict[str, Any]] = {}
    default_rule: dict[str, Any] | None = None
    for key, chain in chains:
        if values_site:
            if chain[-1:] != [VALUES_SITE]:
                raise MappingError(f"{where}: geo {key}: the list must end with the site {VALUES_SITE}, the "
                                   f"record's default values")
            chain = chain[:-1]
        if not chain or VALUES_SITE in chain and values_site:
            raise MappingError(f"{where}: geo {key}: needs a site before {VALUES_SITE}")
        for here, nxt in zip(chain, chain[1:] + [None]):
            if fallback.setdefault(here, nxt) != nxt:
                raise MappingError(f"{where}: geo {key}: site {here} is followed by {nxt} here but by "
                                   f"{fallback[here]} in another rule; octoDNS has one fallback per pool")
        if key == "default":
            default_rule = {"pool": chain[0]}
            continue
        rule = rules.setdefault(chain[0], {"pool": chain[0]})
        if key.startswith("net:"):
            rule.setdefault("subnets", []).append(key[4:])
        else:
            rule.setdefault("geos", []).append(geo_to_octodns(key, where))
    ordered = sorted(rules.values(), key=lambda r: 0 if "geos" not in r else 1 if "subnets" in r else 2)
    for rule in ordered:
        for k in ("geos", "subnets"):
            if k in rule:
                rule[k] = sorted(rule[k])
    if default_rule is None:
        raise MappingError(f"{where}: needs a default rule")
    return ordered + [default_rule], fallback


def _dynamic_from_pool(origin: str, name: str, pool_name: str, pool: Any) -> list[OctoRecord]:
    """The dynamic A and/or AAAA records of one name answered by a gslb pool."""
    where = f"{_where(origin, name)} (pool {pool_name})"
    if not isinstance(pool, dict) or not isinstance(pool.get("sites"), dict):
        raise MappingError(f"{where}: not a pool with sites")
    sites: dict[str, Any] = pool["sites"]
    values_site = VALUES_SITE in sites
    chains = _chains(pool, where)
    rules, fallback = _rules(chains, values_site, where)
    for site_name, site in sites.items():
        if not isinstance(site, dict):
            raise MappingError(f"{where}: site {site_name} is not a mapping")
        for key in set(site) - {"endpoints", "region", "lat", "lon"}:
            if key == "weight" and site[key] == 1 or key == "status" and site[key] == "auto":
                continue
            raise MappingError(f"{where}: site {site_name}: {key} has no octoDNS equivalent")
        if site_name != VALUES_SITE and site_name not in fallback:
            raise MappingError(f"{where}: site {site_name} is in no rule")
    octo: dict[str, Any] = {}
    gslb_extra: dict[str, Any] = {}
    if pool.get("check") is None:
        gslb_extra["check"] = None
    else:
        hc, extra = _healthcheck(pool["check"], _where(origin, name), where)
        if hc:
            octo["healthcheck"] = hc
        if extra:
            gslb_extra["check"] = extra
    pool_extra = {k: plain(v) for k, v in pool.items() if k not in MAPPED_POOL_KEYS}
    if pool_extra:
        gslb_extra["pool"] = pool_extra
    if not values_site:
        gslb_extra["values_site"] = False
    if gslb_extra:
        octo["gslb"] = gslb_extra
    out = []
    for rtype, version in (("A", 4), ("AAAA", 6)):
        pools: dict[str, Any] = {}
        for site_name, site in sites.items():
            if site_name == VALUES_SITE:
                continue
            values = []
            for item in _as_list(site.get("endpoints") or []):
                ep = {"address": item} if isinstance(item, str) else dict(item)
                for key in sorted(set(ep) - {"address", "weight", "status"}):
                    raise MappingError(f"{where}: site {site_name} endpoint {ep.get('address')}: {key} has no "
                                       f"octoDNS equivalent")
                address = str(ipaddress.ip_address(str(ep["address"])))
                if ipaddress.ip_address(address).version != version:
                    continue
                weight = int(ep.get("weight", 1))
                if not 1 <= weight <= 100:
                    raise MappingError(f"{where}: site {site_name} endpoint {address}: weight {weight}, "
                                       f"octoDNS takes 1..100")
                status = {"auto": "obey"}.get(ep.get("status", "auto"), ep.get("status", "auto"))
                values.append({"value": address, "weight": weight, "status": status})
            if values:
                pools[site_name] = {"values": values, "fallback": fallback.get(site_name)}
        if not pools:
            continue
        missing = sorted(s for s in fallback if s not in pools)
        if missing:
            raise MappingError(f"{where}: site {missing[0]} has no {rtype} endpoint while others do; octoDNS "
                               f"needs every pool of the {rtype} record to hold {rtype} values")
        if values_site:
            defaults = [str(ipaddress.ip_address(str(e if isinstance(e, str) else e["address"])))
                        for e in _as_list(sites[VALUES_SITE].get("endpoints") or [])]
        else:
            last = rules[-1]["pool"]
            while fallback.get(last):
                last = fallback[last]
            defaults = [v["value"] for v in pools[last]["values"]]
        defaults = sorted((v for v in defaults if ipaddress.ip_address(v).version == version), key=_ip_key)
        if not defaults:
            raise MappingError(f"{where}: no {rtype} address in the site {VALUES_SITE}")
        data: dict[str, Any] = {"ttl": int(pool.get("ttl", DEFAULT_POOL_TTL)), "values": defaults,
                                "dynamic": {"pools": pools, "rules": [dict(r) for r in rules]}}
        if octo:
            data["octodns"] = octo
        out.append(OctoRecord(name, rtype, data))
    if not out:
        raise MappingError(f"{where}: the pool has no endpoint")
    return out


def from_gslb(origin: str, zone: dict[str, Any]) -> list[OctoRecord]:
    """The octoDNS records of a gslb zone file (its YAML as plain data).

    :raises MappingError: naming the first record octoDNS cannot express.
    """
    zone_ttl = int(zone.get("ttl", DEFAULT_ZONE_TTL))
    pools = zone.get("pools") or {}
    out: list[OctoRecord] = []
    records = zone.get("records") or {}
    if not isinstance(records, dict):
        raise MappingError(f"{origin}: records must be a mapping")
    for raw_name, entry in records.items():
        name = _relative(str(raw_name), origin, f"{origin}: record {raw_name}")
        where = _where(origin, name)
        if not isinstance(entry, dict):
            raise MappingError(f"{where}: expected a mapping of record types")
        ttl = int(entry.get("ttl", zone_ttl))
        for key, raw in entry.items():
            if key == "ttl":
                continue
            if key == "pool":
                if raw not in pools:
                    raise MappingError(f"{where}: pool {raw} is not defined in this zone file")
                out.extend(_dynamic_from_pool(origin, name, str(raw), pools[raw]))
                continue
            if key not in STATIC_TYPES:
                raise MappingError(f"{where}: unknown record type {key}")
            try:
                values = _octo_values(key, raw, origin, f"{where} {key}")
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, MappingError):
                    raise
                raise MappingError(f"{where} {key}: cannot read {raw!r}: {exc}") from None
            data: dict[str, Any] = {"ttl": ttl}
            if key == "CNAME":
                data["value"] = values[0]
            else:
                data["values"] = values
            out.append(OctoRecord(name, key, data))
    return out
