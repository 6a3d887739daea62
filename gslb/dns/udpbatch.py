"""DNS over UDP in batches: on each readiness event, drain the socket up to a bound, answering a batch
of queries per system call pair (recvmmsg/sendmmsg) instead of one datagram per event-loop callback.

Two twins with one interface (`Batch(fd, count)`, `.recv()`, `.send(replies)`), picked at import time
like aiohttp's parsers: the C extension gslb/dns/_udpbatch.c (built at install by setup.py, Linux
only) and the pure-Python gslb/dns/udpbatch_py.py. The environment variable GSLB_DNS_UDP chooses:

    auto      (default) the C twin when it is built and this is Linux, else asyncio's datagram endpoint
    c         the C twin (an error at start when it is not built)
    python    the pure-Python twin (recvfrom/sendto in a loop: no fewer system calls, fewer loop wake-ups)
    asyncio   the event loop's datagram endpoint, one callback per datagram (uvloop when installed)

Every mode calls the same `Handler` per query, so rate limiting, counters and the query log behave
alike; tests/test_dns_udp_batch.py runs the same queries over real UDP in each mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable

from gslb.dns import udpbatch_py
from gslb.errors import GslbError

try:
    from gslb.dns import _udpbatch as _c  # type: ignore[attr-defined]
except ImportError:                         # not built (no compiler at install, or not Linux)
    _c = None

log = logging.getLogger("gslb.dns")

MODES = ("auto", "c", "python", "asyncio")
BATCH = 64                  # datagrams per recvmmsg; at 64 the per-call cost is about 1/64th of a query
BATCHES_PER_EVENT = 16      # at most 1,024 queries per readiness event, then TCP and the API get a turn
C_AVAILABLE = _c is not None and sys.platform.startswith("linux")


class UdpModeError(GslbError, ValueError):
    """GSLB_DNS_UDP names a mode that does not exist or is not available here (a ValueError, so that
    `gslb serve` says "cannot start: ..." and exits 1)."""


def udp_mode() -> str:
    """The UDP mode to use: GSLB_DNS_UDP resolved ('auto' becomes 'c' or 'asyncio').

    :raises UdpModeError: for an unknown value, or 'c' where the extension is not built.
    """
    wanted = os.environ.get("GSLB_DNS_UDP", "auto").strip().lower() or "auto"
    if wanted not in MODES:
        raise UdpModeError(f"GSLB_DNS_UDP={wanted!r} is not one of {', '.join(MODES)}")
    if wanted == "auto":
        return "c" if C_AVAILABLE else "asyncio"
    if wanted == "c" and not C_AVAILABLE:
        raise UdpModeError("GSLB_DNS_UDP=c but the C extension gslb.dns._udpbatch is not built here (it needs "
                           "Linux and a C compiler at install: pip install -e . again), use auto or python")
    return wanted


class BatchedUdp:
    """A UDP socket served in batches from the event loop's reader callback.

    Looks enough like an asyncio transport for the server: `get_extra_info("sockname")`, `close()`,
    `is_closing()`.
    """

    def __init__(self, sock: socket.socket, handler: Callable[[bytes, str, bool], bytes | None], mode: str,
                 count: int = BATCH):
        sock.setblocking(False)
        self.sock = sock
        self.handler = handler
        self.mode = mode
        self.batch = (_c.Batch if mode == "c" else udpbatch_py.Batch)(sock.fileno(), count)
        self.count = count
        self.loop = asyncio.get_running_loop()
        self._closing = False
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        """Drain the socket: batches of queries answered in order, until it is empty or the bound is met."""
        batch, handler = self.batch, self.handler
        for _ in range(BATCHES_PER_EVENT):
            try:
                queries = batch.recv()
            except OSError as exc:          # like asyncio's error_received: a socket error is not fatal
                log.debug("udp error: %s", exc)
                return
            if not queries:
                return
            batch.send([handler(data, ip, False) for data, ip in queries])
            if len(queries) < self.count:
                return                      # the socket is empty: no need to ask it again

    def get_extra_info(self, name: str, default=None):
        if name == "sockname":
            return self.sock.getsockname()
        if name == "socket":
            return self.sock
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.loop.remove_reader(self.sock.fileno())
        if isinstance(self.batch, udpbatch_py.Batch):
            self.batch.detach()
        self.sock.close()
