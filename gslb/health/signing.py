"""Authenticating prober reports (HMAC-SHA256 over timestamp and body) and operator calls (bearer)."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Gslb-Signature"
MAX_SKEW = 60.0      # seconds a signed report stays valid: limits replays


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    """The signature header value for a report body."""
    stamp = str(int(now if now is not None else time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={stamp},sig={mac}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> str | None:
    """None when the signature is good, else why not."""
    if not header:
        return f"missing {HEADER} header"
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        stamp, given = fields["t"], fields["sig"]
        skew = abs((now if now is not None else time.time()) - int(stamp))
    except (ValueError, KeyError):
        return f"malformed {HEADER} header"
    if skew > MAX_SKEW:
        return f"signature time is {skew:.0f} s off (max {MAX_SKEW:.0f} s)"
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        return "bad signature"
    return None


def stamp_of(header: str) -> int:
    """The timestamp of a signature header that `verify` accepted."""
    return int(dict(part.split("=", 1) for part in header.split(","))["t"])


def bearer_ok(secret: str | None, header: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer SECRET` header."""
    if not secret or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].encode(), secret.encode())
