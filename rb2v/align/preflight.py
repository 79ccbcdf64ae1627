"""``rb2v align``'s checks of its arguments, made before any take is read.

They import nothing of the stage (OpenCV, scipy.signal, pyarrow: seconds), so ``rb2v align`` calls them
before it imports ``rb2v.align.stage`` and tells a plain mistake at once; ``run_align``, ``AlignOptions``
and ``discover`` make the same checks for a caller of the library.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import Rb2vError
from ..executor import ExecutorSettings, check_executor
from ..settings import check_sync_methods


def check_sync(methods: tuple[str, ...] | None) -> None:
    """The ``--sync`` methods (None: the rig's, checked with the rig file)."""
    if methods is not None:
        try:
            check_sync_methods(methods, f"--sync {','.join(methods)}")
        except ValueError as e:
            raise Rb2vError(str(e)) from None


def check_raw(raw: Path) -> None:
    if not raw.is_dir():
        raise Rb2vError(f"{raw}: raw capture folder not found")


def preflight(raw: str | os.PathLike, out: str | os.PathLike, executor: ExecutorSettings) -> None:
    """What ``run_align`` refuses before it writes anything, in its order."""
    raw, out = Path(raw), Path(out)
    if out.resolve().is_relative_to(raw.resolve()):  # its next run took OUT's folders for takes; RAW stays read-only
        raise Rb2vError(f"{out}: OUT cannot be RAW ({raw}) or inside it; give a folder beside it")
    check_executor(executor)
    check_raw(raw)
