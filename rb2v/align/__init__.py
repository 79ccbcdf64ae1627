"""``rb2v align``: pair, synchronise and geometrically align the two cameras of each take.

Stage function: ``align_take(take, out_folder, options)``; a whole capture tree:
``run_align(raw, out, options, executor)``. Outputs follow the alignment contract (``rb2v.alignment``).

The names below are imported on first use, so that ``rb2v align`` (``rb2v.align.cli``) checks its
arguments before the stage's imports (OpenCV, scipy.signal: seconds).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AlignOptions": "stage",
    "Take": "discover",
    "TakeError": "discover",
    "align_take": "stage",
    "discover": "discover",
    "pair_streams": "discover",
    "run_align": "stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
