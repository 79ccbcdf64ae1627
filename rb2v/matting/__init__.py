"""Green-screen matting and compositing onto random backgrounds.

    from rb2v.matting import load_matter, composite
    m = load_matter("chroma")                # our keyer (CPU); m.fit(frames) once per take
    alpha, fg = m(frame)
    m = load_matter("bgmv2", checkpoint=PATH, device="cpu")
    alpha, fg = m(frame, background=plate)   # plate: clean plate or rb2v.matting.estimate_plate(frames)
    out = composite(fg, alpha, background, space=m.space)

Frames are float32 RGB in [0,1], (H,W,3); alpha is (H,W) in [0,1], fg (H,W,3).
``m.space`` says how the matter's outputs composite: "linear" for the chroma keyer
(alpha is the physical coverage, e.g. of motion blur), "srgb" for BackgroundMattingV2.
"""

from __future__ import annotations

from ..errors import Rb2vError
from .backgrounds import list_backgrounds, pick_background
from .bgmv2 import BGMv2Matter
from .chroma import ChromaKeyer
from .compositing import composite, composite_linear
from .plate import estimate_plate, take_plate

MATTERS = ("chroma", "bgmv2")


def load_matter(name: str = "chroma", **kwargs):
    """A matter by name: "chroma" (ChromaKeyer's arguments) or "bgmv2" (checkpoint=, device=, official args)."""
    if name == "chroma":
        kwargs.pop("device", None)  # CPU keyer; accepted so callers can pass one set of options
        try:
            return ChromaKeyer(**kwargs)
        except TypeError as exc:
            raise Rb2vError(f"chroma: {exc}") from None
    if name == "bgmv2":
        try:
            return BGMv2Matter(**kwargs)
        except TypeError as exc:
            raise Rb2vError(f"bgmv2: {exc}") from None
    raise Rb2vError(f"unknown matter {name!r}: use one of {', '.join(MATTERS)}")


__all__ = [
    "MATTERS",
    "BGMv2Matter",
    "ChromaKeyer",
    "composite",
    "composite_linear",
    "estimate_plate",
    "list_backgrounds",
    "load_matter",
    "pick_background",
    "take_plate",
]
