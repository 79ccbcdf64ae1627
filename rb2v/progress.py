"""Progress bars that also read well in logs and CI (tqdm, stderr).

On a terminal the bar redraws twice a second; in a log (no TTY) it prints a line
at most every 10 s so CI logs stay short. ``RB2V_PROGRESS=0`` turns bars off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("RB2V_PROGRESS", "1") != "0"


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    leave: bool = True,
    disable: bool = False,
) -> tqdm:
    tty = sys.stderr.isatty()
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if tty else 10.0,
        disable=disable or not enabled(),
    )


def say(msg: str) -> None:
    """A status line on stderr (stdout stays for results)."""
    tqdm.write(msg, file=sys.stderr)
