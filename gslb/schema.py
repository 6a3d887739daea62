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

from gslb.config import api, overrides, pools, zone
from gslb.config.check import CHECK_FIELDS
from gslb.config.dnslimits import TCP_FIELDS, TcpLimits
from gslb.config.health import HEALTH_FIELDS, HealthSettings
from gslb.config.kit import HOSTPORT_PATTERN, Int, object_schema
from gslb.config.limits import LIMIT_FIELDS
from gslb.config.model import Check, Endpoint, Pool, Site, ZoneLimits
from gslb.config.notify import notify_schema
from gslb.config.registry import ALGORITHMS, CHECK_TYPES, POLICIES, RECORD_TYPES, Registry
from gslb.config.rrl import RRL_FIELDS, RateLimitSettings
from gslb.config.server import SERVER_FIELDS, ServerConfig
from gslb.proxy import config as proxy

FILES = ("zone", "server", "overrides", "proxy")

_STR = {"type": "string", "minLength": 1}
_NAMES = {"type": "array", "items": {"type": "string"}}


def _described(schema: dict, key: str, registry: Registry) -> dict:
    """`schema` with what each name of `key` (a registry's choice) does in its description."""
    schema["properties"][key]["description"] = "; ".join(f"{n}: {what}" for n, what in registry.descriptions.items())
    return schema


def _one_or_list(item: dict) -> dict:
    return {"anyOf": [item, {"type": "array", "minItems": 1, "items": item}]}


def check_schema() -> dict:
    """`check:` of a zone pool or a proxy pool (gslb/config/check.py)."""
    out = _described(object_schema(CHECK_FIELDS, Check()), "type", CHECK_TYPES)
    out["allOf"] = [{"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                     "then": {"required": [key]}} for kind, key in (("tcp", "port"), ("file", "path"))]
    return {"anyOf": [out, {"type": "null"}, {"const": False}]}


def _pool_schema() -> dict:
    endpoint = object_schema(pools.ENDPOINT_FIELDS, Endpoint(""), required=("address",))
    site = object_schema(pools.SITE_FIELDS, Site("", ()), required=("endpoints",), extra={
        "endpoints": {"type": "array", "minItems": 1, "items": {"anyOf": [_STR, endpoint]}}})
    return _described(object_schema(pools.POOL_FIELDS, Pool("", ()), required=("sites",), extra={
        "check": check_schema(), "sites": {"type": "object", "minProperties": 1, "additionalProperties": site},
        "geo": {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"}, _NAMES]},
                "description": "net:CIDR, subdivision (US-CA), country (DE), continent (EU) or default -> sites"},
        "order": {"anyOf": [{"type": "string"}, _NAMES]}}), "policy", POLICIES)


def _record_values() -> dict[str, dict]:
    """Each record type of the registry -> the schema of one value (a list of them is allowed too)."""
    name = {"type": "string", "minLength": 1}
    u16 = Int(0, 65535).schema()
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
                "properties": {"flags": Int(0, 255).schema(), "tag": {"type": "string", "pattern": "^[A-Za-z0-9]{1,15}$"},
                               "value": {"type": "string"}}},
    }
    if set(values) != set(RECORD_TYPES):
        raise AssertionError(f"record types out of step with the registry: {sorted(set(values) ^ set(RECORD_TYPES))}")
    return {rtype: values[rtype] | {"description": RECORD_TYPES.descriptions[rtype]} for rtype in RECORD_TYPES}


def zone_schema() -> dict:
    """A zone file (docs/zone-format.md)."""
    entry: dict = {"ttl": zone.TTL.schema(), "pool": _STR}
    for rtype, value in _record_values().items():
        for spelling in (rtype, rtype.lower()):           # record types are read in any case
            entry[spelling] = _one_or_list(value) | {"description": value["description"]}
    return object_schema(zone.ZONE_FIELDS, required=("origin", "soa", "records"), extra={
        "soa": object_schema(zone.SOA_FIELDS, required=("mname", "rname")),
        "records": {"type": "object", "additionalProperties": {
            "type": "object", "properties": entry, "additionalProperties": False}},
        "pools": {"type": ["object", "null"], "additionalProperties": _pool_schema()}})


def server_schema() -> dict:
    """The server config (docs/server.md)."""
    out = object_schema(SERVER_FIELDS, ServerConfig(node_id="-"), extra={
        "api": {"anyOf": [{"type": ["string", "boolean", "null"]}, object_schema(api.API_FIELDS)]},
        "health": object_schema(HEALTH_FIELDS, HealthSettings()),
        "tcp": object_schema(TCP_FIELDS, TcpLimits()), "rrl": object_schema(RRL_FIELDS, RateLimitSettings()),
        "limits": object_schema(LIMIT_FIELDS, ZoneLimits()), "notify": notify_schema()})
    out["properties"]["node_id"].pop("default", None)          # the host name, not a constant
    return out


def overrides_schema() -> dict:
    """overrides.yaml in the zones directory (docs/overrides.md)."""
    entry = object_schema(overrides.ENTRY_FIELDS, required=("selector", "state", "reason"))
    return {"type": ["object", "null"], "properties": {
        "overrides": {"type": ["array", "null"], "maxItems": overrides.MAX_ENTRIES, "items": entry}},
        "additionalProperties": False}


def proxy_schema() -> dict:
    """The proxy config (docs/proxy.md)."""
    hostport = {"type": "string", "pattern": HOSTPORT_PATTERN}
    backend = object_schema(proxy.BACKEND_FIELDS, proxy.Backend("", 0), required=("address",))
    pool = object_schema(proxy.POOL_FIELDS, proxy.UpstreamPool("", ()), required=("backends",), extra={
        "backends": {"type": "array", "minItems": 1, "items": {"anyOf": [hostport, backend]}},
        "check": check_schema(), "sticky": object_schema(proxy.STICKY_FIELDS, proxy.Sticky()),
        "outlier": object_schema(proxy.OUTLIER_FIELDS, proxy.Outlier())})
    route = object_schema(proxy.ROUTE_FIELDS, extra={"pools": {"type": "array", "items": object_schema(
        proxy.WEIGHTED_FIELDS, required=("pool",))}})
    listener = {"anyOf": [hostport, {"type": "object", "required": ["address"], "additionalProperties": False,
                                     "properties": {"address": hostport, "tls": {
                                         "type": "object", "required": ["cert", "key"],
                                         "properties": {"cert": _STR, "key": _STR}}}}]}
    access_log = {"anyOf": [{"type": "boolean"}, proxy.ACCESS_LOG_FIELDS["path"].schema(),
                            object_schema(proxy.ACCESS_LOG_FIELDS, proxy.AccessLogConfig())]}
    defaults = proxy.ProxyConfig("", (), ("", 0), {}, ())
    return object_schema(proxy.TOP_FIELDS, defaults, required=("pools", "routes"), extra={
        "access_log": access_log, "listen": _one_or_list(listener), "notify": notify_schema(),
        "pools": {"type": "object", "minProperties": 1, "additionalProperties": _described(pool, "algorithm", ALGORITHMS)},
        "routes": {"type": "array", "minItems": 1, "items": route},
        "timeouts": object_schema(proxy.TIMEOUT_FIELDS, proxy.Timeouts()),
        "limits": object_schema(proxy.LIMIT_FIELDS, proxy.Limits()),
        "rate_limit": object_schema(proxy.RATE_FIELDS)})


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
