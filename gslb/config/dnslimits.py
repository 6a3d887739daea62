"""The `tcp:` section of the server config: limits on DNS over TCP connections (docs/server.md).

The defaults are what an nsd or Knot operator would expect: Knot closes a connection idle for 10 s
between messages (`tcp-idle-timeout`) and gives one message a short deadline counted from its first
byte (`tcp-io-timeout`); both cap the number of TCP clients. gslb adds a cap per client address so
that one host cannot take every slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import Problem

TCP_KEYS = ("max_connections", "max_per_client", "idle_timeout", "message_timeout")


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """How many DNS TCP connections one process holds, and how long each may stay.

    `max_connections` is further lowered at start to the file-descriptor limit minus a reserve
    (gslb/dns/tcpguard.py), so that the API, the state file and the prober always have descriptors.
    """

    max_connections: int = 1000     # open DNS TCP connections per process, over every listen address
    max_per_client: int = 32        # of those, from one client address (a resolver farm behind NAT fits)
    idle_timeout: float = 10.0      # seconds with no message in progress before the server closes (RFC 7766)
    message_timeout: float = 2.0    # seconds from a message's first byte until its last must have arrived


_INT_RANGES = {"max_connections": (1, 1_000_000), "max_per_client": (1, 1_000_000)}
_SECONDS_RANGES = {"idle_timeout": (0.05, 3600.0), "message_timeout": (0.05, 600.0)}


def parse_tcp_limits(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> TcpLimits:
    """Build TcpLimits from the `tcp:` mapping (None: defaults); problems are appended with file:line.

    `where` (file, line) places a `tcp:` that is not a mapping.
    """
    if src is None:
        return TcpLimits()
    if not isinstance(src, SourceMap):
        problems.append(Problem(*where, f"tcp: {short(src, 40)}, expected a mapping of "
                                        f"{', '.join(TCP_KEYS)}"))
        return TcpLimits()
    values: dict[str, Any] = {}
    for key, value in src.items():
        line = src.line_of(key)
        if key not in TCP_KEYS:
            problems.append(Problem(src.file, line, f"tcp {key}: unknown key (known: {', '.join(TCP_KEYS)})"))
        elif key in _INT_RANGES:
            lo, hi = _INT_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                problems.append(Problem(src.file, line, f"tcp {key}: {short(value, 40)}, "
                                                        f"expected a number of connections {lo}..{hi}"))
            else:
                values[key] = value
        else:
            lo, hi = _SECONDS_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                problems.append(Problem(src.file, line, f"tcp {key}: {short(value, 40)}, "
                                                        f"expected seconds {lo}..{hi:g}"))
            else:
                values[key] = float(value)
    return TcpLimits(**values)
