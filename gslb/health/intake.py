"""Admission of prober reports: which key, how fresh, seen before or not, and what was refused.

The order is what keeps an unauthenticated sender cheap: the header is checked before the body is read
(key, time window), the HMAC is fed the body as it arrives, and only a report whose signature is good is
inflated and parsed (by the caller, off the event loop). Refusals are counted by reason and logged at
most once per REFUSAL_LOG_INTERVAL, with the region each was refused from.

Which region a refused report came from: the one its body names once the signature is good, else the
one its signature header names (`region=`, sent by every prober of this version; not authenticated, so
shown as claimed), else only the sender's address. Up to MAX_REFUSED_SOURCES such sources are kept for
`gslb status`, so a region that never authenticates is seen instead of simply missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gslb.health.signing import MAX_AGE, Signature, SignatureError, Verifier, check_time, parse_signature

log = logging.getLogger("gslb.health")
REASONS = ("bad_signature", "replay", "stale", "future", "too_large", "malformed")
REFUSAL_LOG_INTERVAL = 10.0
MAX_REFUSED_SOURCES = 64        # regions (or addresses) remembered as refused; the oldest goes first
LOGGED_SOURCES = 5              # sources named in one log line


@dataclass(slots=True)
class RefusedSource:
    """Reports refused from one region (or, with no region named, one address)."""

    region: str | None                  # the region claimed or reported; None when none was named
    peer: str | None                    # the address of the last refused sender
    counts: dict[str, int] = field(default_factory=dict)    # reason -> refusals
    first: float = 0.0                  # unix time of the first and the last refusal
    last: float = 0.0
    last_message: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ReportRefused(Exception):
    """A report not taken: `reason` (one of REASONS) for the counters, `status` for the HTTP answer."""

    def __init__(self, reason: str, message: str, status: int):
        super().__init__(message)
        self.reason, self.status = reason, status


_STATUS = {"bad_signature": 401, "stale": 401, "future": 401, "replay": 409, "too_large": 413, "malformed": 400}


class ReportIntake:
    """Per server: the keys, the signatures seen within the window, each region's last stamp, counters."""

    def __init__(self, secret: str | None, region_keys: Mapping[str, str], clock=time.time):
        self.secret = secret
        self.region_keys = dict(region_keys)
        self.clock = clock
        self.refused = dict.fromkeys(REASONS, 0)
        self.accepted = 0
        self.last_stamp: dict[str, float] = {}      # region -> stamp of its last accepted report
        self.last_accepted: dict[str, float] = {}   # region -> when (this server's clock) it was accepted
        self._seen: dict[str, float] = {}           # MAC -> stamp, of good signatures within the window
        self._pruned_at = 0.0
        self._logged_at = 0.0
        self._unlogged: dict[str, int] = {}
        self.sources: dict[str, RefusedSource] = {}     # region (or "peer ADDRESS") -> its refusals
        # (region, "accepted" or a refusal reason) -> reports, for gslb_prober_reports_total; never pruned
        # (a counter must not go back), so regions named by unauthenticated senders are bounded: past
        # MAX_REFUSED_SOURCES names, an unknown region is counted as "-".
        self.by_region: dict[tuple[str, str], int] = {}
        self._region_labels: set[str] = set()
        self._unlogged_sources: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no key: every report is refused with 403)."""
        return bool(self.secret or self.region_keys)

    def refuse(self, reason: str, message: str, peer: str | None = None,
               region: str | None = None) -> ReportRefused:
        """Count a refusal against its reason and its region (`region`: the one named by the report or
        its signature, if any), log it (rate-limited), and return the exception to raise."""
        self.refused[reason] += 1
        self._count(region, reason)
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        key = self._note_source(reason, message, peer, region)
        self._unlogged_sources[key] = self._unlogged_sources.get(key, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL:
            counts = ", ".join(f"{n} {r}" for r, n in sorted(self._unlogged.items()))
            busiest = sorted(self._unlogged_sources.items(), key=lambda kv: -kv[1])
            names = ", ".join(f"{k} ({n})" for k, n in busiest[:LOGGED_SOURCES])
            if len(busiest) > LOGGED_SOURCES:
                names += f" and {len(busiest) - LOGGED_SOURCES} more"
            log.warning("prober reports refused (%s) from %s; the last, from %s%s: %s", counts, names,
                        f"region {region} at " if region else "", peer or "?", message[:200])
            self._logged_at, self._unlogged, self._unlogged_sources = now, {}, {}
        return ReportRefused(reason, message, _STATUS[reason])

    def _note_source(self, reason: str, message: str, peer: str | None, region: str | None) -> str:
        key = region if region is not None else f"peer {peer or '?'}"
        source = self.sources.pop(key, None)        # re-inserted last: the dict stays oldest-first
        if source is None:
            if len(self.sources) >= MAX_REFUSED_SOURCES:
                del self.sources[next(iter(self.sources))]
            source = RefusedSource(region, peer, first=time.time())
        source.peer, source.last, source.last_message = peer, time.time(), message[:200]
        source.counts[reason] = source.counts.get(reason, 0) + 1
        self.sources[key] = source
        return key

    def refused_sources(self) -> list[dict]:
        """The regions (or addresses) whose reports were refused, newest refusal first, for the API:
        `accepted_after`: a report of that region was accepted after its last refusal."""
        return [{"source": key, "region": s.region, "peer": s.peer, "refused": dict(s.counts), "total": s.total,
                 "first": s.first, "last": s.last, "last_message": s.last_message,
                 "ever_accepted": s.region is not None and s.region in self.last_stamp,
                 "accepted_after": s.region is not None and self.last_accepted.get(s.region, 0.0) > s.last}
                for key, s in sorted(self.sources.items(), key=lambda kv: -kv[1].last)]

    def begin(self, header: str | None, peer: str | None = None) -> Verifier:
        """Check the signature header before the body is read: its form, its key, its time.

        :raises ReportRefused:
        """
        try:
            sig = parse_signature(header)
        except SignatureError as exc:
            raise self.refuse(exc.reason, str(exc), peer) from None
        try:
            check_time(sig, self.clock())
        except SignatureError as exc:
            raise self.refuse(exc.reason, str(exc), peer, sig.region) from None
        key = self.region_keys.get(sig.region) if sig.region is not None else None
        if key is None:
            key = self.secret
        if key is None:
            raise self.refuse("bad_signature", f"no key for region {sig.region} on this server "
                              "(health.region_keys) and no shared secret", peer, sig.region)
        return Verifier(key, sig)

    def check_mac(self, verifier: Verifier, peer: str | None = None) -> Signature:
        """After the whole body went through `verifier`: the signature is good and was not seen before.
        The signature is remembered at once, so a copy sent while this one is being parsed is refused.

        :raises ReportRefused:
        """
        sig = verifier.sig
        if not verifier.ok():
            raise self.refuse("bad_signature", "bad signature (over the body as sent, gzipped or not): "
                              "the prober's key is not this server's", peer, sig.region)
        now = self.clock()
        if now - self._pruned_at >= 1.0:
            # A signature older than the window is refused as stale anyway: no need to remember it.
            self._pruned_at = now
            self._seen = {mac: stamp for mac, stamp in self._seen.items() if stamp >= now - MAX_AGE - 1}
        if sig.mac in self._seen:
            raise self.refuse("replay", "this exact report was received before (a replay)", peer, sig.region)
        self._seen[sig.mac] = sig.stamp
        return sig

    def admit(self, sig: Signature, region: str | None, peer: str | None = None, source: str | None = None) -> None:
        """With the report parsed: its key may speak for `region`, and it is not older than the last
        report of its sender. Records it as the sender's latest. The sender is the region, or `source`
        when given (a regional proxy, "proxy:NAME", ordered apart from its region's probers; None region:
        it signs with the shared secret).

        :raises ReportRefused:
        """
        source = source or region
        assert source is not None, "a report names its region or its source"
        if sig.region is not None and sig.region != region:
            raise self.refuse("bad_signature", f"signed for region {sig.region} but reports region {region}",
                              peer, source)
        if region in self.region_keys and sig.region not in self.region_keys:
            raise self.refuse("bad_signature", f"region {region} has its own key (health.region_keys): a "
                              "report signed with another key cannot speak for it", peer, source)
        last = self.last_stamp.get(source, 0.0)
        if sig.stamp < last:
            # A captured report replayed within its window would bring back an old view.
            raise self.refuse("replay", f"report signed at {sig.stamp_text}, older than the last one from "
                              f"{'region ' if source == region else ''}{source} ({last:.3f})", peer, source)
        self.last_stamp[source] = sig.stamp
        self.last_accepted[source] = time.time()
        self.accepted += 1
        self._count(source, "accepted", trusted=True)

    def _count(self, region: str | None, result: str, trusted: bool = False) -> None:
        label = region if region is not None else "-"
        if label not in self._region_labels:
            if trusted or len(self._region_labels) < MAX_REFUSED_SOURCES or label in self.region_keys:
                self._region_labels.add(label)
            else:
                label = "-"
        key = (label, result)
        self.by_region[key] = self.by_region.get(key, 0) + 1

