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
from gslb.config.limits import parse_limits
from gslb.config.model import ZoneLimits
from gslb.config.rrl import RateLimitSettings, parse_rate_limit
from gslb.config.yamlsrc import SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem

SERVER_KEYS = {"zones", "listen", "api", "data", "geoip", "regions", "latency", "query_log",
               "reload_interval", "health", "workers", "tcp", "rrl", "limits", "node_id", "version"}
MAX_NODE_ID = 255               # bytes: one TXT character-string (id.server.), and plenty for an NSID


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
    reload_interval: float = 1.0                  # how often zone files are checked for changes
    workers: int = 1                              # DNS processes sharing the listen ports (SO_REUSEPORT)
    health: HealthSettings = field(default_factory=HealthSettings)
    limits: ZoneLimits = field(default_factory=ZoneLimits)    # per zone file: bytes, names, parse memory
    rrl: RateLimitSettings = field(default_factory=RateLimitSettings)   # DNS response rate limiting
    tcp: TcpLimits = field(default_factory=TcpLimits)   # DNS TCP connection caps and timeouts
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
    values: dict[str, Any] = {"file": path}
    for key, value in src.items():
        line = src.line_of(key)
        if key not in SERVER_KEYS:
            problems.append(Problem(path, line, f"unknown key {short(key)} (known: {', '.join(sorted(SERVER_KEYS))})"))
        elif key == "listen":
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(i, str) for i in items):
                problems.append(Problem(path, line, "listen: expected ADDR:PORT or a list of them"))
            else:
                values["listen"] = tuple(items)
        elif key == "query_log":
            if not isinstance(value, bool):
                problems.append(Problem(path, line, "query_log: expected true or false"))
            else:
                values[key] = value
        elif key == "reload_interval":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 3600:
                problems.append(Problem(path, line, "reload_interval: expected seconds 0.1..3600"))
            else:
                values[key] = float(value)
        elif key == "workers":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
                problems.append(Problem(path, line, "workers: expected a number of processes 1..256"))
            else:
                values[key] = value
        elif key == "node_id":
            if not isinstance(value, str) or not value.isprintable() or not 1 <= len(value.encode()) <= MAX_NODE_ID:
                problems.append(Problem(path, line, f"node_id: {short(value)}, expected this node's name "
                                                    f"(printable, 1..{MAX_NODE_ID} bytes)"))
            else:
                values[key] = value
        elif key == "version":
            if value is True:
                values[key] = f"gslb {__version__}"
            elif value is False or value is None:
                values[key] = None
            elif not isinstance(value, str) or not value.isprintable() or not 1 <= len(value.encode()) <= 255:
                problems.append(Problem(path, line, f"version: {short(value)}, expected the text version.bind. "
                                                    "answers (1..255 bytes), true for gslb's version, or false"))
            else:
                values[key] = value
        elif key not in ("health", "tcp", "rrl", "limits", "api"):
            if not isinstance(value, str):
                problems.append(Problem(path, line, f"{key}: expected a path"))
            else:
                base = os.path.dirname(os.path.abspath(path))
                values[key] = value if os.path.isabs(value) else os.path.join(base, value)
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
