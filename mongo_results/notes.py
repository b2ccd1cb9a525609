"""Notes to the user (an engine without validators): logged once per run, not once per worker process."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os

__all__ = ["say_once"]

log = logging.getLogger("mongo_results")
_NOTED = "MONGO_RESULTS_NOTED"  # digests of the notes given, inherited by every process started later


def say_once(message: str) -> None:
    """Log ``message`` as a warning once per run.

    A note given in a process is not given again there, nor in the worker processes it
    starts afterwards (they inherit the environment). A worker that meets it first logs
    it at INFO level only: the parent, or ``mongo-results doctor``, says it for the run.
    """
    key = hashlib.sha256(message.encode()).hexdigest()[:12]
    noted = os.environ.get(_NOTED, "").split(",")
    if key in noted:
        return
    os.environ[_NOTED] = ",".join([*filter(None, noted), key])
    log.log(logging.INFO if multiprocessing.parent_process() is not None else logging.WARNING, message)
