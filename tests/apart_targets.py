"""Functions `flows.apart.in_a_child` runs in tests (a module of their own: the child imports only this)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Refused(ValueError):
    """Built from two arguments, the second with a default: pickle would make it again from its message alone."""

    def __init__(self, what: str, why: str = "未说明"):
        super().__init__(f"{what}（{why}）")


def answer(value):
    return value


def refuse(what: str, why: str):
    raise Refused(what, why)


def slow_to_stop(started: str, seconds: float) -> None:
    """Works until stopped, then takes `seconds` to clean up (a render removing a big staged file)."""
    Path(started).write_text(str(os.getpid()))
    try:
        time.sleep(3600)
    finally:
        time.sleep(seconds)


def only_here():
    """An answer of a class only the child has (made in its `__main__`, which the night's is not)."""
    import __main__

    kind = type("OnlyInTheChild", (), {"__module__": "__main__"})
    __main__.OnlyInTheChild = kind
    return kind()
