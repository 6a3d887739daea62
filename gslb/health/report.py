"""The report a prober pushes to DNS servers (POST /v1/reports), as JSON.

Targets are named by `target_id`, a hash of their full key (address + every check field), which keeps a
report about a tenth of the size of one naming the keys; a prober and a server agree on it as long as
they read the same check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from gslb.config.model import Target
from gslb.health.snapshot import RegionView
from gslb.health.statefile import target_key


def key_id(key: str) -> str:
    """The id of a `target_key`."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def target_id(target: Target) -> str:
    """A short stable id of a target, the same in every process that reads the same check."""
    return key_id(target_key(target))


def encode_report(region: str, interval: float, views: Mapping[Target, RegionView]) -> bytes:
    """The JSON body of a report."""
    return json.dumps({
        "region": region, "interval": interval,
        "views": [{"id": target_id(t), "state": v.state,
                   "rtt_ms": None if v.rtt_ms is None else round(v.rtt_ms, 3), "error": v.error,
                   "updated": round(v.updated, 3)} for t, v in views.items()],
    }, separators=(",", ":")).encode()


def decode_report(body: bytes, known: Mapping[str, Target]) -> tuple[str, float, dict[Target, RegionView]]:
    """Parse a report; `known` maps `target_id` to the targets this server serves, others are dropped.
    A view may also name its target by the full `key` (reports from before ids).

    :raises ValueError: when the body is not a report (also KeyError, TypeError on a wrong shape).
    """
    data = json.loads(body)
    region, interval = str(data["region"]), float(data["interval"])
    if not region or not 0.05 <= interval <= 3600:
        raise ValueError("region must be named and interval within 0.05..3600 s")
    views = {}
    for item in data["views"]:
        target = known.get(item["id"] if "id" in item else key_id(item["key"]))
        if target is not None and item["state"] in ("unknown", "up", "down"):
            rtt = item.get("rtt_ms")
            error = item.get("error")
            views[target] = RegionView(item["state"], None if rtt is None else float(rtt),
                                       None if error is None else str(error), float(item.get("updated") or 0))
    return region, interval, views
