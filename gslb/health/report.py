"""The report a prober pushes to DNS servers (POST /v1/reports), as JSON, maybe gzipped.

Targets are named by `target_id`, a hash of their full key (address + every check field), which keeps a
report about a tenth of the size of one naming the keys; a prober and a server agree on it as long as
they read the same check.

Reports are incremental (docs/health-checks.md, "Incremental reports"). Each names the prober's `run` (a
random id per process start) and a `seq` (one more per report it makes). A *full* report lists every
target; a *delta* also names `base`, the seq of the last report this server took from that run, and lists
only the targets whose view moved since (state, error, prober error, or RTT to another step:
gslb/health/rttstep.py) and, in `gone`, those no longer probed. A server applies a delta only on top of
exactly that base; otherwise it answers `need_full` and the prober sends a full report at once. A prober
sends deltas to a server only after that server said it takes them (`"deltas": true` in its answer), and
a full report every `full_every` seconds all the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gslb.config.model import Target
from gslb.health.rttstep import rtt_step
from gslb.health.snapshot import ProberStatus, RegionView
from gslb.health.statefile import target_key

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SEQ = 2**53


class ReportTooLarge(ValueError):
    """A report that inflates past the size limit."""


def key_id(key: str) -> str:
    """The id of a `target_key`."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


_IDS: dict[Target, str] = {}
_IDS_MAX = 200_000


def target_id(target: Target) -> str:
    """A short stable id of a target, the same in every process that reads the same check. Remembered:
    making one (every check field through asdict and JSON) costs about 100x the lookup."""
    tid = _IDS.get(target)
    if tid is None:
        if len(_IDS) >= _IDS_MAX:          # zones reloaded many times over: start over rather than grow
            _IDS.clear()
        tid = _IDS[target] = key_id(target_key(target))
    return tid


@dataclass(frozen=True, slots=True)
class ProberReport:
    """A prober's report, parsed: a full view (`base` None) or a delta on top of report `base` of `run`."""

    region: str
    interval: float
    views: dict[Target, RegionView]
    status: ProberStatus
    run: str | None = None           # None: a prober from before incremental reports (always full)
    seq: int = 0
    base: int | None = None
    gone: tuple[Target, ...] = field(default=())

    @property
    def full(self) -> bool:
        return self.base is None


def view_moved(before: RegionView | None, after: RegionView) -> bool:
    """Whether a target's view moved enough to go in a delta: what a server combines (state, error,
    prober error) or an RTT in another step. `updated` alone is not news: full reports refresh it."""
    return before is None or before.state != after.state or before.error != after.error \
        or before.prober_error != after.prober_error \
        or (before.rtt_ms is None) != (after.rtt_ms is None) \
        or (after.rtt_ms is not None and rtt_step(before.rtt_ms) != rtt_step(after.rtt_ms))


def _view_json(tid: str, v: RegionView, dumps=json.dumps) -> str:
    # Built as text (the same JSON json.dumps gives for the dict): a full report of 10,000 targets is
    # 10,000 of these, and a dict per view through the encoder cost about 3x as much.
    rtt = "null" if v.rtt_ms is None else repr(round(v.rtt_ms, 3))
    error = "null" if v.error is None else dumps(v.error)
    extra = f',"prober_error":{dumps(v.prober_error)}' if v.prober_error else ""
    return f'{{"id":"{tid}","state":"{v.state}","rtt_ms":{rtt},"error":{error},"updated":{round(v.updated, 3)!r}{extra}}}'


def encode_report(region: str, interval: float, views: Mapping[Target, RegionView] | Mapping[str, RegionView],
                  status: ProberStatus | None = None, run: str | None = None, seq: int = 0,
                  base: int | None = None, gone: Iterable[Target | str] = ()) -> bytes:
    """The JSON body of a report: full, or with `base` a delta (`views` only the moved ones, `gone` the
    targets dropped since `base`). `run`/`seq`: see the module docstring (None: an unsequenced report).
    Targets are given as Target or already as their target_id."""
    data: dict = {"region": region, "interval": interval, "views": []}
    if run is not None:
        data["run"], data["seq"] = run, seq
        if base is not None:
            data["base"] = base
            data["gone"] = [t if isinstance(t, str) else target_id(t) for t in gone]
    if status is not None:
        data["prober"] = {"errors_total": status.errors_total, "last_error": status.last_error,
                          "last_error_at": round(status.last_error_at, 3), "blind": status.blind}
    head = json.dumps(data, separators=(",", ":"))
    at = head.index('"views":[]') + len('"views":[')
    items = ",".join(_view_json(t if isinstance(t, str) else target_id(t), v) for t, v in views.items())
    return (head[:at] + items + head[at:]).encode()


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


def decode_report(body: bytes, known: Mapping[str, Target]) -> ProberReport:
    """Parse a report; `known` maps `target_id` to the targets this server serves, others are dropped.
    A view may also name its target by the full `key` (reports from before ids).

    :raises ValueError: when the body is not a report (also KeyError, TypeError on a wrong shape).
    """
    return decode_report_data(json.loads(body), known)


def decode_report_data(data, known: Mapping[str, Target]) -> ProberReport:
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
    run, seq, base, gone = data.get("run"), data.get("seq", 0), data.get("base"), ()
    if run is not None:
        if not isinstance(run, str) or not RUN_ID.fullmatch(run):
            raise ValueError("run must be up to 64 letters, digits, '_' or '-'")
        for number in (seq, base):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                       or not 0 <= number < MAX_SEQ):
                raise ValueError("seq and base must be whole numbers")
        if base is not None:
            raw = data.get("gone") or []
            if not isinstance(raw, list):
                raise ValueError("gone must be a list of target ids")
            gone = tuple(t for t in (known.get(str(i)) for i in raw) if t is not None)
    elif base is not None:
        raise ValueError("a delta (base) must name its run")
    return ProberReport(region, interval, views, status, run, seq, base, gone)
