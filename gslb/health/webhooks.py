"""Webhooks: each event (gslb/events.py) POSTed as JSON to the receivers of `notify:` (gslb/config/notify.py).

Nothing here may slow an answer. `submit` (called where the event happens) only appends to a bounded queue
per receiver; one task per receiver sends, one event per request, in order. A failed attempt (refused,
timed out, not 2xx) is retried with backoff (0.5 s doubling up to MAX_BACKOFF) until it is delivered;
meanwhile new events queue, and when a queue is full its oldest event is dropped and counted. A receiver
that is down costs one log line per LOG_INTERVAL, not one per event.

The body is signed like a prober report (gslb/health/signing.py): header X-Gslb-Signature
`t=STAMP,sig=HMAC-SHA256(secret, STAMP "." BODY)`, stamped at each attempt so a retry is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque

import aiohttp

from gslb import __version__
from gslb.config.notify import NotifyTarget
from gslb.events import Event
from gslb.health.signing import HEADER, sign
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.notify")
QUEUE_SIZE = 1000            # events waiting per receiver; the oldest is dropped beyond
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
LOG_INTERVAL = 60.0          # seconds between two log lines about the same receiver failing


class Receiver:
    """One receiver's queue and counters."""

    def __init__(self, target: NotifyTarget, size: int = QUEUE_SIZE):
        self.target = target
        self.queue: deque[Event] = deque()
        self.size = size
        self.delivered = 0
        self.failed = 0          # attempts that failed (each retry counts)
        self.dropped = 0         # events dropped from a full queue
        self.last_error: str | None = None
        self.wake = asyncio.Event()
        self._logged_at = -LOG_INTERVAL
        self._failing = False

    def put(self, event: Event) -> None:
        if len(self.queue) >= self.size:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self.wake.set()

    def as_json(self) -> dict:
        return {"url": self.target.url, "events": list(self.target.events), "queued": len(self.queue),
                "delivered": self.delivered, "failed": self.failed, "dropped": self.dropped,
                "last_error": self.last_error}


class Notifier:
    """Sends events to every receiver that wants them; `start()` on the serving loop, `stop()` at the end."""

    def __init__(self, targets: tuple[NotifyTarget, ...], queue_size: int = QUEUE_SIZE):
        self.receivers = [Receiver(t, queue_size) for t in targets]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.receivers:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        # No connection pooling across receivers' failures matters here; one session, a few connections.
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"gslb/{__version__}"})
        self._tasks = [asyncio.create_task(self._send_loop(r)) for r in self.receivers]

    def submit(self, event: Event) -> None:
        """Queue `event` for every receiver that wants it. Any thread; never blocks (an EventLog subscriber)."""
        if self._loop is None:
            return
        if threading.get_ident() != self._thread:
            with contextlib.suppress(RuntimeError):       # the loop closed: we are stopping
                self._loop.call_soon_threadsafe(self.submit, event)
            return
        for receiver in self.receivers:
            if receiver.target.wants(event.kind):
                receiver.put(event)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._loop = None

    async def _send_loop(self, receiver: Receiver) -> None:
        backoff = FIRST_BACKOFF
        while True:
            if not receiver.queue:
                receiver.wake.clear()
                await receiver.wake.wait()
                continue
            event = receiver.queue[0]
            error = await self._post(receiver.target, event)
            if error is None:
                if receiver.queue and receiver.queue[0] is event:
                    receiver.queue.popleft()
                receiver.delivered += 1
                backoff = FIRST_BACKOFF
                if receiver._failing:
                    receiver._failing = False
                    log.info("webhook %s: delivering again (%d events dropped while it failed)",
                             receiver.target.url, receiver.dropped)
                continue
            receiver.failed += 1
            receiver.last_error = error
            self._log_failure(receiver, error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    @staticmethod
    def _log_failure(receiver: Receiver, error: str) -> None:
        now = time.monotonic()
        receiver._failing = True
        if now - receiver._logged_at >= LOG_INTERVAL:
            receiver._logged_at = now
            log.warning("webhook %s: %s; retrying (%d queued, %d dropped; next line in %.0f s at most)",
                        receiver.target.url, error, len(receiver.queue), receiver.dropped, LOG_INTERVAL)

    async def _post(self, target: NotifyTarget, event: Event) -> str | None:
        """None when the receiver took the event (2xx), else why not."""
        body = json.dumps(event.as_json(), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Gslb-Event": event.kind,
                   "X-Gslb-Event-Id": str(event.id)}
        if target.secret:
            headers[HEADER] = sign(target.secret, body)
        try:
            async with self._session.post(target.url, data=body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=target.timeout)) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except TimeoutError:
            return f"no answer within {target.timeout:g} s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
