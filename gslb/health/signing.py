"""Authenticating prober reports (HMAC-SHA256 over timestamp and the body as sent) and operator calls
(bearer).

A report's signature header is `t=STAMP[,region=NAME],sig=HEX`: HMAC-SHA256 with the key over
`STAMP "." BODY`, where BODY is the bytes on the wire (gzipped when sent gzipped), so a server checks it
before spending anything on inflating or parsing. STAMP is unix time with milliseconds. `region` names
the key: a region with its own key (`health.region_keys`) signs with it, others with the shared secret.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from dataclasses import dataclass

HEADER = "X-Gslb-Signature"
MAX_AGE = 60.0       # seconds a signed report stays valid after its stamp: a prober's reports may queue
MAX_AHEAD = 5.0      # seconds a stamp may be in the future: clock skew between an NTP-synced prober and server
_REGION = re.compile(r"[A-Za-z0-9._-]{1,64}")


class SignatureError(ValueError):
    """A signature header that cannot be checked; `reason` is the refusal counter's name."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed signature header."""

    stamp_text: str       # as sent: the MAC covers these exact characters
    stamp: float
    region: str | None
    mac: str


def sign(secret: str, body: bytes, now: float | None = None, region: str | None = None) -> str:
    """The signature header value for a report body (the bytes that will be sent)."""
    stamp = f"{now if now is not None else time.time():.3f}"
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={stamp}," + (f"region={region}," if region else "") + f"sig={mac}"


def parse_signature(header: str | None) -> Signature:
    """The fields of a signature header.

    :raises SignatureError: missing or malformed (reason "bad_signature").
    """
    if not header:
        raise SignatureError("bad_signature", f"missing {HEADER} header")
    try:
        fields = dict(part.split("=", 1) for part in header.split(",", 3))
        stamp_text, mac = fields["t"], fields["sig"]
        stamp = float(stamp_text)
    except (ValueError, KeyError):
        raise SignatureError("bad_signature", f"malformed {HEADER} header") from None
    region = fields.get("region")
    if region is not None and not _REGION.fullmatch(region):
        raise SignatureError("bad_signature", f"malformed {HEADER} header: bad region name")
    if len(mac) != 64 or not math.isfinite(stamp):
        raise SignatureError("bad_signature", f"malformed {HEADER} header")
    return Signature(stamp_text, stamp, region, mac)


def check_time(sig: Signature, now: float | None = None) -> None:
    """Refuse stamps older than MAX_AGE ("stale") or more than MAX_AHEAD in the future ("future").

    :raises SignatureError:
    """
    now = time.time() if now is None else now
    if sig.stamp < now - MAX_AGE:
        raise SignatureError("stale", f"signature time is {now - sig.stamp:.0f} s old (max {MAX_AGE:.0f} s)")
    if sig.stamp > now + MAX_AHEAD:
        raise SignatureError("future", f"signature time is {sig.stamp - now:.0f} s in the future (max "
                                       f"{MAX_AHEAD:.0f} s): check the prober's and the server's clocks (NTP)")


class Verifier:
    """An HMAC fed the body as it arrives: nothing of it needs to be kept to check the signature."""

    def __init__(self, key: str, sig: Signature):
        self.sig = sig
        self._mac = hmac.new(key.encode(), sig.stamp_text.encode() + b".", hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def ok(self) -> bool:
        return hmac.compare_digest(self._mac.hexdigest(), self.sig.mac)


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> str | None:
    """None when the signature over `body` is good and its time within the window, else why not."""
    try:
        sig = parse_signature(header)
        check_time(sig, now)
    except SignatureError as exc:
        return str(exc)
    verifier = Verifier(secret, sig)
    verifier.update(body)
    return None if verifier.ok() else "bad signature"


def bearer_ok(secret: str | None, header: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer SECRET` header."""
    if not secret or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].encode(), secret.encode())
