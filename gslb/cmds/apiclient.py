"""Requests from the command line to a gslb server's HTTP API, with the key the request needs.

Writes (drain, undrain, reload) send `$GSLB_API_TOKEN`; reads send `$GSLB_API_READ_TOKEN`, or the
operator token when only that is set (it reads too). Without either, no Authorization header is sent:
a server with no `api.read_token` answers reads to anyone who reaches it (docs/security.md, API keys).
"""

from __future__ import annotations

import os
import urllib.request


def api_headers(write: bool = False) -> dict[str, str]:
    """The Authorization header for a read (or, with `write`, an operator write), from the environment."""
    token = os.environ.get("GSLB_API_TOKEN") if write else \
        os.environ.get("GSLB_API_READ_TOKEN") or os.environ.get("GSLB_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def api_request(url: str, *, data: bytes | None = None, method: str | None = None,
                write: bool = False, headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A urllib request for `url` carrying `api_headers(write)` (plus `headers`)."""
    return urllib.request.Request(url, data=data, method=method, headers={**api_headers(write), **(headers or {})})
