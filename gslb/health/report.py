"""The report a prober pushes to DNS servers (POST /v1/reports), as JSON, maybe gzipped.

Targets are named by `target_id`, a hash of their full key (address + every check field), which keeps a
report about a tenth of the size of one naming the keys; a prober and a server agree on it as long as
they read the same check.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping

from gslb.config.model import Target
from gslb.health.snapshot import ProberStatus, RegionView
from gslb.health.statefile import target_key


class ReportTooLarge(ValueError):
    """A report that inflates past the size limit."""


def key_id(key: str) -> str:
    """The id of a `target_key`."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def target_id(target: Target) -> str:
    """A short stable id of a target, the same in every process that reads the same check."""
    return key_id(target_key(target))


def encode_report(region: str, interval: float, views: Mapping[Target, RegionView],
                  status: ProberStatus | None = None) -> bytes:
    """The JSON body of a report."""
    data: dict = {
        "region": region, "interval": interval,
        "views": [{"id": target_id(t), "state": v.state,
                   "rtt_ms": None if v.rtt_ms is None else round(v.rtt_ms, 3), "error": v.error,
                   "updated": round(v.updated, 3), **({"prober_error": v.prober_error} if v.prober_error else {})}
                  for t, v in views.items()],
    }
    if status is not None:
        data["prober"] = {"errors_total": status.errors_total, "last_error": status.last_error,
                          "last_error_at": round(status.last_error_at, 3), "blind": status.blind}
    return json.dumps(data, separators=(",", ":")).encode()


def inflate(data: bytes, limit: int, chunk: int = 2**16) -> bytes:
    """Gunzip `data`, never producing more than `limit` bytes: the bound is applied while inflating,
    so a small body that would inflate to gigabytes costs at most `limit` bytes and the time to make them.

    :raises ReportTooLarge: past `limit`. :raises ValueError: not one gzip member.
    """
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    pending = data
    try:
        while pending or not inflater.eof:
            room = limit + 1 - len(out)
            part = inflater.decompress(pending, min(room, chunk))
            out += part
            if len(out) > limit:
                raise ReportTooLarge(f"report inflates past {limit} bytes")
            pending = inflater.unconsumed_tail
            if not part and not pending:
                break
    except zlib.error as exc:
        raise ValueError(f"not gzip: {exc}") from None
    if not inflater.eof:
        raise ValueError("gzip body cut short")
    if inflater.unused_data:
        raise ValueError("data after the gzip body")
    return bytes(out)


def decode_report(body: bytes, known: Mapping[str, Target]) -> tuple[str, float, dict[Target, RegionView], ProberStatus]:
    """Parse a report; `known` maps `target_id` to the targets this server serves, others are dropped.
    A view may also name its target by the full `key` (reports from before ids).

    :raises ValueError: when the body is not a report (also KeyError, TypeError on a wrong shape).
    """
    return decode_report_data(json.loads(body), known)


def decode_report_data(data, known: Mapping[str, Target]) -> tuple[str, float, dict[Target, RegionView],
                                                                    ProberStatus]:
    """`decode_report` of the JSON already parsed (gslb/health/proxyreport.py tells the kinds apart)."""
    region, interval = str(data["region"]), float(data["interval"])
    if not region or not 0.05 <= interval <= 3600:
        raise ValueError("region must be named and interval within 0.05..3600 s")
    views = {}
    for item in data["views"]:
        target = known.get(item["id"] if "id" in item else key_id(item["key"]))
        if target is not None and item["state"] in ("unknown", "up", "down"):
            rtt = item.get("rtt_ms")
            error = item.get("error")
            prober_error = item.get("prober_error")
            views[target] = RegionView(item["state"], None if rtt is None else float(rtt),
                                       None if error is None else str(error), float(item.get("updated") or 0),
                                       None if prober_error is None else str(prober_error)[:500])
    prober = data.get("prober") or {}
    status = ProberStatus(int(prober.get("errors_total") or 0),
                          None if prober.get("last_error") is None else str(prober["last_error"])[:500],
                          float(prober.get("last_error_at") or 0),
                          None if prober.get("blind") is None else str(prober["blind"])[:500])
    return region, interval, views, status
