"""The report a regional proxy (`gslb proxy` with `report_to:`) pushes to DNS nodes: per routed pool,
healthy backends of total and their summed weight (docs/proxy.md, "Reporting to DNS").

It travels as a prober report does: POST /v1/reports, signed with the same header and admitted by the
same intake (gslb/health/intake.py: key, time window, exact replays, order per sender, size), and is
told apart from a prober's by its `proxy` key. DNS uses it only to take an endpoint down or to lower its
weight (gslb/steering/decide.py), never to keep up one the probers see down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gslb.config.model import Target
from gslb.health.report import decode_report_data
from gslb.health.snapshot import ProxyPoolView

NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_POOLS = 10_000
MAX_BACKENDS = 1_000_000


@dataclass(frozen=True, slots=True)
class ProxyReport:
    """One proxy's report, parsed."""

    proxy: str                       # its report_name: zones say proxy_pool: NAME/POOL
    region: str | None               # the region whose key signed it (None: the shared secret)
    interval: float                  # its heartbeat: silent for 3 of them, its pools drop out
    pools: Mapping[str, ProxyPoolView]
    draining: bool = False           # sent once at shutdown: every pool reported empty

    @property
    def source(self) -> str:
        """The sender as the intake orders and counts its reports: apart from the probers of its region."""
        return f"proxy:{self.proxy}"


def encode_proxy_report(proxy: str, region: str | None, interval: float,
                        pools: Mapping[str, tuple[int, int, int, int]], draining: bool = False) -> bytes:
    """The JSON body: `pools` maps a pool name to (healthy, total, healthy_weight, total_weight)."""
    data: dict[str, Any] = {"proxy": proxy, "region": region, "interval": interval, "pools": {
        name: {"healthy": h, "total": t, "healthy_weight": hw, "total_weight": tw}
        for name, (h, t, hw, tw) in pools.items()}}
    if draining:
        data["draining"] = True
    return json.dumps(data, separators=(",", ":")).encode()


def _count(item: Mapping, key: str, most: int) -> int:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValueError(f"{key} must be a whole number 0..{most}")
    return value


def decode_proxy_report(data: Mapping, stamp: float) -> ProxyReport:
    """A proxy report from its parsed JSON; `stamp`: when it was signed.

    :raises ValueError: (also KeyError, TypeError) when it is not one.
    """
    proxy, region, interval = data["proxy"], data.get("region"), float(data["interval"])
    if not isinstance(proxy, str) or not NAME.fullmatch(proxy):
        raise ValueError("proxy must be a name of up to 64 letters, digits, '.', '_' or '-'")
    if region is not None and (not isinstance(region, str) or not NAME.fullmatch(region)):
        raise ValueError("region must be a region name or null")
    if not 0.05 <= interval <= 60:
        raise ValueError("interval must be within 0.05..60 s")
    raw = data["pools"]
    if not isinstance(raw, dict) or len(raw) > MAX_POOLS:
        raise ValueError(f"pools must map up to {MAX_POOLS} pool names to their counts")
    pools = {}
    for name, item in raw.items():
        if not 0 < len(name) <= 200 or "/" in name:
            raise ValueError("a pool name must be 1..200 characters, without '/'")
        total, total_weight = _count(item, "total", MAX_BACKENDS), _count(item, "total_weight", 2**40)
        healthy, healthy_weight = _count(item, "healthy", total), _count(item, "healthy_weight", total_weight)
        pools[name] = ProxyPoolView(healthy, total, healthy_weight, total_weight, stamp)
    return ProxyReport(proxy, region, interval, pools, data.get("draining") is True)


def decode_any(body: bytes, known: Mapping[str, Target], stamp: float):
    """A prober report (gslb.health.report.ProberReport) or a ProxyReport, by its shape.

    :raises ValueError: (also KeyError, TypeError) when it is neither.
    """
    data = json.loads(body)
    if isinstance(data, dict) and "proxy" in data:
        return decode_proxy_report(data, stamp)
    return decode_report_data(data, known)
