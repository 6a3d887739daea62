"""The proxy's YAML (docs/proxy.md) -> frozen ProxyConfig; every problem with file:line."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from gslb.config.check import parse_check
from gslb.config.kit import (
    Choice,
    Custom,
    Field,
    Flag,
    HostPort,
    Int,
    Invalid,
    Number,
    Seconds,
    Section,
    Text,
    line_of,
    split_hostport,
)
from gslb.config.model import Check
from gslb.config.notify import NotifyTarget, parse_notify
from gslb.config.registry import ALGORITHMS
from gslb.config.yamlsrc import SourceList, SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem

REPORT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")     # the PROXY of a zone's proxy_pool: PROXY/POOL
ACCESS_LOG_HELP = "true, false, stderr, an absolute file path or {path, buffer, flush}"


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    host: str
    port: int
    weight: int = 1
    drain: bool = False
    max_connections: int = 0          # 0: no limit

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Sticky:
    cookie: str = "GSLBSTICKY"
    ttl: int = 3600


@dataclass(frozen=True, slots=True)
class Outlier:
    """Passive checks: `failures` consecutive 5xx or connection failures eject a backend for `ejection` s."""

    failures: int = 5
    ejection: float = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamPool:
    name: str
    backends: tuple[Backend, ...]
    algorithm: str = "round_robin"
    check: Check | None = None
    sticky: Sticky | None = None
    hash: str = "ip"                  # consistent_hash key: ip | header:NAME | cookie:NAME
    slow_start: float = 0.0           # seconds over which a recovered backend ramps up to its weight
    outlier: Outlier = field(default_factory=Outlier)
    fail_open: bool = False           # all backends down: try them anyway instead of answering 503


@dataclass(frozen=True, slots=True)
class Route:
    """Matched in order: Host (exact or *.wildcard), path prefix, header; `pools` are (name, weight)."""

    pools: tuple[tuple[str, int], ...]
    host: str | None = None
    path: str = "/"
    header: tuple[str, str] | None = None
    default: bool = False
    name: str = ""                    # the `route` label of metrics; default: host, path and header


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 2.0
    read: float = 30.0
    total: float = 60.0
    idle: float = 60.0               # client keep-alive idle time


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_size: int = 32768                 # a request head (-> 431)
    max_body_size: int = 100 * 1024 * 1024       # a request body (-> 413)
    max_response_header_size: int = 65536        # a backend's response head (-> 502)


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float                      # requests per second per client address
    burst: int


@dataclass(frozen=True, slots=True)
class AccessLogConfig:
    path: str | None = None          # None: stderr
    buffer: int = 65536              # bytes queued before a write
    flush: float = 1.0               # seconds at most between a line and its write


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """`report_to:` and its keys: the proxy's pool state sent to DNS nodes (docs/proxy.md, "Reporting to DNS")."""

    to: tuple[str, ...]              # DNS nodes' API base URLs
    name: str                        # this proxy, as zones name it in proxy_pool: NAME/POOL
    key: str                         # signs like a prober: the nodes' health.secret or region_keys[region]
    region: str | None = None        # with a region key: the region it belongs to (named in the signature)
    interval: float = 1.0            # heartbeat; a change is sent at once


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    file: str
    listen: tuple[Listener, ...]
    admin: tuple[str, int]
    pools: dict[str, UpstreamPool]
    routes: tuple[Route, ...]
    admin_token: str | None = None
    sticky_secret: str = ""          # "": a random key chosen at start (server.with_secret)
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    rate_limit: RateLimit | None = None
    drain_timeout: float = 30.0
    retries: int = 1                 # extra attempts for idempotent requests when a connect fails
    access_log: AccessLogConfig | None = field(default_factory=AccessLogConfig)   # None: off
    notify: tuple[NotifyTarget, ...] = ()      # webhooks that receive the proxy's events
    report: ReportConfig | None = None         # None: no report_to, DNS sees this proxy through its checks only


def _at_least(lo: int) -> Field:
    return Int(lo, expected=f"a number >= {lo}")


def _match(pattern: re.Pattern, expected: str, schema: dict | None = None) -> Field:
    """A string matching `pattern` as a whole."""
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise Invalid
        return value
    return Custom(expected, schema or {"type": "string", "pattern": f"^{pattern.pattern}$"}, convert)


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value or "*" in value.removeprefix("*."):
        raise Invalid
    return value.lower()


def _header(value: Any) -> tuple[str, str]:
    if isinstance(value, SourceMap) and len(value) == 1:
        (name, text), = value.items()
        return str(name).lower(), str(text)
    if isinstance(value, str) and ":" in value:
        name, _, text = value.partition(":")
        return name.strip().lower(), text.strip()
    raise Invalid


def _urls(value: Any) -> tuple[str, ...]:
    urls = value if isinstance(value, list) else [value]
    if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise Invalid
    return tuple(u.rstrip("/") for u in urls)


_OWN = Custom("read by its own parser", {})        # a key read by the code below (schema: gslb/schema.py)
_TEXT = Custom("a string", {"type": "string"}, lambda value: None if value is None else str(value))
_PATH = re.compile(r"stderr|/.*")
# Every key, in the order messages list them; each section's dataclass holds its defaults.
BACKEND_FIELDS = {"address": HostPort("HOST:PORT", says="{value} is not HOST:PORT"), "drain": Flag(),
                  "max_connections": _at_least(0), "weight": _at_least(0)}
STICKY_FIELDS = {"cookie": _match(re.compile(r'[^ ;=,"\t]+'), "a cookie name"), "ttl": _at_least(1)}
OUTLIER_FIELDS = {"ejection": Number(0), "failures": _at_least(1)}
POOL_FIELDS = {
    "algorithm": Choice(ALGORITHMS, ", "), "backends": _OWN, "check": _OWN, "fail_open": Flag(),
    "hash": _match(re.compile(r"ip|header:.+|cookie:.+"), "ip, header:NAME or cookie:NAME"),
    "max_connections": _at_least(0), "outlier": _OWN, "slow_start": Number(0), "sticky": _OWN}
WEIGHTED_FIELDS = {"pool": Text("a pool's name"), "weight": _at_least(0)}
ROUTE_FIELDS = {
    "default": Flag(), "header": Custom("'Name: value' or {Name: value}", {"anyOf": [
        {"type": "string", "pattern": ":"}, {"type": "object", "minProperties": 1, "maxProperties": 1}]}, _header),
    "host": Custom("a name or *.domain", {"type": "string", "minLength": 1}, _host),
    "name": Custom("the route's metrics label", {"type": "string"}, str),
    "path": _match(re.compile(r"/.*"), "a path starting with /", {"type": "string", "pattern": "^/"}),
    "pool": Text("a pool's name"), "pools": _OWN}
TIMEOUT_FIELDS = {key: Number(0.01) for key in ("connect", "idle", "read", "total")}
LIMIT_FIELDS = {"max_body_size": _at_least(0), "max_header_size": _at_least(1024),
                "max_response_header_size": _at_least(1024)}
RATE_FIELDS = {"burst": _at_least(1), "rate": Number(0.001)}
ACCESS_LOG_FIELDS = {"buffer": _at_least(0), "flush": Number(0.01),
                     "path": _match(_PATH, "stderr or an absolute file path")}
TOP_FIELDS = {
    "access_log": _OWN, "admin": HostPort(), "admin_token": _TEXT, "drain_timeout": Number(0), "fail_open": Flag(),
    "limits": _OWN, "listen": _OWN, "notify": _OWN, "pools": _OWN, "rate_limit": _OWN,
    "report_interval": Seconds(0.1, 60), "report_key": Text("the key as text"),
    "report_name": _match(REPORT_NAME, "letters, digits, '.', '_' or '-' (up to 64): zones name this proxy "
                                       "by it (proxy_pool: NAME/POOL)"),
    "report_region": _match(REPORT_NAME, "a region name"),
    "report_to": Custom("a list of DNS API URLs (http://ns1:8053)", {"type": "array", "minItems": 1, "items": {
        "type": "string", "pattern": "^https?://"}}, _urls),
    "retries": _at_least(0), "routes": _OWN, "sticky_secret": _TEXT,
    "timeouts": _OWN}


def _sub(sec: Section, key: str, fields: dict[str, Field], label: str) -> dict[str, Any] | None:
    """The values of a nested mapping (`timeouts:`, `sticky:` ...); None when absent or not a mapping."""
    inner = sec.sub(key, f"a mapping with {', '.join(fields)}", label=label, says="expected {expected}")
    return None if inner is None else inner.read(fields)


def _listeners(src: Any, top: Section) -> tuple[Listener, ...]:
    items = src if isinstance(src, list) else [src]
    out = []
    for i, item in enumerate(items):
        tls = None
        address = item
        if isinstance(item, SourceMap):
            address, tls = item.get("address"), item.get("tls")
        hp = split_hostport(address)
        if hp is None:
            top.add(line_of(items, i) if isinstance(items, SourceList) else top.line("listen"),
                    f"listen: {short(address)} is not ADDR:PORT")
            continue
        cert = key = None
        if tls is not None:
            if not isinstance(tls, SourceMap) or not tls.get("cert") or not tls.get("key"):
                top.add(line_of(item, "tls"), "listen tls: needs {cert: FILE, key: FILE}")
            else:
                base = os.path.dirname(os.path.abspath(top.file))
                cert, key = (os.path.join(base, tls[k]) for k in ("cert", "key"))
                for k, path in (("cert", cert), ("key", key)):
                    if not os.path.exists(path):
                        top.add(tls.line_of(k), f"listen tls {k}: {path} does not exist")
        out.append(Listener(hp[0], hp[1], cert, key))
    return tuple(out)


def _pool(name: str, src: Any, top: Section, fail_open: bool) -> UpstreamPool | None:
    where = f"pool {short(name)}: "
    if not isinstance(src, SourceMap):
        top.add(0, f"{where}expected a mapping with backends")
        return None
    sec = Section(src, top.problems, top.file, where, " ")
    values = {"fail_open": fail_open} | sec.read(POOL_FIELDS, own=("backends", "check", "outlier", "sticky"))
    pool_limit = values.pop("max_connections", 0)      # each backend's, unless it sets one
    backends = []
    raw = src.get("backends")
    if not isinstance(raw, list) or not raw:
        sec.add(sec.line("backends"), f"{where}backends must be a non-empty list")
        raw = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, SourceMap) else SourceMap({"address": item})
        Section(item, top.problems, top.file, f"{where}backend {i + 1}: ").unknown(BACKEND_FIELDS)
        if split_hostport(item.get("address")) is None:
            top.add(line_of(raw, i), f"{where}backend {i + 1}: address {short(item.get('address'))} is not HOST:PORT")
            continue
        backend = Section(item, top.problems, top.file, where, " ").read(BACKEND_FIELDS, unknown=False)
        host, port = backend.pop("address")
        backends.append(Backend(host, port, **{"max_connections": pool_limit} | backend))
    sticky = _sub(sec, "sticky", STICKY_FIELDS, f"{where}sticky ")
    outlier = _sub(sec, "outlier", OUTLIER_FIELDS, f"{where}outlier ")
    check = parse_check(src.get("check"), f"pool {short(name)}", top.file, src.line_of("check"), top.problems)
    return UpstreamPool(name, tuple(backends), check=check, sticky=None if sticky is None else Sticky(**sticky),
                        outlier=Outlier(**outlier or {}), **values)


def _route(i: int, src: Any, pools: dict, top: Section) -> Route | None:
    where = f"route {i + 1}: "
    if not isinstance(src, SourceMap):
        top.add(0, f"{where}expected a mapping like {{host: example.com, pool: app}}")
        return None
    sec = Section(src, top.problems, top.file, where, " ")
    values = sec.read(ROUTE_FIELDS, own=("pools",))
    targets: list[tuple[str, int]] = []
    if "pool" in src:
        targets.append((src["pool"], 1))
    raw_pools = src.get("pools") or []
    for j, item in enumerate(raw_pools if isinstance(raw_pools, list) else [raw_pools]):
        if isinstance(item, SourceMap):
            weighted = Section(item, top.problems, top.file, where, " ").read(WEIGHTED_FIELDS)
            targets.append((item.get("pool"), weighted.get("weight", 1)))
        else:
            sec.bad("pools", f"item {j + 1}: expected {{pool: NAME, weight: N}}")
    if not targets:
        sec.add(src.line, f"{where}needs pool: NAME or pools: [{{pool: NAME, weight: N}}, ...]")
    for name, _ in targets:
        if name not in pools:
            sec.add(sec.line("pool" if "pool" in src else "pools"), f"{where}pool {short(name)} does not exist")
    values.pop("pool", None)
    host, path, header = values.get("host"), values.setdefault("path", "/"), values.get("header")
    if "name" not in values:
        values["name"] = "default" if values.get("default") else \
            (host or "*") + path + (f" {header[0]}={header[1]}" if header else "")
    return Route(tuple(targets), **values)


def _access_log(top: Section) -> AccessLogConfig | None:
    """`access_log`: true (stderr), false (off), `stderr`, an absolute path, or {path, buffer, flush}."""
    value = top.get("access_log", True)
    if value is False:
        return None
    if value is True:
        return AccessLogConfig()
    where, key, options = top, "access_log", {}
    if isinstance(value, SourceMap):
        where = Section(value, top.problems, top.file, "access_log: ", " ")
        options = where.read(ACCESS_LOG_FIELDS, own=("path",))
        value, key = value.get("path", "stderr"), "path"
    if not isinstance(value, str) or not _PATH.fullmatch(value):
        where.add(where.line(key), f"access_log {short(value)}, expected {ACCESS_LOG_HELP}")
        return None
    path = None if value == "stderr" else value
    if path is not None and not os.path.isdir(os.path.dirname(path)):
        where.add(where.line(key), f"access_log {short(path)}: directory {os.path.dirname(path)} does not exist")
    return AccessLogConfig(path, **options)


def _report(top: Section, values: dict[str, Any]) -> ReportConfig | None:
    """`report_to` (a list of DNS API URLs) with `report_name`, `report_key` (or $GSLB_REPORT_KEY),
    `report_region` and `report_interval`; the others are refused without `report_to`."""
    given = {key: values.pop(key) for key in list(values) if key.startswith("report_")}
    if "report_to" not in top.src:
        for key in ("report_name", "report_key", "report_region", "report_interval"):
            if key in top.src:
                top.bad(key, "without report_to: nothing would be reported")
        return None
    key = given.get("report_key") or os.environ.get("GSLB_REPORT_KEY")
    if not key and "report_key" not in top.src:
        top.bad("report_to", "needs a key: report_key or $GSLB_REPORT_KEY (the DNS nodes' health.secret, or "
                             "with report_region that region's health.region_keys entry)")
    return ReportConfig(given.get("report_to", ()), given.get("report_name", socket.gethostname().split(".")[0]),
                        str(key or ""), given.get("report_region"), given.get("report_interval", 1.0))


def load_proxy_config(path: str) -> ProxyConfig:
    """Read and validate a proxy YAML file.

    :raises ConfigError: listing every problem with file:line.
    """
    src = load_yaml_file(path)
    if not isinstance(src, SourceMap):
        raise ConfigError([Problem(path, 1, "the proxy config must be a mapping with listen, pools and routes")])
    top = Section(src, [], path, sep=" ")
    values = top.read(TOP_FIELDS, own=[key for key, field in TOP_FIELDS.items() if field is _OWN])
    listen = _listeners(src.get("listen", ["127.0.0.1:8080"]), top)
    pools, fail_open = {}, values.pop("fail_open", False)
    if not isinstance(src.get("pools"), SourceMap) or not src["pools"]:
        top.add(top.line("pools"), "pools: needs at least one pool")
    else:
        for name, pool_src in src["pools"].items():
            pool = _pool(str(name), pool_src, top, fail_open)
            if pool is not None:
                pools[pool.name] = pool
    routes = []
    raw_routes = src.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        top.add(top.line("routes"), "routes: needs at least one route (e.g. {default: true, pool: app})")
        raw_routes = []
    default_at = None
    for i, item in enumerate(raw_routes):
        route = _route(i, item, pools, top)
        if route is None:
            continue
        if default_at is not None:
            top.add(line_of(raw_routes, i),
                    f"route {i + 1}: never used: route {default_at + 1} (default: true) matches first")
        elif route.default:
            default_at = i
        routes.append(route)
    timeouts = _sub(top, "timeouts", TIMEOUT_FIELDS, "timeouts: ")
    limits = _sub(top, "limits", LIMIT_FIELDS, "limits: ")
    rate = _sub(top, "rate_limit", RATE_FIELDS, "rate_limit: ")
    access_log = _access_log(top)
    notify = parse_notify(src.get("notify"), top.problems, (path, src.line_of("notify")))
    report = _report(top, values)
    if top.problems:
        raise ConfigError(top.problems)
    token = values.pop("admin_token", None) or os.environ.get("GSLB_ADMIN_TOKEN")
    return ProxyConfig(
        file=path, listen=listen, pools=pools, routes=tuple(routes), admin_token=token,
        sticky_secret=values.pop("sticky_secret", None) or token or "",
        timeouts=Timeouts(**timeouts or {}), limits=Limits(**limits or {}),
        rate_limit=None if rate is None else RateLimit(**{"rate": 100.0, "burst": 100} | rate),
        access_log=access_log, notify=notify, report=report, **{"admin": ("127.0.0.1", 8081)} | values)
