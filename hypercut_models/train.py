"""Training of the HyperCUT ordering network on a manifest's train split.

The run folder, exact resume and the update step are ``runs.py``'s (shared with ``train-blur2vid``);
on resume only the number of epochs, the loader workers, the device and the threads may change.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rb2v.device import resolve_device, training_autocast
from rb2v.errors import Rb2vError
from rb2v.fsutil import write_json_atomic
from rb2v.progress import progress, say

from .checkpoint import build_model, hyperplane_state, load_checkpoint, load_model, save_checkpoint
from .data import SequenceDataset, default_workers, iterate, make_loader
from .learnability import classical_side
from .losses import HyperCUTLoss, Hyperplane, pair_scores
from .metrics import sides
from .network import HyperCUTNet
from .runs import (
    RunLog,
    check_finite_loss,
    cosine_lr,
    data_record,
    optimizer_step,
    resolve_run,
    restore_run,
    run_state,
    seed_everything,
)

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


def _resolve(settings: TrainSettings, resume: bool) -> tuple[TrainSettings, dict | None]:
    return resolve_run(settings, resume, DEFAULT_EPOCHS, load_checkpoint)


def train(settings: TrainSettings, resume: bool = False) -> Path:
    """Train (or continue) a run; return the path of its ``last.pt``."""
    settings, ckpt = _resolve(settings, resume)
    if not 0 <= settings.final_epochs <= settings.epochs:
        raise Rb2vError(f"--final-epochs {settings.final_epochs} must be between 0 and --epochs ({settings.epochs})")
    for name in ("same_weight", "direction_weight"):
        if getattr(settings, name) < 0:
            raise Rb2vError(
                f"--{name.replace('_', '-')} {getattr(settings, name):g}: must be >= 0 (0: the term is off)"
            )
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    out = Path(settings.out)

    probe = SequenceDataset(settings.manifest, "train")
    smallest = probe.smallest
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
        net, plane = build_model(ckpt, Path(settings.out) / "last.pt")
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
    data = data_record(dataset.rows)
    start, history = restore_run(ckpt, optimizer, scaler, data, settings.manifest)
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
    if settings.epochs * steps_per_epoch < settings.warmup:  # a smoke run's labels looked like a broken tool
        say(
            f"note: {settings.epochs * steps_per_epoch} steps in all, fewer than the {settings.warmup} over which "
            "the start-up escape term fades: a network trained this briefly gives no useful order labels"
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
                # the prior's shifts from the CPU batch, by the phase correlation the checks use
                shift = classical_side(frames).to(device) if settings.direction_weight > 0 else None
                frames = frames.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    forward, reverse = pair_scores(net, plane, frames, channels_last=cuda)
                escape = max(0.0, 1.0 - step / settings.warmup) if settings.warmup > 0 else 0.0
                losses = criterion(forward.float(), reverse.float(), escape_weight=escape, shift=shift)
                check_finite_loss(losses["total"], out, epoch + 1)
                # clip_grad: L_h's gradient grows with the scores (d softplus(s r)/ds = sigmoid(s r) r): one
                # confident mistake gave 3x the usual norm and undid an epoch of training
                optimizer_step(optimizer, scaler, losses["total"], lr, settings.clip_grad)
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
            state = run_state(
                net,
                optimizer,
                scaler,
                epoch + 1,
                settings,
                history,
                data,
                hyperplane=hyperplane_state(plane),
                net=net_args,
            )
            save_checkpoint(out / "last.pt", state)
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
