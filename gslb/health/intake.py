"""Admission of prober reports: which key, how fresh, seen before or not, and what was refused.

The order is what keeps an unauthenticated sender cheap: the header is checked before the body is read
(key, time window), the HMAC is fed the body as it arrives, and only a report whose signature is good is
inflated and parsed (by the caller, off the event loop). Refusals are counted by reason and logged at
most once per REFUSAL_LOG_INTERVAL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from gslb.health.signing import MAX_AGE, Signature, SignatureError, Verifier, check_time, parse_signature

log = logging.getLogger("gslb.health")
REASONS = ("bad_signature", "replay", "stale", "future", "too_large", "malformed")
REFUSAL_LOG_INTERVAL = 10.0


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
        self._seen: dict[str, float] = {}           # MAC -> stamp, of good signatures within the window
        self._pruned_at = 0.0
        self._logged_at = 0.0
        self._unlogged: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no key: every report is refused with 403)."""
        return bool(self.secret or self.region_keys)

    def refuse(self, reason: str, message: str, peer: str | None = None) -> ReportRefused:
        """Count a refusal, log it (rate-limited), and return the exception to raise."""
        self.refused[reason] += 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL:
            counts = ", ".join(f"{n} {r}" for r, n in sorted(self._unlogged.items()))
            log.warning("prober reports refused (%s); the last from %s: %s", counts, peer or "?", message[:200])
            self._logged_at, self._unlogged = now, {}
        return ReportRefused(reason, message, _STATUS[reason])

    def begin(self, header: str | None, peer: str | None = None) -> Verifier:
        """Check the signature header before the body is read: its form, its key, its time.

        :raises ReportRefused:
        """
        try:
            sig = parse_signature(header)
            check_time(sig, self.clock())
        except SignatureError as exc:
            raise self.refuse(exc.reason, str(exc), peer) from None
        key = self.region_keys.get(sig.region) if sig.region is not None else None
        if key is None:
            key = self.secret
        if key is None:
            raise self.refuse("bad_signature", f"no key for region {sig.region} on this server "
                              "(health.region_keys) and no shared secret", peer)
        return Verifier(key, sig)

    def check_mac(self, verifier: Verifier, peer: str | None = None) -> Signature:
        """After the whole body went through `verifier`: the signature is good and was not seen before.
        The signature is remembered at once, so a copy sent while this one is being parsed is refused.

        :raises ReportRefused:
        """
        sig = verifier.sig
        if not verifier.ok():
            raise self.refuse("bad_signature", "bad signature (over the body as sent, gzipped or not)", peer)
        now = self.clock()
        if now - self._pruned_at >= 1.0:
            # A signature older than the window is refused as stale anyway: no need to remember it.
            self._pruned_at = now
            self._seen = {mac: stamp for mac, stamp in self._seen.items() if stamp >= now - MAX_AGE - 1}
        if sig.mac in self._seen:
            raise self.refuse("replay", "this exact report was received before (a replay)", peer)
        self._seen[sig.mac] = sig.stamp
        return sig

    def admit(self, sig: Signature, region: str, peer: str | None = None) -> None:
        """With the report parsed: its key may speak for `region`, and it is not older than the region's
        last report. Records it as the region's latest.

        :raises ReportRefused:
        """
        if sig.region is not None and sig.region != region:
            raise self.refuse("bad_signature", f"signed for region {sig.region} but reports region {region}", peer)
        if region in self.region_keys and sig.region not in self.region_keys:
            raise self.refuse("bad_signature", f"region {region} has its own key (health.region_keys): a "
                              "report signed with another key cannot speak for it", peer)
        last = self.last_stamp.get(region, 0.0)
        if sig.stamp < last:
            # A captured report replayed within its window would bring back an old view.
            raise self.refuse("replay", f"report signed at {sig.stamp_text}, older than the last one from "
                              f"region {region} ({last:.3f})", peer)
        self.last_stamp[region] = sig.stamp
        self.accepted += 1

