"""What `--workers N` processes share, through files in one private directory.

Only the first worker serves the admin API, yet every worker forwards requests. So an admin drain is
written to `drain.json`, which every worker applies within a sweep (0.2 s); and every worker writes its
counters to `stats-<index>.json` once a second, which the admin worker adds to its own for `/metrics`
and `/v1/backends`. Files are replaced atomically (write, then rename), so a reader never sees half.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

# The worker's core.Proxy: typed loosely so this module stays below core (core imports it).
Proxy = Any


def _write(path: str, data: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _read(path: str) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


class WorkerShare:
    """One worker's view of the shared directory."""

    def __init__(self, directory: str, index: int):
        self.directory = directory
        self.index = index
        self.drain_path = os.path.join(directory, "drain.json")
        self._drain_stamp: float | None = None

    # -- drains: written by the admin worker, applied by all ------------------------------------------
    def publish_drain(self, address: str, drain: bool) -> None:
        drains = _read(self.drain_path) or {}
        drains[address] = drain
        _write(self.drain_path, drains)

    def drains_if_changed(self) -> dict[str, bool] | None:
        """The admin drains, when the file changed since the last call; None otherwise."""
        try:
            stamp = os.stat(self.drain_path).st_mtime_ns
        except OSError:
            return None
        if stamp == self._drain_stamp:
            return None
        self._drain_stamp = stamp
        return _read(self.drain_path)

    def drains(self) -> dict[str, bool]:
        return _read(self.drain_path) or {}

    # -- counters: written by every worker, summed by the admin worker -----------------------------------
    def publish_stats(self, proxy: Proxy) -> None:
        _write(os.path.join(self.directory, f"stats-{self.index}.json"), stats_of(proxy))

    def others(self) -> list[dict]:
        """The latest counters of the other workers."""
        out = []
        for name in sorted(os.listdir(self.directory)):
            if name.startswith("stats-") and name.endswith(".json") and name != f"stats-{self.index}.json":
                data = _read(os.path.join(self.directory, name))
                if data:
                    out.append(data)
        return out


def stats_of(proxy: Proxy) -> dict:
    """A worker's counters as JSON-able data."""
    return {
        "requests": [[*key, count] for key, count in proxy.requests.items()],
        "latency": dict(proxy.latency), "latency_sum": dict(proxy.latency_sum),
        # per backend: active, requests, ejections, connect errors, retries, upstream time sum, then its
        # upstream histogram buckets (gslb/proxy/metrics.py reads them; all summed over workers)
        "backends": {f"{name}|{b.address}": [b.active, b.requests, b.ejections, b.connect_errors, b.retries,
                                             b.upstream_sum, *b.upstream]
                     for name, pool in proxy.pools.items() for b in pool.backends},
        "connections": len(proxy.connections),
    }


def merged(proxy: Proxy, others: list[dict]) -> dict:
    """This worker's counters plus the others': the whole proxy's."""
    total = stats_of(proxy)
    requests: dict[tuple, int] = {tuple(row[:-1]): row[-1] for row in total["requests"]}
    for data in others:
        for row in data.get("requests", []):
            key = tuple(row[:-1])
            requests[key] = requests.get(key, 0) + row[-1]
        for pool, counts in data.get("latency", {}).items():
            mine = total["latency"].setdefault(pool, [0] * len(counts))
            total["latency"][pool] = [x + y for x, y in zip(mine, counts)]
        for pool, value in data.get("latency_sum", {}).items():
            total["latency_sum"][pool] = total["latency_sum"].get(pool, 0.0) + value
        for key, values in data.get("backends", {}).items():
            if key in total["backends"]:
                total["backends"][key] = [x + y for x, y in zip(total["backends"][key], values)]
    total["requests"] = requests
    total["connections"] += sum(data.get("connections", 0) for data in others)
    return total


def cleanup(directory: str) -> None:
    """Remove the shared directory (the parent does, after its workers exit)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
