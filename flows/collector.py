"""The cyclic garbage collector held off while a stage of the night runs (`flows.stages.drive`, and the Dask
tasks of a partitioned night in their worker processes)."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager


class CollectorPause:
    """Python's cyclic garbage collector held off while a stage runs (`drive`), and restored after it.

    A night's stages build millions of long-lived objects (findings, rows, pair evidence) and make almost no
    reference cycles: every full collection walked all of them again and found nothing (at 10^6 a seventh of
    the night; 1,568 objects in cycles over a whole night: docs/decisions.md#collector-paused). Reference
    counting still frees every other object at once. Nested and concurrent pauses (stages of two flows in one
    process) count: the collector is restored by the last one to end, and only if it was on when the first
    began.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._held = 0
        self._restore = False

    @contextmanager
    def __call__(self):
        with self._lock:
            if self._held == 0:
                self._restore = gc.isenabled()
                gc.disable()
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                if self._held == 0 and self._restore:
                    gc.enable()


collector_paused = CollectorPause()
