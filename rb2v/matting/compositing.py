"""Compositing a matted foreground over a new background."""

from __future__ import annotations

import numpy as np

from ..colorspace import linear_to_srgb, srgb_to_linear
from ..errors import Rb2vError
from ..pixels import per_channel

SPACES = ("linear", "srgb")


def composite(fg: np.ndarray, alpha: np.ndarray, background: np.ndarray, space: str = "linear") -> np.ndarray:
    """``alpha * fg + (1 - alpha) * background``, float32 RGB in [0,1].

    Inputs are sRGB-encoded images. ``space="linear"`` mixes in linear light, which is how a
    camera integrates a subject over a screen (motion blur) and what the "chroma" keyer's
    alpha means; ``space="srgb"`` mixes the encoded values, the convention BackgroundMattingV2
    was trained with. Accepts (H,W,3) or (N,H,W,3) with alpha (H,W) / (N,H,W).
    """
    fg = np.asarray(fg, np.float32)
    bg = np.asarray(background, np.float32)
    a = np.asarray(alpha, np.float32)
    if fg.ndim not in (3, 4) or fg.shape[-1] != 3:
        raise Rb2vError(f"composite: foreground must be (H,W,3) or (N,H,W,3) RGB, got {fg.shape}")
    if a.shape == fg.shape[:-1] + (1,):
        a = a[..., 0]
    if a.shape != fg.shape[:-1]:
        raise Rb2vError(f"composite: alpha shape {a.shape} does not match foreground {fg.shape}")
    if bg.shape != fg.shape and bg.shape != fg.shape[-3:]:
        raise Rb2vError(f"composite: background shape {bg.shape} does not match foreground {fg.shape}")
    if space not in SPACES:
        raise Rb2vError(f"composite: space {space!r}: use linear or srgb")
    if space == "srgb":
        a = np.clip(a, 0.0, 1.0)[..., None]
        return np.clip(a * fg + (1.0 - a) * bg, 0.0, 1.0).astype(np.float32)
    return composite_linear(srgb_to_linear(fg), a, srgb_to_linear(bg))


def composite_linear(fg_lin: np.ndarray, alpha: np.ndarray, bg_lin: np.ndarray) -> np.ndarray:
    """The "linear" composite of inputs already in linear light (e.g. ``ChromaKeyer.key_linear``'s
    foreground, a background converted once for several frames), sRGB-encoded."""
    a = per_channel(np.clip(alpha, 0.0, 1.0))
    mixed = a * fg_lin
    mixed += (1.0 - a) * bg_lin
    return linear_to_srgb(mixed)
