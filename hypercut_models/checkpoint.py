"""HyperCUT checkpoints: one ``torch.save`` dict, tagged so another model's file is refused.

Keys: ``format`` ("rb2v.hypercut/1"), ``model`` (network state), ``hyperplane`` (weight, bias,
seed), ``net`` (the network's constructor arguments), ``optimizer``, ``scaler`` (mixed precision,
or None), ``epoch`` (epochs completed), ``settings`` (the training settings), ``rng`` (torch,
numpy, python and CUDA generator states), ``history`` (per-epoch log rows), ``data`` (the training
samples: count and a digest of their ids; absent in runs saved before it). Only plain
containers and tensors are stored, so files load with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rb2v.errors import Rb2vError
from rb2v.fsutil import atomic_path
from rb2v.weights import load_weights

from .losses import Hyperplane, HyperplaneRegularizer
from .network import HyperCUTNet

FORMAT = "rb2v.hypercut/1"


def save_tagged(path: str | Path, fmt: str, state: dict[str, Any]) -> Path:
    """Write a checkpoint tagged with its format, atomically: a crash mid-write never leaves a
    truncated ``last.pt``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": fmt, **state}, tmp)
    return path


def load_tagged(path: str | Path, fmt: str, kind: str, map_location="cpu") -> dict[str, Any]:
    """A checkpoint file (or a run folder's ``last.pt``) of format ``fmt``; one-line errors otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise Rb2vError(f"{path}: checkpoint not found")
    ckpt = load_weights(path, kind, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        tag = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise Rb2vError(f"{path}: not a {kind} checkpoint of rb2v (format {tag!r}, expected {fmt!r})")
    _check_finite(path, ckpt)
    return ckpt


def _check_finite(path: Path, ckpt: dict[str, Any]) -> None:
    """Refuse weights that are NaN or infinite (a damaged file, or a run saved after it diverged): a
    network with them deblurred into garbage and evaluated to NaN with exit 0."""
    parts = {"model": ckpt.get("model"), "hyperplane": ckpt.get("hyperplane")}
    tensors = {
        f"{part}.{name}": t
        for part, state in parts.items()
        if isinstance(state, dict)
        for name, t in state.items()
        if torch.is_tensor(t) and t.is_floating_point()
    }
    bad = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise Rb2vError(
            f"{path}: non-finite weights in {bad[0]} ({len(bad)} of {len(tensors)} tensors): a damaged checkpoint "
            "or a run that diverged"
        )


def load_error(where: str | Path, kind: str, e: Exception) -> Rb2vError:
    """One line for a checkpoint whose network does not load (PyTorch lists every mismatched tensor)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading"):
        lines = lines[1:]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    first = lines[0][:200] + ("…" if lines and len(lines[0]) > 200 else "") if lines else ""
    return Rb2vError(f"{where}: does not hold a {kind} network ({type(e).__name__}: {first}{more})")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return save_tagged(path, FORMAT, state)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    return load_tagged(path, FORMAT, "HyperCUT", map_location)


def build_model(ckpt: dict[str, Any], where: str | Path) -> tuple[HyperCUTNet, Hyperplane]:
    try:
        net = HyperCUTNet(**ckpt["net"])
        net.load_state_dict(ckpt["model"])
        hp = ckpt["hyperplane"]
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise load_error(where, "HyperCUT", e) from None
    plane = Hyperplane(int(hp["weight"].numel()), int(hp["seed"]))
    plane.weight.copy_(hp["weight"])
    plane.bias.copy_(hp["bias"])
    return net, plane


def load_model(path: str | Path, map_location="cpu") -> tuple[HyperCUTNet, Hyperplane, dict[str, Any]]:
    """The trained network (eval mode) and its hyperplane from a checkpoint file or run folder."""
    ckpt = load_checkpoint(path, map_location)
    net, plane = build_model(ckpt, path)
    return net.eval(), plane, ckpt


def load_regularizer(path: str | Path, map_location="cpu") -> HyperplaneRegularizer:
    """R_hyp (Eq. 7) with the frozen network and hyperplane of a HyperCUT checkpoint."""
    net, plane, _ = load_model(path, map_location=map_location)
    return HyperplaneRegularizer(net, plane)


def hyperplane_state(plane: Hyperplane) -> dict[str, Any]:
    return {"weight": plane.weight.detach().cpu(), "bias": plane.bias.detach().cpu(), "seed": plane.seed}


def export_weights(checkpoint: str | Path, out: str | Path, half: bool = True) -> Path:
    """A small inference/fine-tuning copy: network (float16 when ``half``), hyperplane, settings;
    no optimiser or generator states."""
    ckpt = load_checkpoint(checkpoint)
    model = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    return save_checkpoint(
        out,
        {
            "model": model,
            "net": ckpt["net"],
            "hyperplane": ckpt["hyperplane"],
            "epoch": ckpt["epoch"],
            "settings": ckpt["settings"],
            "history": ckpt["history"],
        },
    )
