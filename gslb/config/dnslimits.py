"""The `tcp:` section of the server config: limits on DNS over TCP connections (docs/server.md).

The defaults are what an nsd or Knot operator would expect: Knot closes a connection idle for 10 s
between messages (`tcp-idle-timeout`) and gives one message a short deadline counted from its first
byte (`tcp-io-timeout`); both cap the number of TCP clients. gslb adds a cap per client address so
that one host cannot take every slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gslb.config.kit import NAMED, Int, Seconds, mapping_of
from gslb.errors import Problem


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


_COUNT = "a number of connections 1..1000000"
TCP_FIELDS = {"max_connections": Int(1, 1_000_000, _COUNT), "max_per_client": Int(1, 1_000_000, _COUNT),
              "idle_timeout": Seconds(0.05, 3600), "message_timeout": Seconds(0.05, 600)}
TCP_KEYS = tuple(TCP_FIELDS)


def parse_tcp_limits(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> TcpLimits:
    """Build TcpLimits from the `tcp:` mapping (None: defaults); problems are appended with file:line.

    `where` (file, line) places a `tcp:` that is not a mapping.
    """
    section = mapping_of(src, problems, where, "tcp", f"a mapping of {', '.join(TCP_KEYS)}",
                         label="tcp ", unknown=NAMED)
    return TcpLimits() if section is None else TcpLimits(**section.read(TCP_FIELDS))
