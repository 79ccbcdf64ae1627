"""Temporal interpolation of frames: "linear", "flow" and "cdfi".

Every interpolator maps two frames ``a, b`` (H,W,3 float32 RGB in [0,1]) and a time
``t`` in [0,1] to the frame at ``t``. ``t = 0`` returns ``a`` and ``t = 1`` returns ``b``.
"""

from __future__ import annotations

from .base import Interpolator, LinearInterpolator, check_pair, load_interpolator, upsample_sequence

__all__ = ["Interpolator", "LinearInterpolator", "check_pair", "load_interpolator", "upsample_sequence"]
