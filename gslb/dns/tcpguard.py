"""Admission and timeouts for DNS TCP connections: caps in total and per client address, counted.

Every accepted TCP connection holds a file descriptor. The process needs descriptors for more than DNS:
the HTTP API, saving `health.json`, the embedded prober's checks and its reports. Without a cap, a
slow-loris client (many connections, one byte now and then) takes all of them, and the prober, unable
to open a socket, sees healthy endpoints fail. So the total cap is kept below the descriptor limit:

    effective cap = min(tcp.max_connections, RLIMIT_NOFILE soft limit - reserve)
    reserve       = max(64, a quarter of the soft limit)

64 covers a small deployment's fixed needs (the interpreter and its libraries, the GeoIP database,
the listening sockets, the state file, a few API clients and the prober's concurrent checks); a
quarter scales with the operator's `ulimit -n`, since a host given more descriptors usually probes
more targets. Knot's `tcp-max-clients` default, half the descriptor limit, follows the same idea.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Protocol

from gslb.config.dnslimits import TcpLimits

log = logging.getLogger("gslb.dns")

FD_RESERVE_MIN = 64
BUSY_IDLE_TIMEOUT = 1.0       # idle timeout while more than half of the cap is in use (RFC 7766 6.2.3)
EVICT_AFTER = 0.25            # at the cap, a connection this long without a whole message makes room
REFUSAL_LOG_INTERVAL = 60.0   # a cap being hit is logged at most this often, with the counts


def fd_reserve(soft_limit: int) -> int:
    """File descriptors kept out of DNS TCP's reach for the API, the state file and the prober."""
    return max(FD_RESERVE_MIN, soft_limit // 4)


def effective_max_connections(configured: int, soft_limit: int | None = None) -> int:
    """The total cap this process applies: `configured`, lowered to the descriptor limit minus the reserve.

    `soft_limit` defaults to this process's RLIMIT_NOFILE soft limit (each `--workers` process has its own).
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft_limit - fd_reserve(soft_limit)))


class Evictable(Protocol):
    def evict(self) -> None: ...


class TcpGuard:
    """The DNS TCP connections of one process, over every listen address, and why some were closed.

    At the total cap a newcomer is not simply refused: the connection that has gone longest without a
    whole message (idle, or trickling one in) is closed to make room, if that is at least EVICT_AFTER
    ago. A slow-loris from many addresses therefore holds slots only until real clients arrive, while
    a real client, whose query arrives in one segment, is never the oldest for long.

    The counters are plain integers for /metrics: connections refused by each cap, evicted, and closed
    by each timeout since start.
    """

    def __init__(self, limits: TcpLimits, max_connections: int | None = None):
        """`max_connections` overrides the effective total cap (default: from `limits` and RLIMIT_NOFILE)."""
        self.limits = limits
        self.max_connections = max_connections if max_connections is not None \
            else effective_max_connections(limits.max_connections)
        self.max_per_client = min(limits.max_per_client, self.max_connections)
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.last_message: dict[Evictable, float] = {}   # oldest first: when each last completed a message
        self.refused_total_cap = 0      # closed at once: max_connections reached
        self.refused_client_cap = 0     # closed at once: max_per_client reached for that address
        self.evicted = 0                # closed at the total cap to admit a newcomer
        self.evict_after = EVICT_AFTER
        self.closed_idle = 0            # closed after the idle timeout between messages
        self.closed_message_timeout = 0  # closed because a message did not arrive whole in time
        self._next_log = 0.0

    def admit(self, client: str, conn: Evictable) -> bool:
        """Count a new connection from `client`; False (and counted as refused) when a cap is reached
        and no stalled connection can be evicted to make room."""
        held = self.by_client.get(client, 0)
        if held >= self.max_per_client:
            self.refused_client_cap += 1
            self._log_refusal()
            return False
        now = time.monotonic()
        if self.open >= self.max_connections and not self._evict_stalled(now):
            self.refused_total_cap += 1
            self._log_refusal()
            return False
        self.open += 1
        self.by_client[client] = held + 1
        self.last_message[conn] = now
        return True

    def _evict_stalled(self, now: float) -> bool:
        oldest, since = next(iter(self.last_message.items()), (None, now))
        if oldest is None or now - since < self.evict_after:
            return False
        self.evicted += 1
        oldest.evict()              # releases its slot now (connection_lost comes later, already released)
        return True

    def message_done(self, conn: Evictable) -> None:
        """`conn` completed a message: it moves to the back of the eviction order."""
        del self.last_message[conn]
        self.last_message[conn] = time.monotonic()

    def release(self, client: str, conn: Evictable) -> None:
        """A connection admitted for `client` has closed (or was evicted)."""
        del self.last_message[conn]
        self.open -= 1
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)

    def idle_timeout(self) -> float:
        """Seconds a connection may wait between messages: shortened while more than half the cap is in
        use, so that idle connections make room for new clients (as nsd does under load)."""
        if self.open * 2 > self.max_connections:
            return min(self.limits.idle_timeout, BUSY_IDLE_TIMEOUT)
        return self.limits.idle_timeout

    def _log_refusal(self) -> None:
        now = time.monotonic()
        if now < self._next_log:
            return
        self._next_log = now + REFUSAL_LOG_INTERVAL
        log.warning("DNS TCP connections refused at the cap: %d over the total of %d, %d over %d per client "
                    "(since start; %d open now; next report in %.0f s at most)", self.refused_total_cap,
                    self.max_connections, self.refused_client_cap, self.max_per_client, self.open,
                    REFUSAL_LOG_INTERVAL)

    def describe(self) -> str:
        """One line for the start log: the caps and timeouts in force."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        lowered = ""
        if self.max_connections < self.limits.max_connections and soft != resource.RLIM_INFINITY:
            lowered = (f" (tcp max_connections {self.limits.max_connections} lowered: file descriptor limit "
                       f"{soft} minus {fd_reserve(soft)} kept for the API, state file and prober)")
        return (f"DNS TCP: at most {self.max_connections} connections{lowered}, {self.max_per_client} per client "
                f"address, idle timeout {self.limits.idle_timeout:g} s, message timeout "
                f"{self.limits.message_timeout:g} s")
