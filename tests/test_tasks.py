"""Background tasks stop even when a cancellation is lost on the way (Python 3.11 asyncio.wait_for)."""

from __future__ import annotations

import asyncio

from gslb.tasks import cancel_and_wait


async def test_a_task_that_loses_its_first_cancellation_is_still_stopped():
    lost = []

    async def loops_on_after_a_lost_cancel() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost.append(1)          # what wait_for does when its inner future finished in the same turn

    task = asyncio.create_task(loops_on_after_a_lost_cancel())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([task, finished]))
    done, _ = await asyncio.wait({stopper}, timeout=5)      # not wait_for: its own cancel would end the task
    assert stopper in done, "the task was not stopped"
    assert task.cancelled() and lost == [1] and finished.done()
