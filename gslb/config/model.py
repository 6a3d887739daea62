"""The configuration model: frozen, slotted dataclasses built once by the loaders and never changed.

Names here are the YAML keys and the words `gslb explain` prints (`weight`, `fallback`, `rise` ...).
"""

from __future__ import annotations

import copyreg
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

from gslb.config import rdata
from gslb.config.nets import NetTable

DEFAULT_MARGIN_MS = 10.0       # latency_margin_ms: above the RTT noise of a probe EWMA between two sites
DEFAULT_MARGIN_PCT = 10.0      # latency_margin_pct: what far-apart sites differ by before it matters

Status = Literal["up", "down", "auto"]
Policy = Literal["latency", "geo", "weighted", "failover"]
AllDown = Literal["serve_all", "nodata", "servfail"]
Affinity = Literal["none", "subnet"]
CheckType = Literal["http", "https", "tcp", "dns", "file"]
Missing = Literal["keep", "up", "down"]
Capacity = Literal["fixed", "follow"]
DEFAULT_CAPACITY_FLOOR = 0.1   # capacity: follow never weighs a site below this share of its weight


@dataclass(frozen=True, slots=True)
class Check:
    """How to probe an endpoint; shared by the DNS probers and the proxy's active checks.

    `interval` and `timeout` are seconds; `rise`/`fall` are the HAProxy thresholds: consecutive
    successes to go up, consecutive failures to go down.
    """

    type: CheckType = "http"
    port: int | None = None          # None: 80 for http, 443 for https, 53 for dns; required for tcp
    path: str = "/"                  # http(s): the path asked; file: the health file (absolute)
    method: str = "GET"
    host: str | None = None          # Host header (http/https)
    # Accepted HTTP status codes: a code (200), a class ("3xx") or a range ("200-299"); see accepts().
    expect: tuple[int | str, ...] = (200,)
    body: str | None = None          # substring the response body must contain
    tls_verify: bool = True
    sni: str | None = None
    query: str | None = None         # dns: the name to ask (default: the zone origin)
    query_type: str = "A"            # dns: the type to ask
    interval: float = 1.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 2
    # Fields below were added later: statefile.target_key leaves them out while at their defaults, so
    # the ids of checks that do not use them stay what older probers and state files have.
    # http(s): extra request headers; values are kept as written, `${NAME}` is read from the prober's
    # environment at each check (a secret is not copied into state files, target lists or reports).
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = None    # http(s): None sends gslb/VERSION
    send: str | None = None          # tcp: text sent once connected
    expect_text: str | None = None   # tcp: the first bytes of the reply must contain this text
    expect_regex: str | None = None  # tcp: ... or match this regular expression
    missing: Missing = "keep"        # file: what an address the file does not list is

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"http": 80, "https": 443, "dns": 53}.get(self.type, 80)

    def accepts(self, status: int) -> bool:
        """Whether an HTTP status is one of `expect` (codes, "3xx" classes, "200-299" ranges)."""
        for item in self.expect:
            if isinstance(item, int):
                if status == item:
                    return True
            elif item.endswith("xx"):
                if status // 100 == int(item[0]):
                    return True
            else:
                low, _, high = item.partition("-")
                if int(low) <= status <= int(high):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Target:
    """What a prober probes: one address with one check. Health is kept per target."""

    address: str
    check: Check

    def __str__(self) -> str:
        if self.check.type == "file":
            return f"file {self.check.path} {self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.check.type}://{host}:{self.check.effective_port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address of a site. `weight: 0` drains it; `status` overrides health.

    `check_address`/`check_port`: the pool's check probes this address/port instead of the answered one
    (a health port on a private address, a sidecar); the answer still carries `address`.
    """

    address: str
    weight: int = 1
    status: Status = "auto"
    check_address: str | None = None
    check_port: int | None = None
    proxy_pool: str | None = None    # "PROXY/POOL": the regional proxy pool this address fronts (docs/proxy.md)

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True, slots=True)
class Site:
    """A group of endpoints in one place (a region, or explicit coordinates)."""

    name: str
    endpoints: tuple[Endpoint, ...]
    region: str | None = None
    lat: float | None = None
    lon: float | None = None
    status: Status = "auto"
    weight: int = 1
    proxy_pool: str | None = None    # "PROXY/POOL" for every endpoint that does not name its own


@dataclass(frozen=True, slots=True)
class Pool:
    """A load-balanced set of sites and the policy that picks among them."""

    name: str
    sites: tuple[Site, ...]
    policy: Policy = "latency"
    ttl: int = 30
    answers: int = 1
    fallback: str | None = None
    all_down: AllDown = "serve_all"
    affinity: Affinity = "none"
    check: Check | None = None      # None: no health check, endpoints count as up
    geo: tuple[tuple[str, tuple[str, ...]], ...] = ()   # ordered (key, site names); key "default" last
    order: tuple[str, ...] = ()
    # latency: a site is preferred to another only when its RTT is lower by both margins; sites within
    # them of the fastest count as equal and file order decides (docs/steering.md, "Stable latency").
    latency_margin_ms: float = DEFAULT_MARGIN_MS
    latency_margin_pct: float = DEFAULT_MARGIN_PCT
    nets: NetTable | None = None    # the `net:` keys of `geo:`, as a lookup table built at load
    # follow: a site's weight is scaled by the healthy share of its proxy pool's backend weight (not
    # below capacity_floor); fixed: weights as written. Proxy reports: docs/proxy.md.
    capacity: Capacity = "fixed"
    capacity_floor: float = DEFAULT_CAPACITY_FLOOR

    @staticmethod
    def proxy_pool_of(site: Site, endpoint: Endpoint) -> str | None:
        """The "PROXY/POOL" an endpoint fronts: its own `proxy_pool`, else its site's (None: not proxied)."""
        return endpoint.proxy_pool or site.proxy_pool

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def target_of(self, endpoint: Endpoint) -> Target | None:
        """What is probed for an endpoint (None: the pool has no check). Its health is looked up by this
        target: the checked address and port, which may differ from the answered address."""
        if self.check is None:
            return None
        if endpoint.check_address is None and endpoint.check_port is None:
            return Target(endpoint.address, self.check)
        check = self.check if endpoint.check_port is None else replace(self.check, port=endpoint.check_port)
        return Target(endpoint.check_address or endpoint.address, check)

    def targets(self) -> list[Target]:
        """Every (address, check) this pool needs probed, in order, without repeats."""
        if self.check is None:
            return []
        seen: dict[Target, None] = {}
        for site in self.sites:
            for endpoint in site.endpoints:
                seen[self.target_of(endpoint)] = None    # type: ignore[index]
        return list(seen)


@dataclass(frozen=True, slots=True)
class RRset:
    """Static records of one name and type, validated at load. `wire`: each record's RDLENGTH and
    RDATA, one after the other (gslb/config/rdata.py: one bytes object instead of a dnslib object per
    record); `rdatas` gives them as dnslib RD objects."""

    name: str            # absolute, lower case, trailing dot
    rtype: str           # "A", "MX", ...
    ttl: int
    wire: bytes

    @property
    def rdatas(self) -> tuple[Any, ...]:
        """The records as dnslib RD objects (made on each call)."""
        return rdata.decode(self.rtype, self.wire)

    def __reduce__(self) -> tuple:
        # The dataclass default goes through dataclasses.fields() for each of a zone's RRsets: twice
        # the time of a call to the class when a reload's zone is unpickled in the answering process.
        return RRset, (self.name, self.rtype, self.ttl, self.wire)


@dataclass(frozen=True, slots=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int


@dataclass(frozen=True, slots=True)
class ExternalPool:
    """A name of this zone answered by a pool defined in another zone file."""

    name: str
    pool: str
    line: int


@dataclass(frozen=True, slots=True)
class Zone:
    """One authoritative zone, as loaded from one YAML file."""

    origin: str                                  # absolute, lower case, trailing dot
    file: str
    ttl: int
    soa: Soa
    rrsets: Mapping[str, Mapping[str, RRset]]    # owner name -> type -> RRset
    pool_names: Mapping[str, str]                # owner name -> pool name (this zone's or another's)
    pools: Mapping[str, Pool]
    ecs: bool = True                             # trust the EDNS Client Subnet option
    whoami: bool = False                         # answer `whoami.<origin> TXT` with what gslb sees of the asker
    serial_given: bool = False
    nodes: frozenset[str] = frozenset()          # every name that exists: owners and their ancestors
    external_pools: tuple[ExternalPool, ...] = ()  # pools borrowed from other zones (checked across files)

    @property
    def names(self) -> frozenset[str]:
        """Names that own records (static or a pool)."""
        return frozenset(self.rrsets) | frozenset(self.pool_names)

    @property
    def name_count(self) -> int:
        """len(names) without building the set (GET /v1/zones: 10 ms for 100,000 names, on the loop)."""
        rrsets = self.rrsets
        return len(rrsets) + sum(1 for name in self.pool_names if name not in rrsets)


@dataclass(frozen=True, slots=True)
class ZoneLimits:
    """What one zone file may hold (`limits:` in the server config, docs/server.md); 0 means no limit.

    The defaults let a 1,000,000-name zone (about 50 MB) load and refuse what is far beyond it.
    """

    zone_bytes: int = 100_000_000      # size of one zone file
    zone_names: int = 2_000_000        # owner names under records: in one zone file
    reload_memory_mb: int = 8192       # address space of the process that parses zone reloads


def frozen_map(d: Mapping) -> Mapping:
    """A read-only view of a dict, for the model's mappings."""
    return MappingProxyType(dict(d))


def _thaw_map(d: dict) -> Mapping:
    """A read-only view of a dict just unpickled (no copy: nothing else holds it)."""
    return MappingProxyType(d)


def _reduce_map(m: MappingProxyType) -> tuple:
    return _thaw_map, (dict(m),)


# Zones are parsed in a subprocess and sent back pickled (gslb.config.reloader); a mappingproxy cannot
# be pickled by default, so the model's maps are sent as dicts and wrapped again on arrival.
copyreg.pickle(MappingProxyType, _reduce_map)
