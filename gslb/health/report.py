"""The report a prober pushes to DNS servers (POST /v1/reports), as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gslb.config.model import Target
from gslb.health.snapshot import RegionView
from gslb.health.statefile import target_key


def encode_report(region: str, interval: float, views: Mapping[Target, RegionView]) -> bytes:
    return json.dumps({
        "region": region, "interval": interval,
        "views": [{"key": target_key(t), "state": v.state, "rtt_ms": v.rtt_ms, "error": v.error,
                   "updated": v.updated} for t, v in views.items()],
    }).encode()


def decode_report(body: bytes, known: Mapping[str, Target]) -> tuple[str, float, dict[Target, RegionView]]:
    """Parse a report; views of targets this server does not serve are dropped.

    :raises ValueError: when the body is not a report.
    """
    data = json.loads(body)
    region, interval = str(data["region"]), float(data["interval"])
    if not region or not 0.05 <= interval <= 3600:
        raise ValueError("region must be named and interval within 0.05..3600 s")
    views = {}
    for item in data["views"]:
        target = known.get(item["key"])
        if target is not None and item["state"] in ("unknown", "up", "down"):
            rtt = item.get("rtt_ms")
            views[target] = RegionView(item["state"], None if rtt is None else float(rtt), item.get("error"),
                                       float(item.get("updated") or 0))
    return region, interval, views
