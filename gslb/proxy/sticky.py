"""Sticky cookies: opaque, signed pins of a client to a backend.

A cookie is `ID.EXPIRES.MAC`. ID is an HMAC of the backend's address under the sticky secret, so the
cookie names the backend without showing its address (a client cannot learn the network layout from
it, nor aim at a backend of its choice: IDs cannot be made without the secret). MAC signs ID and the
expiry, so a cookie cannot be extended or moved to another backend. A cookie the proxy cannot read
(forged, expired, from an older format, for a backend no longer in the pool) is simply replaced by a new
pick and a new cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import time

ID_CHARS = 16         # 64 bits of HMAC: unique among a pool's backends, meaningless without the secret
MAC_CHARS = 32        # 128 bits


def _hmac(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def backend_id(secret: str, address: str) -> str:
    """The opaque name of a backend in cookies ("backend|" keeps it apart from the MAC's input)."""
    return _hmac(secret, f"backend|{address}")[:ID_CHARS]


def sign(secret: str, ident: str, ttl: int, now: float | None = None) -> str:
    """A cookie value pinning `ident` (from backend_id) for `ttl` seconds."""
    expires = int(time.time() if now is None else now) + ttl
    return f"{ident}.{expires}.{_hmac(secret, f'pin|{ident}|{expires}')[:MAC_CHARS]}"


def verify(secret: str, value: str, now: float | None = None) -> str | None:
    """The backend ID a cookie value pins, or None when it is malformed, forged or expired."""
    parts = value.split(".")
    if len(parts) != 3 or len(parts[0]) != ID_CHARS or not parts[1].isdigit():
        return None
    ident, expires, mac = parts
    if int(expires) < (time.time() if now is None else now):
        return None
    good = _hmac(secret, f"pin|{ident}|{expires}")[:MAC_CHARS]
    return ident if hmac.compare_digest(good, mac) else None
