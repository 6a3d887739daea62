"""JSON Schemas of gslb's YAML files (zone, server config, overrides, proxy), built from the registries
(gslb/config/registry.py) and the loaders' own declarations (the kit's fields, the key tables), so they
cannot drift from what the loaders accept: a key a loader knows and the schema does not fails here.

    python -m gslb.schema --write schemas/     # regenerate the committed files
    python -m gslb.schema --check schemas/     # exit 1 when they differ (tests/test_schemas.py)

Editors use them with a first line `# yaml-language-server: $schema=<path or URL>/zone.schema.json`.
The schemas describe shapes and ranges; what needs the whole file (a fallback pool that exists, glue
for an in-zone name server, a selector that matches) stays for `gslb check`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from gslb.config import api, check, overrides, pools, zone
from gslb.config.dnslimits import TCP_FIELDS, TcpLimits
from gslb.config.health import HEALTH_FIELDS, HealthSettings
from gslb.config.kit import HOSTPORT_PATTERN, object_schema
from gslb.config.limits import LIMIT_FIELDS
from gslb.config.model import Check, Pool, Site, ZoneLimits
from gslb.config.notify import notify_schema
from gslb.config.registry import ALGORITHMS, CHECK_TYPES, POLICIES, RECORD_TYPES, Registry
from gslb.config.rrl import RRL_FIELDS, RateLimitSettings
from gslb.config.server import SERVER_FIELDS, ServerConfig
from gslb.proxy import config as proxy

FILES = ("zone", "server", "overrides", "proxy")

_STR = {"type": "string", "minLength": 1}
_BOOL = {"type": "boolean"}


def _int(lo: int, hi: int | None = None) -> dict:
    return {"type": "integer", "minimum": lo} | ({} if hi is None else {"maximum": hi})


def _num(lo: float, hi: float | None = None) -> dict:
    return {"type": "number", "minimum": lo} | ({} if hi is None else {"maximum": hi})


def _enum(registry: Registry) -> dict:
    return {"enum": list(registry.names),
            "description": "; ".join(f"{name}: {what}" for name, what in registry.descriptions.items())}


def _one_or_list(item: dict) -> dict:
    return {"anyOf": [item, {"type": "array", "minItems": 1, "items": item}]}


def _object(properties: dict, known: object, where: str, required: tuple[str, ...] = (),
            defaults: object = None) -> dict:
    """A mapping with exactly the keys the loader knows (`known`): a key on one side only is a bug here."""
    missing, extra = set(known) - set(properties), set(properties) - set(known)
    if missing or extra:
        raise AssertionError(f"schema of {where} out of step with its loader: "
                             f"not described {sorted(missing)}, not accepted {sorted(extra)}")
    for key, schema in properties.items():
        default = getattr(defaults, key, None) if defaults is not None else None
        if isinstance(default, (bool, int, float, str)) and "default" not in schema:
            schema["default"] = default
    out = {"type": "object", "properties": properties, "additionalProperties": False}
    return out | ({"required": list(required)} if required else {})


def check_schema() -> dict:
    """`check:` of a zone pool or a proxy pool (gslb/config/check.py)."""
    status = {"anyOf": [_int(100, 599), {"type": "string", "pattern": r"^\s*([1-5][xX][xX]|\d{3}(\s*-\s*\d{3})?)\s*$"}]}
    props = {
        "type": _enum(CHECK_TYPES), "port": _int(1, 65535), "path": _STR, "method": _STR, "host": _STR,
        "expect": {"anyOf": [status, {"type": "array", "minItems": 1, "items": status},
                             {"type": "object", "minProperties": 1, "maxProperties": 1,
                              "properties": {"text": _STR, "regex": _STR}, "additionalProperties": False}],
                   "description": "http(s): codes, \"3xx\" classes, \"200-299\" ranges; tcp: text or {regex: ...}"},
        "body": _STR, "tls_verify": _BOOL, "sni": _STR, "query": _STR, "query_type": _STR,
        "interval": _num(0.2, 3600), "timeout": _num(0.05, 3600), "rise": _int(1, 100), "fall": _int(1, 100),
        "headers": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": ["string", "number"]}},
        "user_agent": _STR, "send": {"type": "string", "minLength": 1}, "missing": {"enum": list(check.MISSING)},
    }
    out = _object(props, check._FIELDS, "check", defaults=Check())
    out["properties"]["expect"].pop("default", None)
    out["allOf"] = [{"if": {"properties": {"type": {"const": "tcp"}}, "required": ["type"]},
                     "then": {"required": ["port"]}},
                    {"if": {"properties": {"type": {"const": "file"}}, "required": ["type"]},
                     "then": {"required": ["path"]}}]
    return {"anyOf": [out, {"type": "null"}, {"const": False}]}


def _proxy_pool() -> dict:
    return {"type": "string", "pattern": f"^{pools.PROXY_POOL.pattern}$",
            "description": "PROXY/POOL: the proxy's report_name and a pool of its config (docs/proxy.md)"}


def _pool_schema() -> dict:
    endpoint = _object({
        "address": _STR, "weight": _int(0, pools.MAX_WEIGHT), "status": {"enum": list(pools.STATUSES)},
        "check_address": _STR, "check_port": _int(1, 65535), "proxy_pool": _proxy_pool()}, pools.ENDPOINT_KEYS, "endpoint", ("address",))
    site = _object({
        "region": {"type": "string"}, "lat": _num(-90, 90), "lon": _num(-180, 180),
        "endpoints": {"type": "array", "minItems": 1, "items": {"anyOf": [_STR, endpoint]}},
        "status": {"enum": list(pools.STATUSES)}, "weight": _int(0, pools.MAX_WEIGHT), "proxy_pool": _proxy_pool()},
        pools.SITE_KEYS, "site", ("endpoints",), Site("", ()))
    sites = {"type": "array", "items": {"type": "string"}}
    return _object({
        "policy": _enum(POLICIES), "ttl": _int(0, 86400), "answers": _int(1, 64), "fallback": _STR,
        "all_down": {"enum": list(pools.ALL_DOWN)}, "affinity": {"enum": list(pools.AFFINITY)},
        "check": check_schema(),
        "sites": {"type": "object", "minProperties": 1, "additionalProperties": site},
        "geo": {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"}, sites]},
                "description": "net:CIDR, subdivision (US-CA), country (DE), continent (EU) or default -> sites"},
        "order": {"anyOf": [{"type": "string"}, sites]},
        "latency_margin_ms": _num(0, 10_000), "latency_margin_pct": _num(0, 100),
        "capacity": {"enum": list(pools.CAPACITY)}, "capacity_floor": _num(0.01, 1)},
        pools.POOL_KEYS, "pool", ("sites",), Pool("", ()))


def _record_values() -> dict[str, dict]:
    """Each record type of the registry -> the schema of one value (a list of them is allowed too)."""
    name = {"type": "string", "minLength": 1}
    u16 = _int(0, 65535)
    values = {
        "NS": name, "CNAME": name, "PTR": name,
        "A": {"type": "string", "format": "ipv4"}, "AAAA": {"type": "string", "format": "ipv6"},
        "TXT": {"type": ["string", "number"]},
        "MX": {"anyOf": [{"type": "string", "pattern": r"^\s*\S+\s+\S+\s*$"},
                         {"type": "object", "required": ["preference", "exchange"],
                          "properties": {"preference": u16, "exchange": name}}]},
        "SRV": {"type": "object", "required": ["priority", "weight", "port", "target"],
                "properties": {"priority": u16, "weight": u16, "port": u16, "target": name}},
        "CAA": {"type": "object", "required": ["tag", "value"],
                "properties": {"flags": _int(0, 255), "tag": {"type": "string", "pattern": "^[A-Za-z0-9]{1,15}$"},
                               "value": {"type": "string"}}},
    }
    if set(values) != set(RECORD_TYPES):
        raise AssertionError(f"record types out of step with the registry: {sorted(set(values) ^ set(RECORD_TYPES))}")
    return {rtype: values[rtype] | {"description": RECORD_TYPES.descriptions[rtype]} for rtype in RECORD_TYPES}


def zone_schema() -> dict:
    """A zone file (docs/zone-format.md)."""
    ttl = _int(0, zone.MAX_TTL)
    entry: dict = {"ttl": ttl, "pool": _STR}
    for rtype, value in _record_values().items():
        for spelling in (rtype, rtype.lower()):           # record types are read in any case
            entry[spelling] = _one_or_list(value) | {"description": value["description"]}
    soa = _object({"mname": _STR, "rname": _STR, "serial": ttl, "refresh": ttl, "retry": ttl, "expire": ttl,
                   "minimum": ttl, "ttl": ttl}, zone.SOA_KEYS, "soa", ("mname", "rname"))
    return _object({
        "origin": _STR, "ttl": ttl, "soa": soa,
        "records": {"type": "object", "additionalProperties": {
            "type": "object", "properties": entry, "additionalProperties": False}},
        "pools": {"type": ["object", "null"], "additionalProperties": _pool_schema()},
        "ecs": _BOOL, "whoami": _BOOL}, zone.ZONE_KEYS, "zone", ("origin", "soa", "records"))


def server_schema() -> dict:
    """The server config (docs/server.md)."""
    api_map = _object({"listen": {"type": ["string", "boolean", "null"]}, "token": _STR, "read_token": _STR},
                      api.API_KEYS, "api")
    nested = {
        "api": {"anyOf": [{"type": ["string", "boolean", "null"]}, api_map]},
        "health": object_schema(HEALTH_FIELDS, HealthSettings()),
        "tcp": object_schema(TCP_FIELDS, TcpLimits()), "rrl": object_schema(RRL_FIELDS, RateLimitSettings()),
        "limits": object_schema(LIMIT_FIELDS, ZoneLimits()), "notify": notify_schema(),
    }
    plain = {key: field for key, field in SERVER_FIELDS.items() if key not in nested}
    out = object_schema(plain, ServerConfig(node_id="-"), extra=nested)
    out["properties"]["node_id"].pop("default", None)          # the host name, not a constant
    out["properties"] = {key: out["properties"][key] for key in SERVER_FIELDS}
    return out


def overrides_schema() -> dict:
    """overrides.yaml in the zones directory (docs/overrides.md)."""
    entry = _object({
        "selector": {"type": "string", "minLength": 1, "description": "[ZONE:]POOL[/SITE[/ADDRESS|CIDR]]"},
        "state": {"enum": ["down", "up"]},
        "reason": {"type": "string", "minLength": 1, "maxLength": overrides.MAX_REASON},
        "until": {"type": "string", "description": "RFC 3339 time with a zone, like 2025-06-01T18:00:00Z"},
        "by": {"type": "string", "minLength": 1, "maxLength": overrides.MAX_BY}},
        overrides.ENTRY_KEYS, "override", ("selector", "state", "reason"))
    return {"type": ["object", "null"], "properties": {
        "overrides": {"type": ["array", "null"], "maxItems": overrides.MAX_ENTRIES, "items": entry}},
        "additionalProperties": False}


def proxy_schema() -> dict:
    """The proxy config (docs/proxy.md)."""
    hostport = {"type": "string", "pattern": HOSTPORT_PATTERN}
    backend = _object({"address": hostport, "weight": _int(0), "drain": _BOOL, "max_connections": _int(0)},
                      proxy.BACKEND_KEYS, "proxy backend", ("address",))
    pool = _object({
        "algorithm": _enum(ALGORITHMS) | {"default": "round_robin"},
        "backends": {"type": "array", "minItems": 1, "items": {"anyOf": [hostport, backend]}},
        "check": check_schema(),
        "sticky": _object({"cookie": {"type": "string", "pattern": "^[^ ;=,\"\\t]+$"}, "ttl": _int(1)},
                          ("cookie", "ttl"), "sticky"),
        "hash": {"type": "string", "pattern": "^(ip|header:.+|cookie:.+)$", "default": "ip"},
        "slow_start": _num(0), "outlier": _object({"failures": _int(1), "ejection": _num(0)},
                                                  ("failures", "ejection"), "outlier"),
        "max_connections": _int(0), "fail_open": _BOOL}, proxy.POOL_KEYS, "proxy pool", ("backends",))
    weighted = _object({"pool": _STR, "weight": _int(0)}, ("pool", "weight"), "route pools item", ("pool",))
    route = _object({
        "name": {"type": "string"}, "host": _STR, "path": {"type": "string", "pattern": "^/"},
        "header": {"anyOf": [{"type": "string", "pattern": ":"},
                             {"type": "object", "minProperties": 1, "maxProperties": 1}]},
        "pool": _STR, "pools": {"type": "array", "items": weighted}, "default": _BOOL}, proxy.ROUTE_KEYS, "route")
    listener = {"anyOf": [hostport, {"type": "object", "required": ["address"], "additionalProperties": False,
                                     "properties": {"address": hostport, "tls": {
                                         "type": "object", "required": ["cert", "key"],
                                         "properties": {"cert": _STR, "key": _STR}}}}]}
    access_log = {"anyOf": [_BOOL, {"type": "string", "pattern": "^(stderr|/.*)$"},
                            _object({"path": {"type": "string", "pattern": "^(stderr|/.*)$"}, "buffer": _int(0),
                                     "flush": _num(0.01)}, ("path", "buffer", "flush"), "access_log")]}
    return _object({
        "listen": _one_or_list(listener), "admin": hostport,
        "pools": {"type": "object", "minProperties": 1, "additionalProperties": pool},
        "routes": {"type": "array", "minItems": 1, "items": route},
        "admin_token": _STR, "sticky_secret": {"type": "string"},
        "timeouts": _object({k: _num(0.01) for k in ("connect", "read", "total", "idle")},
                            ("connect", "read", "total", "idle"), "timeouts"),
        "limits": _object({"max_header_size": _int(1024), "max_body_size": _int(0),
                           "max_response_header_size": _int(1024)},
                          ("max_header_size", "max_body_size", "max_response_header_size"), "limits"),
        "rate_limit": _object({"rate": _num(0.001), "burst": _int(1)}, ("rate", "burst"), "rate_limit"),
        "drain_timeout": _num(0), "retries": _int(0), "access_log": access_log, "fail_open": _BOOL,
        "notify": notify_schema(), "report_to": {"type": "array", "minItems": 1, "items": {
            "type": "string", "pattern": "^https?://"}},
        "report_name": {"type": "string", "pattern": f"^{proxy.REPORT_NAME.pattern}$"},
        "report_key": {"type": "string", "minLength": 1}, "report_region": {"type": "string"},
        "report_interval": _num(0.1, 60)},
        proxy.TOP_KEYS, "proxy", ("pools", "routes"))


_BUILDERS = {"zone": zone_schema, "server": server_schema, "overrides": overrides_schema, "proxy": proxy_schema}
_TITLES = {"zone": "gslb zone file", "server": "gslb server config", "overrides": "gslb overrides.yaml",
           "proxy": "gslb proxy config"}


def schemas() -> dict[str, dict]:
    """file stem -> its JSON Schema (draft 2020-12)."""
    out = {}
    for name in FILES:
        body = _BUILDERS[name]()
        out[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": _TITLES[name]} | body
    return out


def rendered() -> dict[str, str]:
    """file name -> its text, as committed under schemas/."""
    return {f"{name}.schema.json": json.dumps(schema, indent=2, sort_keys=False) + "\n"
            for name, schema in schemas().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gslb.schema", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="DIR", help="write the schemas into DIR")
    mode.add_argument("--check", metavar="DIR", help="exit 1 when the files in DIR differ from the generated ones")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = os.path.join(args.write or args.check, name)
        if args.write:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {path}")
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                same = fh.read() == text
        except OSError:
            same = False
        if not same:
            stale.append(path)
    for path in stale:
        print(f"{path}: differs from the generated schema; run python -m gslb.schema --write {args.check}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
