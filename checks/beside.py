"""A call on a second thread while the caller goes on: Python work beside work that lets go of Python's lock
(polars, pyarrow), on a machine whose other core would otherwise wait."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any


class Beside:
    """`call(*args)` started on another thread; `result` joins it and returns what it returned, or raises what it
    raised. The thread ends holding nothing: its call and arguments are let go of once it has run (a pool's
    worker may keep them after its result is known).

    Used as `with Beside(...) as other:`, the block's end waits for the thread, also when the block fails (an
    interrupt while waiting for the result too): nothing still reads what the caller's error lets go of. When the
    thread failed as well, its error and traceback are added to the block's as a note (the operator's log shows
    both: the thread's error was dropped).
    """

    def __init__(self, call: Callable, *args, name: str = "beside"):
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call, *args), name=name, daemon=True)
        self.thread.start()

    def _run(self, call: Callable, *args) -> None:
        try:
            self.value = call(*args)
        except BaseException as exc:  # handed to the thread that waits for the result
            self.error = exc

    def result(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        value, self.value = self.value, None
        return value

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.thread.join()
        if error is not None and self.error is not None and self.error is not error:
            error.add_note(f"Meanwhile the thread {self.thread.name!r} failed too:\n"
                           + "".join(traceback.format_exception(self.error)).rstrip())
