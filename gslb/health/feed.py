"""Health for DNS worker processes (`gslb serve --workers N`): the main process probes and combines;
each worker gets every new snapshot over a socket, one JSON line each, and answers from it.

`SnapshotSender` runs in the main process, `HealthFeed` in a worker. A worker reads the same zone files,
so target keys (address + check) match on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterable
from types import MappingProxyType

from gslb.config.model import Target
from gslb.config.overrides import Override, parse_selector
from gslb.health.snapshot import EndpointHealth, HealthSnapshot, ProxyPoolView, RegionView
from gslb.health.statefile import target_key

log = logging.getLogger("gslb.health")


def encode_snapshot(snapshot: HealthSnapshot) -> bytes:
    return json.dumps({
        "version": snapshot.version,
        "overrides": [[*key, o.as_json()] for key, o in snapshot.overrides.items()],
        "targets": [{"key": target_key(t), "state": h.state, "since": h.since, "reason": h.reason,
                     "regions": {r: [v.state, v.rtt_ms, v.error, v.updated, v.prober_error]
                                 for r, v in h.regions.items()}}
                    for t, h in snapshot.targets.items()],
        "proxies": {k: [v.healthy, v.total, v.healthy_weight, v.total_weight, v.updated]
                    for k, v in snapshot.proxies.items()},
    }).encode() + b"\n"


def decode_snapshot(line: bytes, known: dict[str, Target]) -> HealthSnapshot:
    """A snapshot from `encode_snapshot`; targets this process does not serve are left out."""
    data = json.loads(line)
    targets = {}
    for item in data["targets"]:
        target = known.get(item["key"])
        if target is not None:
            regions = {r: RegionView(*v) for r, v in item["regions"].items()}
            targets[target] = EndpointHealth(item["state"], item["since"], item["reason"], MappingProxyType(regions))
    overrides = {}
    for *key, o in data["overrides"]:
        overrides[tuple(key)] = Override(parse_selector(o["selector"]), o["state"], o["reason"], o["source"],
                                         o["until"], o["by"], o["created"], o["file"], o["line"] or 0)
    proxies = {k: ProxyPoolView(*v) for k, v in data.get("proxies", {}).items()}
    return HealthSnapshot(MappingProxyType(targets), MappingProxyType(overrides), data["version"],
                          MappingProxyType(proxies))


class SnapshotSender:
    """Main process side: sends each published snapshot to every worker (the latest wins if one lags)."""

    def __init__(self, sockets: list[socket.socket]):
        self.sockets = sockets
        for sock in sockets:
            sock.setblocking(False)
        self._latest: bytes | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def publish(self, snapshot: HealthSnapshot) -> None:
        self._latest = encode_snapshot(snapshot)
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            data = self._latest
            for sock in list(self.sockets):
                try:
                    await loop.sock_sendall(sock, data)
                except OSError as exc:
                    log.warning("a DNS worker is gone (%s): no more health updates to it", exc)
                    self.sockets.remove(sock)


class HealthFeed:
    """Worker side: the same face as HealthService for the server (snapshot, set_targets, start, stop)."""

    def __init__(self, sock: socket.socket, on_change: Callable[[HealthSnapshot], None]):
        self.sock = sock
        self.on_change = on_change
        self.snapshot = HealthSnapshot()
        self.known: dict[str, Target] = {}
        self._pending: bytes | None = None
        self._task: asyncio.Task | None = None

    def set_zones(self, zones: object) -> None:
        """Overrides are resolved in the main process; they arrive in its snapshots."""

    def reload_overrides(self, force: bool = False) -> bool:
        return False

    def set_targets(self, targets: Iterable[Target]) -> None:
        self.known = {target_key(t): t for t in targets}
        if self._pending is not None:           # a snapshot that came before the zones: decode it now
            self._apply(self._pending)

    def _apply(self, line: bytes) -> None:
        self._pending = line
        self.snapshot = decode_snapshot(line, self.known)
        self.on_change(self.snapshot)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        reader, _ = await asyncio.open_connection(sock=self.sock, limit=64 * 1024 * 1024)
        while True:
            line = await reader.readline()
            if not line:
                log.warning("the main gslb process is gone: keeping the last health snapshot")
                return
            self._apply(line)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
