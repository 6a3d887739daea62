"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

RECANCEL_AFTER = 0.2


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel `tasks` and wait until every one has ended, whatever it raised.

    A cancellation can be lost: in Python 3.11 `asyncio.wait_for` returns its inner result instead of
    raising CancelledError when both arrive in the same turn, and a loop around it then runs on. So a
    task still running after RECANCEL_AFTER seconds is cancelled again, until it ends; a plain `await`
    after one `cancel()` hung a prober's stop for ever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
