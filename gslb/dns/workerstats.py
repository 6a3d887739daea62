"""Counters of `gslb serve --workers N` processes, sent to the first process so /metrics sums them all.

Each DNS worker already holds a socket to the first process (the health feed, gslb/health/feed.py, which
sends snapshots the other way). Once a second a worker writes one JSON line of its counters
(`gslb.dns.stats` rows, cumulative) on that socket; the first process keeps the latest line of each
worker and adds them to its own when /metrics is read. A line is a few kilobytes for a few hundred
endpoints and costs the worker well under a millisecond a second. Being cumulative, a lost or late line
costs nothing but a second of staleness; a worker that exits keeps its last counts in the sums, so the
totals never go backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable

from gslb.dns.stats import WorkerCounters
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.dns")
INTERVAL = 1.0          # seconds between two counter lines of a worker
MAX_LINE = 64 * 2**20


class CounterReporter:
    """Worker side: sends `rows()` every INTERVAL on (a duplicate of) the feed socket."""

    def __init__(self, sock: socket.socket, rows: Callable[[], dict], interval: float = INTERVAL):
        # A duplicate: the health feed's stream transport owns the original descriptor.
        self.sock = sock.dup()
        self.sock.setblocking(False)
        self.rows = rows
        self.interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await loop.sock_sendall(self.sock, json.dumps(self.rows()).encode() + b"\n")
            except OSError as exc:
                log.warning("cannot send counters to the first gslb process (%s): /metrics misses this "
                            "worker's counts from now on", exc)
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sock.close()


class CounterCollector:
    """First-process side: reads every worker's counter lines into a `WorkerCounters`."""

    def __init__(self, sockets: list[socket.socket]):
        self.sockets = [s.dup() for s in sockets]    # the originals carry health snapshots the other way
        self.counters = WorkerCounters()
        self._tasks: list[asyncio.Task] = []
        self._writers: list[asyncio.StreamWriter] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read(i, s)) for i, s in enumerate(self.sockets, start=1)]

    async def _read(self, worker: int, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
        self._writers.append(writer)
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError) as exc:
                log.warning("counters of DNS worker %d unreadable (%s): its last counts stay in /metrics",
                            worker, exc)
                return
            if not line:
                return                     # the worker is gone: its last counts stay in the sums
            try:
                self.counters.update(worker, json.loads(line))
            except ValueError:
                log.warning("DNS worker %d sent a counter line that is not JSON; ignored", worker)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for writer in self._writers:
            writer.close()
