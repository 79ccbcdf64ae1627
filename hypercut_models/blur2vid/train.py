"""``rb2v train-blur2vid``: train the blur2vid network on a manifest's train split.

The run folder, exact resume and the update step are ``hypercut_models/runs.py``'s, shared with
``train-hypercut``; on resume only ``epochs``, ``workers``, ``device``, ``threads`` may change.
Channels-last tensors on every device (``place``). Mixed precision (``rb2v.device.training_autocast``):
float16 autocast with a gradient scaler and pinned memory on CUDA, bfloat16 autocast on a CPU that
computes it natively; ``precision="cuda-only"`` keeps the CPU in float32 (runs saved before the
setting resume so), ``"float32"`` turns both off.
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
from rb2v.interpolation.flow import DIS_MIN_SIDE
from rb2v.manifest import read_manifest
from rb2v.progress import progress, say

from ..checkpoint import load_regularizer
from ..data import default_workers, iterate, make_loader
from ..network import MIN_SIDE
from ..runs import (
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
from .checkpoint import build_network, load_checkpoint, save_checkpoint
from .data import BlurSequenceDataset, order_record
from .losses import LOSSES, Blur2VidLoss
from .network import SIZES, make_network

DEFAULT_EPOCHS = 30
DEFAULT_CROP = 64
# what runs saved before these settings existed trained with
OLD_RUN_SETTINGS = {"flow_weight": 0.0, "precision": "cuda-only"}


@dataclass
class Blur2VidSettings:
    manifest: str
    out: str
    loss: str = "naive"  # naive | order-invariant | hypercut
    hypercut: str | None = None  # HyperCUT checkpoint for R_hyp (--loss hypercut)
    # weight of R_hyp; the paper's is 0.2, which cost 0.15-2.86 dB on the border frames in
    # `rb2v bench blur2vid` with a direction-prior HyperCUT (README, #15)
    alpha: float = 0.0
    alpha_from: int = 1  # the first epoch (1-based) trained with R_hyp; the ones before train without it
    # weight of the flow term against the ground truth's flows (losses); 0 trains on frames alone.
    # `rb2v bench blur2vid`'s data, seed and budget, hypercut loss, path head (2026-12-04): border
    # frames x0/x6 of the panning test videos 20.32/20.27 dB without it, 21.11/21.19 dB at 0.01 (the
    # predicted x0 -> x6 motion 3.72 -> 7.19 px of the true ~10); README, #15
    flow_weight: float = 0.01
    size: str = "small"
    epochs: int | None = None  # None: DEFAULT_EPOCHS for a new run, the run's own on resume
    crop: int | None = None  # None: DEFAULT_CROP, or the smallest frame side if smaller
    batch_size: int = 8
    lr: float = 5e-4
    clip_grad: float = 1.0  # gradient norm cap (0: none)
    # auto (float16 on CUDA, bfloat16 on a CPU with it natively) | cuda-only | float32
    precision: str = "auto"
    seed: int = 0
    workers: int | None = 0  # data loader processes (None: up to 4)
    device: str = "auto"
    threads: int | None = None

    RUNTIME = ("epochs", "workers", "device", "threads")


def place(x, device: torch.device, channels_last: bool = True):
    """A module or a 4-D tensor on ``device``, channels-last unless asked otherwise (the one placement
    rule). The blur2vid network runs channels-last on every device: on CUDA for the tensor cores,
    and on the CPU because oneDNN's convolutions are faster that way with the same numbers. One
    training step of the small network (batch 8, 64x64, one thread, 2026-12-04): 300 -> 225 ms;
    inference 1.2-1.4x faster (a 512x512 image 0.89 -> 0.65 s)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if isinstance(x, torch.nn.Module):
        return x.to(device, memory_format=fmt)
    if x.ndim == 4:
        return x.to(device, non_blocking=True).contiguous(memory_format=fmt)
    return x.to(device, non_blocking=True)


def hyp_note(row: dict) -> str:
    return f", R_hyp {row['hyp_loss']:.3f}"


def flow_note(row: dict) -> str:
    return f", flow {row['flow_loss']:.3f} px"


def _resolve(settings: Blur2VidSettings, resume: bool) -> tuple[Blur2VidSettings, dict | None]:
    return resolve_run(settings, resume, DEFAULT_EPOCHS, load_checkpoint, legacy=OLD_RUN_SETTINGS)


def _check(settings: Blur2VidSettings) -> None:
    if settings.loss not in LOSSES:
        raise Rb2vError(f"--loss {settings.loss!r}: use one of {', '.join(LOSSES)}")
    if settings.size not in SIZES:
        raise Rb2vError(f"--size {settings.size!r}: use one of {', '.join(SIZES)}")
    if settings.alpha < 0:
        raise Rb2vError(f"--alpha {settings.alpha:g}: must be >= 0 (0 trains without R_hyp)")
    if settings.flow_weight < 0:
        raise Rb2vError(f"--flow-weight {settings.flow_weight:g}: must be >= 0 (0 trains on the frames alone)")
    if settings.alpha_from < 1:
        raise Rb2vError(f"--alpha-from {settings.alpha_from}: the first epoch is 1")
    if settings.loss == "hypercut" and settings.alpha > 0 and settings.alpha_from > settings.epochs:
        raise Rb2vError(f"--alpha-from {settings.alpha_from} > --epochs {settings.epochs}: R_hyp would never be used")
    if settings.loss == "hypercut" and not settings.hypercut:
        raise Rb2vError("--loss hypercut needs --hypercut CKPT (the HyperCUT checkpoint that ordered the manifest)")


def train(settings: Blur2VidSettings, resume: bool = False) -> Path:
    """Train (or continue) a run; return the path of its ``last.pt``."""
    settings, ckpt = _resolve(settings, resume)
    _check(settings)
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    out = Path(settings.out)
    hypercut = settings.loss == "hypercut"

    probe = BlurSequenceDataset(settings.manifest, "train", ordered=hypercut)
    smallest = probe.smallest
    crop = settings.crop or min(DEFAULT_CROP, smallest)
    if hypercut and crop < MIN_SIDE:
        raise Rb2vError(f"--crop {crop}: R_hyp runs HyperCUT on the crops, which needs sides >= {MIN_SIDE}")
    flows = settings.flow_weight > 0
    if flows and crop < DIS_MIN_SIDE:
        raise Rb2vError(
            f"--crop {crop}: the flow term estimates the true frames' flows (DIS), which needs sides >= "
            f"{DIS_MIN_SIDE}; use a larger --crop or --flow-weight 0"
        )
    dataset = BlurSequenceDataset(
        settings.manifest, "train", crop=crop, seed=settings.seed, ordered=hypercut, flows=flows
    )
    workers = default_workers() if settings.workers is None else settings.workers

    cuda = device.type == "cuda"
    autocast = training_autocast(device, settings.precision)
    net = build_network(ckpt, Path(settings.out) / "last.pt") if ckpt is not None else make_network(settings.size)
    net = place(net, device)
    regularizer = None
    if hypercut:  # the HyperCUT network: channels-last on CUDA only, as where it is trained
        regularizer = place(load_regularizer(settings.hypercut), device, channels_last=cuda)
    criterion = Blur2VidLoss(settings.loss, regularizer, settings.alpha, settings.flow_weight)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast is torch.float16)
    data = data_record(dataset.rows)
    start, history = restore_run(ckpt, optimizer, scaler, data, settings.manifest)
    if ckpt is not None and start >= settings.epochs:
        say(f"{out}: already trained for {start} epoch(s) (>= --epochs {settings.epochs}); nothing to do")
        return out / "last.pt"
    out.mkdir(parents=True, exist_ok=True)
    order = order_record(read_manifest(settings.manifest)) if hypercut else None
    write_json_atomic(out / "settings.json", {**dataclasses.asdict(settings), "crop_used": crop, "order_labels": order})
    log = RunLog(out)

    steps_per_epoch = -(-len(dataset) // settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    say(
        f"training blur2vid ({settings.size}, loss {settings.loss}"
        f"{f', alpha {settings.alpha:g}' if hypercut else ''}) on {len(dataset)} sequences ({crop}x{crop} crops) "
        f"on {device}, epochs {start + 1}..{settings.epochs}, {steps_per_epoch} steps each"
    )
    bar = progress(total=(settings.epochs - start) * steps_per_epoch, desc="train-blur2vid", unit="step")
    try:
        for epoch in range(start, settings.epochs):
            t0 = time.perf_counter()
            net.train()
            sums = {"total": 0.0, "recon": 0.0, "hyp": 0.0, "flow": 0.0}
            seen = 0
            regularize = epoch + 1 >= settings.alpha_from
            loader = make_loader(
                dataset,
                batch_size=settings.batch_size,
                shuffle=True,
                workers=workers,
                device=device,
                seed=settings.seed,
                epoch=epoch,
            )
            for step, (blur, frames, _, *target_flow) in enumerate(iterate(loader), start=epoch * steps_per_epoch):
                lr = cosine_lr(settings.lr, step, total_steps)
                blur, frames = place(blur, device), frames.to(device, non_blocking=True)
                target_flow = target_flow[0].to(device, non_blocking=True) if target_flow else None
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    pred, flow = net(blur, with_flow=True)
                    losses = criterion(pred.float(), frames, flow, target_flow, regularize=regularize)
                check_finite_loss(losses["total"], out, epoch + 1)
                optimizer_step(optimizer, scaler, losses["total"], lr, settings.clip_grad)
                n = len(blur)
                for k in sums:
                    sums[k] += float(losses[k].detach()) * n
                seen += n
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{sums['total'] / seen:.4f}")
            seconds = time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": sums["total"] / seen,
                    "recon_loss": sums["recon"] / seen,
                    "hyp_loss": sums["hyp"] / seen,
                    "flow_loss": sums["flow"] / seen,
                    "lr": lr,
                    "seconds": round(seconds, 3),
                    "sequences_per_s": round(seen / seconds, 3),
                }
            )
            state = run_state(
                net, optimizer, scaler, epoch + 1, settings, history, data, net=net.config(), size=settings.size
            )
            save_checkpoint(out / "last.pt", state)
            log.write(history)
            row = history[-1]
            say(
                f"epoch {epoch + 1}/{settings.epochs}: loss {row['loss']:.4f} (recon {row['recon_loss']:.4f}"
                f"{hyp_note(row) if hypercut else ''}{flow_note(row) if flows else ''})  {seconds:.1f}s  "
                f"ETA {seconds * (settings.epochs - epoch - 1):.0f}s"
            )
    finally:
        bar.close()
        log.close()
    return out / "last.pt"
