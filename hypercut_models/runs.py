"""Run folders of ``train-hypercut`` and ``train-blur2vid``: the conventions both trainers share.

A run folder holds ``settings.json``, ``log.csv`` (one row per epoch), ``last.pt`` (rewritten
atomically after every epoch, so it is always the newest complete state) and, when the
``tensorboard`` package is installed, TensorBoard events. A resumed run continues from ``last.pt``
with the run's own settings (only a settings class's ``RUNTIME`` fields may change), restoring the
optimiser, the mixed-precision scaler and every random generator: it then computes exactly what an
uninterrupted run would have.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rb2v.errors import Rb2vError
from rb2v.fsutil import clean_partials, write_text_atomic
from rb2v.manifest import manifest_path
from rb2v.outputs import RUN_FILES
from rb2v.progress import say


def resolve_run(
    settings, resume: bool, default_epochs: int, load: Callable[[Path], dict], legacy: dict | None = None
) -> tuple[Any, dict | None]:
    """The settings a run trains with and the checkpoint it continues (None for a new run).

    A new run refuses a folder that already holds one; a resumed run takes the settings saved in
    its ``last.pt`` (``legacy``: values for settings saved before they existed) and only the
    ``RUNTIME`` fields given on the command line."""
    check_run_settings(settings)
    out = Path(settings.out)
    last = out / "last.pt"
    if out.is_dir():  # what a run killed while saving left (a .last.<random>.partial.pt blocked the next)
        clean_partials(out)
    if not resume:
        if last.exists():
            raise Rb2vError(f"{out}: already holds a run (last.pt): pass --resume to continue it, or another --out")
        # a run killed before its first epoch leaves its own files; anything else is the user's (a
        # settings.json or log.csv of theirs was overwritten)
        others = sorted(
            p.name
            for p in (out.iterdir() if out.is_dir() else ())
            if p.name not in RUN_FILES or (p.name == "settings.json" and not is_run_settings(p))
        )
        if others:
            raise Rb2vError(f"{out}: holds files that are not a run's (e.g. {others[0]}): give another --out")
        epochs = default_epochs if settings.epochs is None else settings.epochs
        return dataclasses.replace(settings, epochs=epochs), None
    if not last.exists():
        raise Rb2vError(f"{last}: nothing to resume (no checkpoint in {out})")
    ckpt = load(last)
    saved = type(settings)(**{**(legacy or {}), **ckpt["settings"]})
    changes = {k: getattr(settings, k) for k in settings.RUNTIME if getattr(settings, k) is not None}
    manifest = resumed_manifest(settings.manifest, saved.manifest, out)
    return dataclasses.replace(saved, **changes, manifest=manifest, out=str(out)), ckpt


def is_run_settings(path: Path) -> bool:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"manifest", "out", "seed"} <= saved.keys()


def resumed_manifest(given: str, own: str, out: Path) -> str:
    """The manifest a resumed run continues on: its own. Another existing manifest is refused (a silent
    switch of data); the given one is taken only where the run's own is gone (a dataset moved)."""

    def file_of(path: str) -> Path:
        return manifest_path(path).resolve()

    if not Path(given).exists() or file_of(given) == file_of(own):
        return own
    if file_of(own).exists():
        raise Rb2vError(
            f"--manifest {given}: the run in {out} trains on {own}, and --resume continues on its own data "
            "(give that manifest, or another --out for a new run)"
        )
    say(f"note: the run's manifest {own} is gone; continuing on {given}")
    return given


def check_run_settings(settings) -> None:
    """The settings both trainers share, checked before any work (None: the default, or the run's own)."""
    for field in dataclasses.fields(settings):  # NaN passes every comparison below
        value = getattr(settings, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise Rb2vError(f"--{field.name.replace('_', '-')} {value:g}: must be a finite number")
    if not 0 <= settings.seed < 2**63:
        raise Rb2vError(f"--seed {settings.seed}: must be between 0 and 2**63 - 1")
    at_least = {"epochs": 1, "batch_size": 1, "crop": 1, "workers": 0, "threads": 1}
    for name, low in at_least.items():
        value = getattr(settings, name)
        if value is not None and value < low:
            raise Rb2vError(f"--{name.replace('_', '-')} {value}: must be at least {low}")
    if not settings.lr > 0:
        raise Rb2vError(f"--lr {settings.lr:g}: must be positive")
    if settings.clip_grad < 0:
        raise Rb2vError(f"--clip-grad {settings.clip_grad:g}: must be >= 0 (0: no cap)")


def cosine_lr(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 0 over the run's ``total`` steps (a function of the step, so a
    resumed run follows the same schedule). The product loss sharpens as scores grow; the decay
    keeps the late steps from overshooting."""
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def check_finite_loss(loss: torch.Tensor, out: Path, epoch: int) -> None:
    """Stop the run before a non-finite loss reaches the weights (its backward pass fills them with NaN,
    or crashes the process): ``last.pt`` keeps the last good epoch."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise Rb2vError(
            f"{out}: the loss became {value} in epoch {epoch}: the run diverged, and was stopped "
            f"({'last.pt keeps epoch ' + str(epoch - 1) if epoch > 1 else 'no epoch was saved'}); "
            "start it again with a lower --lr"
        )


def optimizer_step(optimizer, scaler, loss: torch.Tensor, lr: float, clip_grad: float) -> None:
    """One update at learning rate ``lr``: the scaled backward pass, the gradient norm capped at
    ``clip_grad`` (0: not capped; on the unscaled gradients), the step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip_grad)
    scaler.step(optimizer)
    scaler.update()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in np.random.get_state(legacy=False)["state"].items()
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {"key": np.asarray(state["numpy"]["key"], dtype=np.uint32), "pos": state["numpy"]["pos"]}
    np.random.set_state(np_state)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def data_record(rows) -> dict:
    """What a run trains on (its split's rows): how many sequences, and a digest of their ids."""
    ids = "\n".join(map(str, rows["sample_id"]))
    return {"sequences": len(rows), "ids_sha256": hashlib.sha256(ids.encode("utf-8")).hexdigest()}


def run_state(
    network: torch.nn.Module, optimizer, scaler, epoch: int, settings, history: list, data: dict, **model: Any
) -> dict:
    """What ``last.pt`` holds after ``epoch`` epochs: the weights (on the CPU), ``model``'s entries
    (what rebuilds the network), the data it trains on (``data_record``) and what an exact resume needs."""
    return {
        "model": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        **model,
        "data": data,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "epoch": epoch,
        "settings": dataclasses.asdict(settings),
        "rng": rng_state(),
        "history": history,
    }


def restore_run(ckpt: dict | None, optimizer, scaler, data: dict, manifest: str) -> tuple[int, list]:
    """Restore a run's optimiser, scaler and random state; (epochs done, per-epoch history). A dataset
    rebuilt at the run's own path with other samples (``data``) is refused: that would be another run."""
    if ckpt is None:
        return 0, []
    saved = ckpt.get("data")  # None: a run saved before the record
    if saved is not None and saved != data:
        raise Rb2vError(
            f"{manifest}: its training samples changed since the run began ({saved['sequences']} sequences then, "
            f"{data['sequences']} now: the dataset was rebuilt); start a new run (another --out)"
        )
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]), list(ckpt["history"])


class RunLog:
    """log.csv (rewritten whole from the history, so a resume never duplicates rows) and
    TensorBoard when it is installed."""

    def __init__(self, folder: Path):
        self.path = folder / "log.csv"
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, history: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(self.path, buf.getvalue())
        if self.tb is not None:
            row = history[-1]
            for k, v in row.items():
                if k != "epoch":
                    self.tb.add_scalar(f"train/{k}", v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
