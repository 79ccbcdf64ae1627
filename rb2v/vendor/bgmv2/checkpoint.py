"""Load the official BackgroundMattingV2 checkpoints unchanged.

Two formats exist: flat PyTorch state dicts (``torch.save(model.state_dict())``) and
TorchScript exports whose only child ``model`` is a MattingRefine (keys prefixed
``model.``, possibly float16). Which network and backbone a file holds is told from
its keys, never from its name.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ...errors import Rb2vError
from ...weights import load_weights
from .model import MattingBase, MattingRefine


@dataclass(frozen=True)
class CheckpointInfo:
    kind: str  # "base" or "refine"
    backbone: str  # "mobilenetv2" | "resnet50" | "resnet101"
    format: str  # "state_dict" | "torchscript"


def is_torchscript(path: str | os.PathLike) -> bool:
    """TorchScript archives carry compiled code (``<name>/code/``) and ``constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def read_state_dict(path: str | os.PathLike) -> tuple[OrderedDict, str]:
    """The checkpoint's tensors as a float32 state dict with the official key names."""
    if not os.path.isfile(path):
        raise Rb2vError(f"{path}: checkpoint not found")
    try:
        if is_torchscript(path):
            with warnings.catch_warnings():  # torch.jit is deprecated upstream, yet it is the format
                warnings.simplefilter("ignore", DeprecationWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            fmt = "torchscript"
        else:
            state = load_weights(path, "BackgroundMattingV2")
            fmt = "state_dict"
    except Rb2vError:
        raise
    except Exception as exc:  # corrupt or foreign file: one line for the user
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise Rb2vError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first_line})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Rb2vError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    out = OrderedDict()
    for key, value in state.items():
        for prefix in ("model.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value.float() if value.is_floating_point() else value
    return out, fmt


def describe(state: dict, path: str | os.PathLike = "checkpoint") -> CheckpointInfo:
    keys = list(state)
    if not any(k.startswith("backbone.") for k in keys) or not any(k.startswith("decoder.") for k in keys):
        raise Rb2vError(
            f"{path}: not a BackgroundMattingV2 checkpoint (no backbone.*/decoder.* keys; "
            f"first keys: {', '.join(keys[:3]) or 'none'})"
        )
    if "backbone.features.0.0.weight" in state:
        backbone = "mobilenetv2"
    else:
        blocks = {k.split(".")[2] for k in keys if k.startswith("backbone.layer3.")}
        backbone = {6: "resnet50", 23: "resnet101"}.get(len(blocks), "")
        if not backbone:
            raise Rb2vError(f"{path}: unrecognised backbone ({len(blocks)} blocks in layer3; expected 6 or 23)")
    kind = "refine" if any(k.startswith("refiner.") for k in keys) else "base"
    return CheckpointInfo(kind, backbone, "")


def load_model(
    path: str | os.PathLike, *, base_only: bool = False, **refine_args
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Build the network the checkpoint holds, load it strictly, put it in eval mode.

    ``refine_args`` are MattingRefine's constructor arguments (ignored for base checkpoints).
    ``base_only`` loads a refinement checkpoint into MattingBase, as the official scripts allow.
    """
    state, fmt = read_state_dict(path)
    info = describe(state, path)
    info = CheckpointInfo(info.kind, info.backbone, fmt)
    if info.kind == "refine" and not base_only:
        try:
            model = MattingRefine(info.backbone, **refine_args)
        except (TypeError, ValueError) as exc:
            raise Rb2vError(f"bgmv2: {exc}") from None
    else:
        model = MattingBase(info.backbone)
        state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("refiner."))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise Rb2vError(
            f"{path}: does not match BackgroundMattingV2 {info.kind}/{info.backbone}: "
            f"{' '.join(s.strip() for s in first[:3])[:300]}"
        ) from None
    return model.eval(), info
