"""The proxy's YAML (docs/proxy.md) -> frozen ProxyConfig; every problem with file:line."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from gslb.config.check import parse_check
from gslb.config.model import Check
from gslb.config.notify import NotifyTarget, parse_notify
from gslb.config.registry import ALGORITHMS
from gslb.config.yamlsrc import SourceList, SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem

TOP_KEYS = {"listen", "admin", "pools", "routes", "admin_token", "sticky_secret", "timeouts", "limits",
            "rate_limit", "drain_timeout", "retries", "access_log", "fail_open", "notify",
            "report_to", "report_name", "report_key", "report_region", "report_interval"}
REPORT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")     # the PROXY of a zone's proxy_pool: PROXY/POOL
POOL_KEYS = {"algorithm", "backends", "check", "sticky", "hash", "slow_start", "outlier", "max_connections",
             "fail_open"}
BACKEND_KEYS = {"address", "weight", "drain", "max_connections"}
ROUTE_KEYS = {"name", "host", "path", "header", "pool", "pools", "default"}


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


def _hostport(text: Any) -> tuple[str, int] | None:
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        return None
    return (host, number) if host and 0 <= number <= 65535 else None


class _P:
    def __init__(self, file: str):
        self.file, self.problems = file, []

    def add(self, src: Any, key: Any, what: str) -> None:
        line = src.line_of(key) if isinstance(src, (SourceMap, SourceList)) else 0
        self.problems.append(Problem(self.file, line, what))

    def unknown(self, src: SourceMap, known: set[str], where: str) -> None:
        for key in src:
            if key not in known:
                self.add(src, key, f"{where}unknown key {short(key)} (known: {', '.join(sorted(known))})")

    def mapping(self, src: SourceMap, key: str, known: set[str], where: str) -> SourceMap | None:
        """src[key] as a mapping with only `known` keys; None (and a problem if present) otherwise."""
        value = src.get(key)
        if value is None:
            return None
        if not isinstance(value, SourceMap):
            self.add(src, key, f"{where}{key}: expected a mapping with {', '.join(sorted(known))}")
            return None
        self.unknown(value, known, f"{where}{key}: ")
        return value

    def flag(self, src: SourceMap, key: str, default: bool, where: str) -> bool:
        value = src.get(key, default)
        if not isinstance(value, bool):
            self.add(src, key, f"{where}{key} {short(value)}, expected true or false")
            return default
        return value

    def number(self, src: SourceMap, key: str, default: float, lo: float, where: str, integer: bool = False) -> Any:
        value = src.get(key, default)
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or value < lo:
            self.add(src, key, f"{where}{key} {short(value)}, expected a number >= {lo}")
            return default
        return value


def _listeners(src: Any, p: _P, top: SourceMap) -> tuple[Listener, ...]:
    items = src if isinstance(src, list) else [src]
    out = []
    for i, item in enumerate(items):
        tls = None
        address = item
        if isinstance(item, SourceMap):
            address, tls = item.get("address"), item.get("tls")
        hp = _hostport(address)
        if hp is None:
            p.add(items if isinstance(items, SourceList) else top, i if isinstance(items, SourceList) else "listen",
                  f"listen: {short(address)} is not ADDR:PORT")
            continue
        cert = key = None
        if tls is not None:
            if not isinstance(tls, SourceMap) or not tls.get("cert") or not tls.get("key"):
                p.add(item, "tls", "listen tls: needs {cert: FILE, key: FILE}")
            else:
                base = os.path.dirname(os.path.abspath(p.file))
                cert, key = (os.path.join(base, tls[k]) for k in ("cert", "key"))
                for k, path in (("cert", cert), ("key", key)):
                    if not os.path.exists(path):
                        p.add(tls, k, f"listen tls {k}: {path} does not exist")
        out.append(Listener(hp[0], hp[1], cert, key))
    return tuple(out)


def _pool(name: str, src: Any, p: _P, fail_open: bool) -> UpstreamPool | None:
    where = f"pool {short(name)}: "
    if not isinstance(src, SourceMap):
        p.add(src, None, f"{where}expected a mapping with backends")
        return None
    p.unknown(src, POOL_KEYS, where)
    algorithm = src.get("algorithm", "round_robin")
    if algorithm not in ALGORITHMS:
        p.add(src, "algorithm", f"{where}algorithm {short(algorithm)}, expected one of {', '.join(ALGORITHMS)}")
        algorithm = "round_robin"
    backends = []
    pool_limit = p.number(src, "max_connections", 0, 0, where, True)   # each backend's, unless it sets one
    raw = src.get("backends")
    if not isinstance(raw, list) or not raw:
        p.add(src, "backends", f"{where}backends must be a non-empty list")
        raw = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, SourceMap) else SourceMap({"address": item})
        p.unknown(item, BACKEND_KEYS, f"{where}backend {i + 1}: ")
        hp = _hostport(item.get("address"))
        if hp is None:
            p.add(raw, i, f"{where}backend {i + 1}: address {short(item.get('address'))} is not HOST:PORT")
            continue
        backends.append(Backend(hp[0], hp[1], p.number(item, "weight", 1, 0, where, True),
                                p.flag(item, "drain", False, where),
                                p.number(item, "max_connections", pool_limit, 0, where, True)))
    sticky = None
    s = p.mapping(src, "sticky", {"cookie", "ttl"}, where)
    if s is not None:
        cookie = s.get("cookie", "GSLBSTICKY")
        if not isinstance(cookie, str) or not cookie or any(c in cookie for c in ' ;=,"\t'):
            p.add(s, "cookie", f"{where}sticky cookie {short(cookie)}, expected a cookie name")
        sticky = Sticky(str(cookie), p.number(s, "ttl", 3600, 1, where, True))
    hash_key = src.get("hash", "ip")
    if not (hash_key == "ip" or str(hash_key).startswith(("header:", "cookie:"))):
        p.add(src, "hash", f"{where}hash {short(hash_key)}, expected ip, header:NAME or cookie:NAME")
    outlier = Outlier()
    o = p.mapping(src, "outlier", {"failures", "ejection"}, where)
    if o is not None:
        outlier = Outlier(p.number(o, "failures", 5, 1, where, True), p.number(o, "ejection", 30.0, 0, where))
    check = parse_check(src.get("check"), f"pool {short(name)}", p.file, src.line_of("check"), p.problems)
    return UpstreamPool(name, tuple(backends), algorithm, check, sticky, str(hash_key),
                        p.number(src, "slow_start", 0.0, 0, where), outlier, p.flag(src, "fail_open", fail_open, where))


def _route(i: int, src: Any, pools: dict, p: _P) -> Route | None:
    where = f"route {i + 1}: "
    if not isinstance(src, SourceMap):
        p.add(src, None, f"{where}expected a mapping like {{host: example.com, pool: app}}")
        return None
    p.unknown(src, ROUTE_KEYS, where)
    targets: list[tuple[str, int]] = []
    if "pool" in src:
        targets.append((src["pool"], 1))
    raw_pools = src.get("pools") or []
    for j, item in enumerate(raw_pools if isinstance(raw_pools, list) else [raw_pools]):
        if isinstance(item, SourceMap):
            p.unknown(item, {"pool", "weight"}, where)
            targets.append((item.get("pool"), p.number(item, "weight", 1, 0, where, True)))
        else:
            p.add(src, "pools", f"{where}pools item {j + 1}: expected {{pool: NAME, weight: N}}")
    if not targets:
        p.add(src, None, f"{where}needs pool: NAME or pools: [{{pool: NAME, weight: N}}, ...]")
    for name, _ in targets:
        if name not in pools:
            p.add(src, "pool" if "pool" in src else "pools", f"{where}pool {short(name)} does not exist")
    header = None
    if "header" in src:
        h = src["header"]
        if isinstance(h, SourceMap) and len(h) == 1:
            header = (str(next(iter(h))).lower(), str(next(iter(h.values()))))
        elif isinstance(h, str) and ":" in h:
            name, _, value = h.partition(":")
            header = (name.strip().lower(), value.strip())
        else:
            p.add(src, "header", f"{where}header: expected 'Name: value' or {{Name: value}}")
    path = src.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        p.add(src, "path", f"{where}path {short(path)} must start with /")
        path = "/"
    host = src.get("host")
    if host is not None and (not isinstance(host, str) or not host or "*" in host.removeprefix("*.")):
        p.add(src, "host", f"{where}host {short(host)}, expected a name or *.domain")
    host = None if host is None else str(host).lower()
    default = p.flag(src, "default", False, where)
    name = src.get("name")
    if name is None:
        name = "default" if default else (host or "*") + path + (f" {header[0]}={header[1]}" if header else "")
    return Route(tuple(targets), host, path, header, default, str(name))


ACCESS_LOG_HELP = "expected true, false, stderr, an absolute file path or {path, buffer, flush}"


def _access_log(src: SourceMap, p: _P) -> AccessLogConfig | None:
    """`access_log`: true (stderr), false (off), `stderr`, an absolute path, or {path, buffer, flush}."""
    value = src.get("access_log", True)
    if value is False:
        return None
    if value is True:
        return AccessLogConfig()
    where, key, options = src, "access_log", None
    if isinstance(value, SourceMap):
        options = p.mapping(src, "access_log", {"path", "buffer", "flush"}, "")
        value = options.get("path", "stderr")
        if "path" in options:
            where, key = options, "path"
    if not isinstance(value, str) or not (value == "stderr" or value.startswith("/")):
        p.add(where, key, f"access_log {short(value)}, {ACCESS_LOG_HELP}")
        return None
    path = None if value == "stderr" else value
    if path is not None and not os.path.isdir(os.path.dirname(path)):
        p.add(where, key, f"access_log {short(path)}: directory {os.path.dirname(path)} does not exist")
    if options is None:
        return AccessLogConfig(path)
    return AccessLogConfig(path, p.number(options, "buffer", 65536, 0, "access_log: ", True),
                           float(p.number(options, "flush", 1.0, 0.01, "access_log: ")))


def _report(src: SourceMap, p: _P) -> ReportConfig | None:
    """`report_to` (a list of DNS API URLs) with `report_name`, `report_key` (or $GSLB_REPORT_KEY),
    `report_region` and `report_interval`; the others are refused without `report_to`."""
    if "report_to" not in src:
        for key in ("report_name", "report_key", "report_region", "report_interval"):
            if key in src:
                p.add(src, key, f"{key} without report_to: nothing would be reported")
        return None
    urls = src["report_to"]
    urls = urls if isinstance(urls, list) else [urls]
    if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        p.add(src, "report_to", f"report_to {short(src['report_to'])}, expected a list of DNS API URLs "
                                "(http://ns1:8053)")
    name = src.get("report_name", socket.gethostname().split(".")[0])
    if not isinstance(name, str) or not REPORT_NAME.fullmatch(name):
        p.add(src, "report_name", f"report_name {short(name)}, expected letters, digits, '.', '_' or '-' "
                                  "(up to 64): zones name this proxy by it (proxy_pool: NAME/POOL)")
    key = src.get("report_key") or os.environ.get("GSLB_REPORT_KEY")
    if not key:
        p.add(src, "report_to", "report_to needs a key: report_key or $GSLB_REPORT_KEY (the DNS nodes' "
                                "health.secret, or with report_region that region's health.region_keys entry)")
    elif not isinstance(key, str):
        p.add(src, "report_key", "report_key: expected the key as text")
    region = src.get("report_region")
    if region is not None and (not isinstance(region, str) or not REPORT_NAME.fullmatch(region)):
        p.add(src, "report_region", f"report_region {short(region)}, expected a region name")
    interval = float(p.number(src, "report_interval", 1.0, 0.1, ""))
    if interval > 60:
        p.add(src, "report_interval", f"report_interval {short(interval)}, expected 0.1..60 seconds")
    return ReportConfig(tuple(str(u).rstrip("/") for u in urls if isinstance(u, str)), str(name), str(key or ""),
                        None if region is None else str(region), interval)


def load_proxy_config(path: str) -> ProxyConfig:
    """Read and validate a proxy YAML file.

    :raises ConfigError: listing every problem with file:line.
    """
    src = load_yaml_file(path)
    p = _P(path)
    if not isinstance(src, SourceMap):
        raise ConfigError([Problem(path, 1, "the proxy config must be a mapping with listen, pools and routes")])
    p.unknown(src, TOP_KEYS, "")
    listen = _listeners(src.get("listen", ["127.0.0.1:8080"]), p, src)
    admin = _hostport(src.get("admin", "127.0.0.1:8081"))
    if admin is None:
        p.add(src, "admin", f"admin: {short(src.get('admin'))} is not ADDR:PORT")
    pools = {}
    fail_open = p.flag(src, "fail_open", False, "")
    if not isinstance(src.get("pools"), SourceMap) or not src["pools"]:
        p.add(src, "pools", "pools: needs at least one pool")
    else:
        for name, pool_src in src["pools"].items():
            pool = _pool(str(name), pool_src, p, fail_open)
            if pool is not None:
                pools[pool.name] = pool
    routes = []
    raw_routes = src.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        p.add(src, "routes", "routes: needs at least one route (e.g. {default: true, pool: app})")
        raw_routes = []
    default_at = None
    for i, item in enumerate(raw_routes):
        route = _route(i, item, pools, p)
        if route is None:
            continue
        if default_at is not None:
            p.add(raw_routes, i, f"route {i + 1}: never used: route {default_at + 1} (default: true) matches first")
        elif route.default:
            default_at = i
        routes.append(route)
    t = p.mapping(src, "timeouts", {"connect", "read", "total", "idle"}, "") or SourceMap()
    timeouts = Timeouts(*(p.number(t, k, d, 0.01, "timeouts: ") for k, d in
                          (("connect", 2.0), ("read", 30.0), ("total", 60.0), ("idle", 60.0))))
    lim = p.mapping(src, "limits", {"max_header_size", "max_body_size", "max_response_header_size"}, "") \
        or SourceMap()
    limits = Limits(p.number(lim, "max_header_size", 32768, 1024, "limits: ", True),
                    p.number(lim, "max_body_size", 100 * 1024 * 1024, 0, "limits: ", True),
                    p.number(lim, "max_response_header_size", 65536, 1024, "limits: ", True))
    rate = None
    r = p.mapping(src, "rate_limit", {"rate", "burst"}, "")
    if r is not None:
        rate = RateLimit(p.number(r, "rate", 100.0, 0.001, "rate_limit: "), p.number(r, "burst", 100, 1, "rate_limit: ", True))
    drain_timeout = float(p.number(src, "drain_timeout", 30.0, 0, ""))
    retries = p.number(src, "retries", 1, 0, "", True)
    access_log = _access_log(src, p)
    notify = parse_notify(src.get("notify"), p.problems, (path, src.line_of("notify")))
    report = _report(src, p)
    if p.problems:
        raise ConfigError(p.problems)
    token = src.get("admin_token") or os.environ.get("GSLB_ADMIN_TOKEN")
    return ProxyConfig(
        file=path, listen=listen, admin=admin, pools=pools, routes=tuple(routes),
        admin_token=None if token is None else str(token),
        sticky_secret=str(src.get("sticky_secret") or token or ""),
        timeouts=timeouts, limits=limits, rate_limit=rate,
        drain_timeout=drain_timeout, retries=retries, access_log=access_log, notify=notify,
        report=report)
