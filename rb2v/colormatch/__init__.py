"""Colour matching and Algorithm 1: where a blurry frame's exposure lies in the sharp sequence.

    from rb2v.colormatch import fit_color_matrix, apply_color_matrix, synthesize_blur, search

``reference.reference_search`` is the literal (slow) Algorithm 1 the fast ``search`` is
tested and benchmarked against.
"""

from __future__ import annotations

from ..metrics import psnr
from .blur import linear_to_srgb, srgb_to_linear, synthesize_blur
from .matrix import apply_color_matrix, fit_color_matrix
from .result import SearchResult
from .search import search

__all__ = [
    "SearchResult",
    "apply_color_matrix",
    "fit_color_matrix",
    "linear_to_srgb",
    "psnr",
    "search",
    "srgb_to_linear",
    "synthesize_blur",
]
