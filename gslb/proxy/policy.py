"""What the wire (http.py) asks of the policy side (core.py): a narrow interface, so the wire code imports
no policy and can be driven by a fake in tests.

begin   a request head arrived: route it and pick a backend (Pick), or answer it from the proxy (Refusal)
retry   its backend failed before answering: another backend of the same pool, or None
finish  it was answered (by a backend or by the proxy): metrics and the access log
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gslb.proxy.config import Limits, Timeouts
    from gslb.proxy.request import Request
    from gslb.proxy.state import BackendState


class Pick:
    """A backend chosen for a request; `pool` is the policy's own (opaque to the wire), handed back on retry."""

    __slots__ = ("backend", "cookie", "pool")

    def __init__(self, pool: Any, backend: BackendState, cookie: bytes = b""):
        self.pool, self.backend, self.cookie = pool, backend, cookie   # cookie: a Set-Cookie line or b""


class Refusal:
    """The proxy answers itself (404 no route, 429 rate limited, 503 no healthy backend)."""

    __slots__ = ("close", "extra", "status", "text")

    def __init__(self, status: int, text: str, close: bool = False, extra: bytes = b""):
        self.status, self.text, self.close, self.extra = status, text, close, extra


class Policy(Protocol):
    """The policy side as the wire sees it."""

    limits: Limits                   # header and body size limits
    timeouts: Timeouts               # connect, read, total, idle
    stopping: bool                   # draining for shutdown: answer with Connection: close
    connections: set[Any]            # open client connections (the sweep closes idle ones)
    inflight: set[Any]               # exchanges in flight (the sweep enforces their deadlines)

    def begin(self, req: Request) -> Pick | Refusal:
        """Route a request whose head has arrived and pick its backend, or refuse it."""
        ...

    def retry(self, req: Request, pick: Pick, tried: list[BackendState], retried: int | None) -> Pick | None:
        """Another backend of `pick.pool`, none of `tried`. `retried`: None for a try that costs nothing
        (nothing answered, the connection was refused or reset), else the budgeted retries used so far."""
        ...

    def finish(self, req: Request, backend: BackendState | None, status: int, elapsed: float | None) -> None:
        """The request was answered (`backend` None: by the proxy itself): count it and log it."""
        ...
