"""A physically plausible simulator of the beam-splitter rig, with exact ground truth.

A scene made from real photographs (or a real video) is rendered at a high internal
frame rate and "filmed" by two cameras: exposure integration in linear light, sensor
noise, a response curve, a per-camera colour transform, the mirror flip, a homography
between the two views, dark borders of the rig, a time offset and clock drift, and an
audio track both cameras hear. ``truth.json`` states every answer in the terms of the
alignment and manifest contracts (see ``rb2v/simulate/session.py``).
"""

from .config import SimConfig

__all__ = ["SimConfig", "TakeSimulation", "load_take", "simulate_session"]


def __getattr__(name: str):
    # the renderer (scipy.signal, pandas, the photos) is imported when first used: `simulate-rig` checks
    # its options first, and a mistake is told at once
    if name in __all__:
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
