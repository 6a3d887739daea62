"""Events: every state change an operator may want to see or be told about, as one record.

An event has an id, a time, a kind (`endpoint.withdrawn`, `zone.refused`, ...: KINDS), the objects it
names (zone, pool, site, address, region) and the reason. `EventLog.emit` does three things with it,
once: logs it at the kind's level with those names as log fields (gslb/logs.py writes them as JSON keys),
keeps it in a bounded ring (`GET /v1/events?since=ID`), and hands it to the subscribers (webhooks,
gslb/health/webhooks.py; the dashboard). It sits below every layer: health, config and the proxy emit.

Ids grow within a process and start from the time in milliseconds, so they keep growing across a restart
and a client polling `since=ID` never mistakes new events for ones it has seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# kind -> level of its log line. A return to health is INFO; a loss of service or a refusal is not.
KINDS: dict[str, int] = {
    "endpoint.withdrawn": logging.WARNING,   # the probers' quorum says down: out of the answers
    "endpoint.returned": logging.INFO,       # back up after being down
    "override.set": logging.WARNING,         # an operator override (API) set or replaced
    "override.cleared": logging.INFO,        # an API override removed
    "override.expired": logging.INFO,        # an override's `until` passed
    "fail_open.entered": logging.ERROR,      # no prober reports for `grace`: every endpoint counts as up
    "fail_open.left": logging.INFO,          # prober reports are back
    "region.silent": logging.WARNING,        # a prober region stopped reporting: out of the quorum
    "region.blind": logging.WARNING,         # a prober region reports that it cannot check
    "region.back": logging.INFO,             # a silent or blind region counts again (or reports first)
    "zone.loaded": logging.INFO,             # a zone file loaded (first time or changed)
    "zone.refused": logging.ERROR,           # a zone file edit refused: the last good zone keeps serving
    "backend.ejected": logging.WARNING,      # proxy: a backend taken out (outlier detection)
    "backend.down": logging.WARNING,         # proxy: a backend failed its active checks
    "backend.returned": logging.INFO,        # proxy: a backend passed its checks again
    "backend.drained": logging.WARNING,      # proxy: an operator drained a backend
    "backend.undrained": logging.INFO,       # proxy: an operator undrained it
    "proxy.reporting": logging.INFO,         # a regional proxy reports to DNS (first time, or after silence)
    "proxy.silent": logging.WARNING,         # a proxy stopped reporting: its sites go by the probers alone
    "proxy.pool_empty": logging.WARNING,     # a proxy reports a pool with no healthy backend: its endpoints out
    "proxy.pool_back": logging.INFO,         # that pool has a healthy backend again
}
NAMES = ("zone", "pool", "site", "address", "region")    # the objects an event may name
DEFAULT_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Event:
    """One state change."""

    id: int
    time: float                  # unix seconds
    kind: str
    level: str                   # "info", "warning" or "error": the level it was logged at
    message: str                 # the log line's text
    node: str | None = None
    zone: str | None = None
    pool: str | None = None
    site: str | None = None
    address: str | None = None
    region: str | None = None
    reason: str | None = None

    def as_json(self) -> dict:
        """The event as sent by `GET /v1/events` and webhooks (names not given are null)."""
        return {"id": self.id, "time": self.time, "kind": self.kind, "level": self.level, "node": self.node,
                "zone": self.zone, "pool": self.pool, "site": self.site, "address": self.address,
                "region": self.region, "reason": self.reason, "message": self.message}


Subscriber = Callable[[Event], None]


class EventLog:
    """The events of one process: a ring of the last `size`, and the subscribers told of each new one.

    `emit` may be called from any thread (zone reloads run in a thread); subscribers are called in the
    emitting thread and must only queue (never block or raise).
    """

    def __init__(self, size: int = DEFAULT_SIZE, node: str | None = None, clock: Callable[[], float] = time.time):
        self.ring: deque[Event] = deque(maxlen=size)
        self.node = node
        self.clock = clock
        self.subscribers: list[Subscriber] = []
        self._last_id = int(clock() * 1000)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}          # emitted, by kind
        self.evicted_through = 0                  # id of the newest event pushed out of the ring

    @property
    def last_id(self) -> int:
        """The id of the newest event (or of none yet: the start stamp)."""
        return self._last_id

    def emit(self, logger: logging.Logger, kind: str, message: str, *, zone: str | None = None,
             pool: str | None = None, site: str | None = None, address: str | None = None,
             region: str | None = None, reason: str | None = None) -> Event:
        """Record, log (once, at the kind's level) and publish a state change; returns the event.

        :raises KeyError: `kind` is not one of KINDS (a bug of ours: kinds are fixed and documented).
        """
        level = KINDS[kind]
        now = self.clock()
        with self._lock:
            self._last_id = max(self._last_id + 1, int(now * 1000))
            event = Event(self._last_id, now, kind, logging.getLevelName(level).lower(), message, self.node,
                          zone, pool, site, address, region, reason)
            if len(self.ring) == self.ring.maxlen:
                self.evicted_through = self.ring[0].id
            self.ring.append(event)
            self.counts[kind] = self.counts.get(kind, 0) + 1
        logger.log(level, "%s", message, extra={
            "event": kind, "event_id": event.id, "zone": zone, "pool": pool, "site": site, "address": address,
            "region": region, "reason": reason})
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not stop the state change
                logger.exception("event subscriber failed on %s", kind)
        return event

    def since(self, after: int = 0, limit: int = DEFAULT_SIZE) -> list[Event]:
        """The events with an id greater than `after`, oldest first, at most `limit` (the newest ones)."""
        with self._lock:
            events = [e for e in self.ring if e.id > after]
        return events[-limit:] if limit > 0 else []

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)


def query_since(query) -> tuple[int, int]:
    """(after, limit) from the query string of `GET /v1/events?since=ID&limit=N`.

    :raises ValueError: with a message for the client (400).
    """
    try:
        after = int(query.get("since", "0"))
        limit = int(query.get("limit", str(DEFAULT_SIZE)))
    except ValueError:
        raise ValueError("since= and limit= take whole numbers (since: the last event id seen)") from None
    if limit < 1:
        raise ValueError("limit= must be at least 1")
    return after, min(limit, DEFAULT_SIZE)


def events_document(events: EventLog, after: int, limit: int, kinds: str | None = None) -> dict:
    """The body of `GET /v1/events`: the events after `after` (optionally only kinds starting with one of
    the comma-separated prefixes in `kinds`), the newest id, and whether older ones were already dropped
    from the ring (`truncated`: the client missed some)."""
    found = events.since(after, DEFAULT_SIZE)
    if kinds:
        prefixes = tuple(k.strip() for k in kinds.split(",") if k.strip())
        found = [e for e in found if e.kind.startswith(prefixes)]
    return {"events": [e.as_json() for e in found[-limit:]], "last_id": events.last_id,
            "truncated": after < events.evicted_through, "node": events.node, "counts": dict(events.counts)}
