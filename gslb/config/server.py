"""The server configuration (`gslb serve --config FILE`, docs/server.md); command-line flags win over it."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from gslb import __version__
from gslb.config.api import key_problems, parse_api
from gslb.config.dnslimits import TcpLimits, parse_tcp_limits
from gslb.config.health import HealthSettings, parse_health_settings
from gslb.config.kit import Custom, Flag, Int, Invalid, Seconds, Section, Text
from gslb.config.limits import parse_limits
from gslb.config.model import ZoneLimits
from gslb.config.notify import NotifyTarget, parse_notify
from gslb.config.rrl import RateLimitSettings, parse_rate_limit
from gslb.config.yamlsrc import SourceMap, load_yaml_file
from gslb.errors import ConfigError, Problem

MAX_NODE_ID = 255               # bytes: one TXT character-string (id.server.), and plenty for an NSID


def _listen(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) for i in items):
        raise Invalid
    return tuple(items)


def _version(value: Any) -> str | None:
    if value is True:
        return f"gslb {__version__}"
    if value is False or value is None:
        return None
    if not isinstance(value, str) or not value.isprintable() or not 1 <= len(value.encode()) <= 255:
        raise Invalid
    return value


_PATH = Text("a path")
_PATHS = ("zones", "data", "geoip", "regions", "latency")
_SECTION = Custom("a mapping", {"type": "object"}, lambda value: value)   # read by its own parser below
# In the order `unknown key` lists them. health, tcp, rrl, limits and api are read by their own modules.
SERVER_FIELDS = {
    "zones": _PATH, "listen": Custom("ADDR:PORT or a list of them", {
        "anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]}, _listen),
    "api": _SECTION, "data": _PATH, "geoip": _PATH, "regions": _PATH, "latency": _PATH, "query_log": Flag(),
    "reload_interval": Seconds(0.1, 3600), "health": _SECTION, "workers": Int(1, 256, "a number of processes 1..256"),
    "tcp": _SECTION, "rrl": _SECTION, "limits": _SECTION, "notify": _SECTION,
    "query_log_sample": Int(1, 1_000_000, "one query in N logged (1..1000000)"),
    "node_id": Text(f"this node's name (printable, 1..{MAX_NODE_ID} bytes)", max_bytes=MAX_NODE_ID, printable=True),
    "version": Custom("the text version.bind. answers (1..255 bytes), true for gslb's version, or false",
                      {"type": ["string", "boolean", "null"], "maxLength": 255}, _version),
}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    zones: str = "zones"
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    api: str | None = "127.0.0.1:8053"           # the API's listen address (api: or api.listen); None: off
    api_token: str | None = None                  # api.token / $GSLB_API_TOKEN: operator writes
    api_read_token: str | None = None             # api.read_token / $GSLB_API_READ_TOKEN: reads, when set
    node_id: str = field(default_factory=socket.gethostname)   # NSID, CHAOS id.server. / hostname.bind.
    version: str | None = None                    # CHAOS version.bind.; None: REFUSED
    data: str = "data"
    geoip: str | None = None                      # default: <data>/gslb-geo.mmdb when it exists
    regions: str | None = None                    # default: <data>/regions.yaml
    latency: str | None = None                    # default: <data>/latency.yaml
    query_log: bool = False
    query_log_sample: int = 1                     # with query_log: one query in N is logged
    reload_interval: float = 1.0                  # how often zone files are checked for changes
    workers: int = 1                              # DNS processes sharing the listen ports (SO_REUSEPORT)
    health: HealthSettings = field(default_factory=HealthSettings)
    limits: ZoneLimits = field(default_factory=ZoneLimits)    # per zone file: bytes, names, parse memory
    rrl: RateLimitSettings = field(default_factory=RateLimitSettings)   # DNS response rate limiting
    tcp: TcpLimits = field(default_factory=TcpLimits)   # DNS TCP connection caps and timeouts
    notify: tuple[NotifyTarget, ...] = ()         # webhooks that receive events (docs/observability.md)
    file: str | None = None

    @property
    def geoip_path(self) -> str | None:
        path = self.geoip or os.path.join(self.data, "gslb-geo.mmdb")
        return path if os.path.exists(path) else None

    @property
    def regions_path(self) -> str:
        return self.regions or os.path.join(self.data, "regions.yaml")

    @property
    def latency_path(self) -> str:
        return self.latency or os.path.join(self.data, "latency.yaml")


def load_server_config(path: str | None) -> ServerConfig:
    """Read the server YAML; no path means all defaults.

    :raises ConfigError: listing every problem with file:line.
    """
    problems: list[Problem] = []
    if path is None:
        api = parse_api(None, problems, ("?", 0), present=False)
        health = parse_health_settings(None, problems)
        problems += key_problems(api, health.secret, dict(health.region_keys), ("$GSLB_API_TOKEN", 0))
        if problems:
            raise ConfigError(problems)
        return ServerConfig(health=health, api=api.listen, api_token=api.token, api_read_token=api.read_token)
    src = load_yaml_file(path)
    if src is None:
        src = SourceMap()
    if not isinstance(src, SourceMap):
        raise ConfigError([Problem(path, 1, "the server config must be a mapping (see docs/server.md)")])
    values: dict[str, Any] = {"file": path} | Section(src, problems, path).read(SERVER_FIELDS)
    base = os.path.dirname(os.path.abspath(path))
    for key in _PATHS:
        if key in values:
            values[key] = os.path.join(base, values[key])      # an absolute path stays as it is
    values["notify"] = parse_notify(src.get("notify"), problems, (path, src.line_of("notify")))
    values["rrl"] = parse_rate_limit(src.get("rrl"), problems, where=(path, src.line_of("rrl")))
    values["health"] = parse_health_settings(src.get("health"), problems, where=(path, src.line_of("health")))
    values["limits"] = parse_limits(src.get("limits"), problems, where=(path, src.line_of("limits")))
    values["tcp"] = parse_tcp_limits(src.get("tcp"), problems, where=(path, src.line_of("tcp")))
    api = parse_api(src.get("api"), problems, (path, src.line_of("api")), present="api" in src)
    values.update(api=api.listen, api_token=api.token, api_read_token=api.read_token)
    health = values["health"]
    api_src = src.get("api")
    token_line = api_src.line_of("token") if isinstance(api_src, SourceMap) and "token" in api_src \
        else src.line_of("api")
    problems += key_problems(api, health.secret, dict(health.region_keys), (path, token_line))
    if problems:
        raise ConfigError(problems)
    return ServerConfig(**values)
