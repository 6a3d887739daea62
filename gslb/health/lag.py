"""How late the prober's event loop runs: a check that timed out while the loop was stalled timed out
because of the prober, not because of the endpoint.

A ticker wakes every TICK seconds and records how late it woke. `worst(since)` is the largest lateness
seen since a moment, counting a tick that is overdue right now.
"""

from __future__ import annotations

import asyncio
import collections
import time

TICK = 0.05
KEEP = 2400          # samples kept: two minutes at TICK, longer than any check's timeout


class LoopLag:
    """Measures the lateness of the running loop; `start` it inside the loop, `stop` when done."""

    def __init__(self, tick: float = TICK):
        self.tick = tick
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=KEEP)
        self._due = time.monotonic() + tick
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            self._due = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            self._samples.append((now, now - self._due))

    def worst(self, since: float, now: float | None = None) -> float:
        """The largest lateness (seconds) of the loop since `since` (time.monotonic())."""
        now = time.monotonic() if now is None else now
        worst = max(0.0, now - self._due) if self._task is not None else 0.0   # a tick overdue right now
        for at, late in reversed(self._samples):
            if at < since:
                break
            worst = max(worst, late)
        return worst
