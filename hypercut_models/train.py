"""Training of the HyperCUT ordering network on a manifest's train split.

A run folder holds ``settings.json``, ``log.csv`` (one row per epoch), ``last.pt`` (rewritten
atomically after every epoch, so it is always the newest complete state) and, when the
``tensorboard`` package is installed, TensorBoard events. ``resume=True`` continues from
``last.pt`` with the run's own settings (only the number of epochs may be raised), restoring the
optimiser, the mixed-precision scaler and every random generator: the resumed run then computes
exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rb2v.device import resolve_device, training_autocast
from rb2v.errors import Rb2vError
from rb2v.fsutil import write_json_atomic, write_text_atomic
from rb2v.progress import progress, say

from .checkpoint import build_model, hyperplane_state, load_checkpoint, load_model, save_checkpoint
from .data import SequenceDataset, default_workers, iterate, make_loader
from .learnability import classical_side
from .losses import HyperCUTLoss, Hyperplane, pair_scores
from .metrics import sides
from .network import HyperCUTNet

DEFAULT_CROP = 256  # the official trainer's random crop
DEFAULT_EPOCHS = 20


@dataclass
class TrainSettings:
    manifest: str
    out: str
    epochs: int | None = None  # None: DEFAULT_EPOCHS for a new run, the run's own on resume
    batch_size: int = 8
    lr: float = 2e-4
    crop: int | None = None  # None: DEFAULT_CROP, or the smallest frame side if smaller
    final_epochs: int = 0  # the last epochs train on final_crop crops (see train())
    final_crop: int | None = None  # None: the smallest frame side (the whole frame's scale)
    flips: bool = True
    same_weight: float = 1.0  # weight of the same-side consistency terms (0 disables them)
    direction_weight: float = 0.0  # weight of the direction prior (losses.direction_loss; 0 disables it)
    clip_grad: float = 10.0  # gradient norm cap (0: none); see train()
    warmup: int = 200  # steps over which the escape term (losses.escape_loss) fades out
    out_dim: int = 128
    seed: int = 0  # seeds the hyperplane, the initial weights, shuffling and crops
    # rb2v.device.training_autocast; float32 on the CPU by default: bfloat16 ("auto") trained 1.9x faster
    # but con@3 89.9 against 91.0 % over five seeds, lower on four (hypercut_models/README.md)
    precision: str = "cuda-only"
    workers: int | None = None  # None: up to 4, one less than the CPUs
    device: str = "auto"
    threads: int | None = None  # CPU threads of torch (None: its default); 1 is fastest on a busy machine
    init: str | None = None  # start from this checkpoint's network and hyperplane (fine-tuning)

    # settings a resumed run may change without changing what it computes
    RUNTIME = ("epochs", "workers", "device", "threads")


def cosine_lr(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 0 over the run's ``total`` steps (a function of the step, so a
    resumed run follows the same schedule). The product loss sharpens as scores grow; the decay
    keeps the late steps from overshooting."""
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


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


def restore_run(ckpt: dict | None, optimizer, scaler) -> tuple[int, list]:
    """Restore a run's optimiser, scaler and random state; (epochs done, per-epoch history)."""
    if ckpt is None:
        return 0, []
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


def _resolve(settings: TrainSettings, resume: bool) -> tuple[TrainSettings, dict | None]:
    out = Path(settings.out)
    last = out / "last.pt"
    if not resume:
        if last.exists():
            raise Rb2vError(f"{out}: already holds a run (last.pt): pass --resume to continue it, or another --out")
        return dataclasses.replace(settings, epochs=settings.epochs or DEFAULT_EPOCHS), None
    if not last.exists():
        raise Rb2vError(f"{last}: nothing to resume (no checkpoint in {out})")
    ckpt = load_checkpoint(last)
    saved = TrainSettings(**{k: v for k, v in ckpt["settings"].items()})
    changes = {k: getattr(settings, k) for k in TrainSettings.RUNTIME if getattr(settings, k) is not None}
    return dataclasses.replace(saved, **changes, out=str(out)), ckpt


def train(settings: TrainSettings, resume: bool = False) -> Path:
    """Train (or continue) a run; return the path of its ``last.pt``."""
    settings, ckpt = _resolve(settings, resume)
    if not 0 <= settings.final_epochs <= settings.epochs:
        raise Rb2vError(f"--final-epochs {settings.final_epochs} must be between 0 and --epochs ({settings.epochs})")
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    out = Path(settings.out)

    probe = SequenceDataset(settings.manifest, "train")
    smallest = int(min(probe.rows["width"].min(), probe.rows["height"].min()))
    crop = settings.crop or min(DEFAULT_CROP, smallest)
    dataset = SequenceDataset(settings.manifest, "train", crop=crop, flips=settings.flips, seed=settings.seed)
    # Small crops buy steps, but a network trained only on them and scored on whole frames lost
    # ~4 points of hit (measured: 94.5 % on 64 px crops vs 90.4 % on the 96 px frames); a few
    # final epochs at the evaluation scale recover it.
    final_crop = settings.final_crop or smallest
    final_dataset = (
        SequenceDataset(settings.manifest, "train", crop=final_crop, flips=settings.flips, seed=settings.seed)
        if settings.final_epochs > 0
        else dataset
    )
    first_final = settings.epochs - settings.final_epochs
    workers = default_workers() if settings.workers is None else settings.workers

    net = HyperCUTNet(out_dim=settings.out_dim)
    plane = Hyperplane(settings.out_dim, seed=settings.seed)
    if ckpt is not None:
        net, plane = build_model(ckpt)
    elif settings.init:
        net, plane, _ = load_model(settings.init)
        if net.out_dim != settings.out_dim:
            raise Rb2vError(f"{settings.init}: its network has out_dim {net.out_dim}, not {settings.out_dim}")
    cuda = device.type == "cuda"
    net = net.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    plane = plane.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    autocast = training_autocast(device, settings.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast is torch.float16)
    criterion = HyperCUTLoss(settings.same_weight, settings.direction_weight)
    start, history = restore_run(ckpt, optimizer, scaler)
    if ckpt is not None and start >= settings.epochs:
        say(f"{out}: already trained for {start} epoch(s) (>= --epochs {settings.epochs}); nothing to do")
        return out / "last.pt"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / "settings.json",
        {
            **dataclasses.asdict(settings),
            "crop_used": crop,
            "final_crop_used": final_crop if settings.final_epochs else None,
        },
    )
    log = RunLog(out)
    net_args = {"out_dim": settings.out_dim}

    steps_per_epoch = -(-len(dataset) // settings.batch_size)
    final = f", the last {settings.final_epochs} on {final_crop}x{final_crop}" if settings.final_epochs else ""
    say(
        f"training HyperCUT on {len(dataset)} sequences ({crop}x{crop} crops{final}) on {device}, "
        f"epochs {start + 1}..{settings.epochs}, {steps_per_epoch} steps each, {workers} loader worker(s)"
    )
    bar = progress(total=(settings.epochs - start) * steps_per_epoch, desc="train-hypercut", unit="step")
    try:
        for epoch in range(start, settings.epochs):
            t0 = time.perf_counter()
            net.train()
            sums = {"total": 0.0, "order": 0.0, "same": 0.0, "direction": 0.0}
            hits = con3 = seen = 0
            loader = make_loader(
                final_dataset if epoch >= first_final else dataset,
                batch_size=settings.batch_size,
                shuffle=True,
                workers=workers,
                device=device,
                seed=settings.seed,
                epoch=epoch,
            )
            for step, (frames, _) in enumerate(iterate(loader), start=epoch * steps_per_epoch):
                lr = cosine_lr(settings.lr, step, settings.epochs * steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                # the prior's shifts from the CPU batch, by the phase correlation the checks use
                shift = classical_side(frames).to(device) if settings.direction_weight > 0 else None
                frames = frames.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    forward, reverse = pair_scores(net, plane, frames, channels_last=cuda)
                escape = max(0.0, 1.0 - step / settings.warmup) if settings.warmup > 0 else 0.0
                losses = criterion(forward.float(), reverse.float(), escape_weight=escape, shift=shift)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(losses["total"]).backward()
                if settings.clip_grad > 0:
                    # L_h's gradient grows with the scores (d softplus(s r)/ds = sigmoid(s r) r): one
                    # confident mistake gave 3x the usual norm and undid an epoch of training
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                n = len(frames)
                for k in sums:
                    sums[k] += float(losses[k].detach()) * n
                fs, rs = sides(forward.detach().float().cpu().numpy()), sides(reverse.detach().float().cpu().numpy())
                hits += int((fs != rs).sum())
                con3 += int((fs == fs[:, :1]).all(axis=1).sum())
                seen += n
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{sums['total'] / seen:.4f}")
            seconds = time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": sums["total"] / seen,
                    "order_loss": sums["order"] / seen,
                    "same_loss": sums["same"] / seen,
                    "direction_loss": sums["direction"] / seen,
                    "train_hit": hits / (3 * seen),
                    "train_con@3": con3 / seen,
                    "lr": lr,
                    "seconds": round(seconds, 3),
                    "sequences_per_s": round(seen / seconds, 3),
                }
            )
            save_checkpoint(
                out / "last.pt",
                {
                    "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                    "hyperplane": hyperplane_state(plane),
                    "net": net_args,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "epoch": epoch + 1,
                    "settings": dataclasses.asdict(settings),
                    "rng": rng_state(),
                    "history": history,
                },
            )
            log.write(history)
            row = history[-1]
            say(
                f"epoch {epoch + 1}/{settings.epochs}: loss {row['loss']:.4f}  train hit {row['train_hit']:.3f}  "
                f"con@3 {row['train_con@3']:.3f}  {seconds:.1f}s  ETA {seconds * (settings.epochs - epoch - 1):.0f}s"
            )
    finally:
        bar.close()
        log.close()
    return out / "last.pt"
