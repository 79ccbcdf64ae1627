"""blur2vid checkpoints: one ``torch.save`` dict tagged ``format = "rb2v.blur2vid/1"``.

Keys: ``format``, ``model`` (network state), ``net`` (constructor arguments: widths, blocks, warp,
motion, context; a file without ``motion`` holds a flow per frame, one without ``context`` no global
context), ``size``, ``optimizer``, ``scaler``, ``epoch``, ``settings``, ``rng``, ``history``, ``data``
(the training samples, as in HyperCUT's). Plain
containers and tensors only, so files load with ``weights_only=True``; another model's file (a
HyperCUT checkpoint, a bare state dict) is refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import load_error, load_tagged, save_tagged
from .network import Blur2VidNet

FORMAT = "rb2v.blur2vid/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return save_tagged(path, FORMAT, state)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    return load_tagged(path, FORMAT, "blur2vid", map_location)


def build_network(ckpt: dict[str, Any], where: str | Path) -> Blur2VidNet:
    try:
        net = Blur2VidNet(**ckpt["net"])
        net.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise load_error(where, "blur2vid", e) from None
    return net


def load_network(path: str | Path, map_location="cpu") -> tuple[Blur2VidNet, dict[str, Any]]:
    """The trained network (eval mode) and its checkpoint dict."""
    ckpt = load_checkpoint(path, map_location)
    return build_network(ckpt, path).eval(), ckpt
