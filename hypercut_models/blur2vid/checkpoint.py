"""blur2vid checkpoints: one ``torch.save`` dict tagged ``format = "rb2v.blur2vid/1"``.

Keys: ``format``, ``model`` (network state), ``net`` (constructor arguments: widths, blocks),
``size``, ``optimizer``, ``scaler``, ``epoch``, ``settings``, ``rng``, ``history``. Plain containers
and tensors only, so files load with ``weights_only=True``; another model's file (a HyperCUT
checkpoint, a bare state dict) is refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rb2v.errors import Rb2vError
from rb2v.fsutil import atomic_path

from .network import Blur2VidNet

FORMAT = "rb2v.blur2vid/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomic: a crash mid-write never leaves a truncated ``last.pt``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise Rb2vError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated files, arbitrary pickles, non-torch files
        first = str(e).splitlines()[0] if str(e) else ""
        raise Rb2vError(f"{path}: not a readable blur2vid checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        tag = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise Rb2vError(f"{path}: not a blur2vid checkpoint of rb2v (format {tag!r}, expected {FORMAT!r})")
    return ckpt


def build_network(ckpt: dict[str, Any]) -> Blur2VidNet:
    try:
        net = Blur2VidNet(**ckpt["net"])
        net.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise Rb2vError(f"checkpoint does not hold a blur2vid network ({type(e).__name__}: {e})") from None
    return net


def load_network(path: str | Path, map_location="cpu") -> tuple[Blur2VidNet, dict[str, Any]]:
    """The trained network (eval mode) and its checkpoint dict."""
    ckpt = load_checkpoint(path, map_location)
    return build_network(ckpt).eval(), ckpt
