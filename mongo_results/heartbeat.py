"""Leases kept alive while a claim's work runs: a thread beside sync code, a task beside async code.

A heartbeat renews every third of the lease, so two beats can be missed before the lease
runs out. It stops when the work ends, when a renewal answers that the claim is lost (the
result is stored, or the lease ran out and another worker took the cell), and with the
process. What stops the process stops it too: SIGSTOP, a debugger's breakpoint, a machine
that sleeps. So does anything that holds the interpreter without letting the thread run, such as a C
extension that keeps the GIL through a long call; work in such calls needs a lease longer
than the longest call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from .errors import MongoResultsError

__all__ = ["Heartbeat", "heartbeat"]


class Heartbeat:
    """Calls ``renew`` every ``interval`` seconds on a daemon thread until ``stop`` or a False answer."""

    def __init__(self, renew: Callable[[], bool], interval: float) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(renew, interval), name="mongo_results heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, renew: Callable[[], bool], interval: float) -> None:
        while not self._stopped.wait(interval):
            try:
                if not renew():
                    return  # lost: nothing more to keep
            except MongoResultsError:
                continue  # the store did not answer this time: the next beat tries again

    def stop(self) -> None:
        """Stop beating; returns once no renewal is under way (none is sent after the claim ends)."""
        self._stopped.set()
        self._thread.join()


async def heartbeat(renew: Callable[[], Awaitable[bool]], interval: float) -> None:
    """``Heartbeat`` as a task: cancel it to stop."""
    while True:
        await asyncio.sleep(interval)
        try:
            if not await renew():
                return
        except MongoResultsError:
            continue
