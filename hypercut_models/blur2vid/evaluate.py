"""``rb2v eval-blur2vid``: pPSNR per frame (official definition, see ``metrics``), p̄PSNR, pSSIM,
forward PSNR and the blurry-input floor on one split, overall and per subject (video); with a
HyperCUT checkpoint, hit / con@3 of the *predicted* sequences (as predicted, in time order) under
that ordering network."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from rb2v.device import resolve_device
from rb2v.errors import Rb2vError
from rb2v.progress import progress

from ..checkpoint import load_model as load_hypercut
from ..data import iterate, make_loader
from ..losses import pair_scores
from ..metrics import ordering_metrics
from ..network import MIN_SIDE
from .checkpoint import load_network
from .data import BlurSequenceDataset
from .network import Blur2VidNet
from .train import place


@torch.no_grad()
def predict(net: Blur2VidNet, blur: torch.Tensor, device: torch.device, clamp: bool = True) -> torch.Tensor:
    """(B, 3, H, W) blurry images in [0, 1] -> (B, 7, 3, H, W) float32 frames on the CPU, clamped to [0, 1]
    (images to write) or, with ``clamp=False``, as the network gives them (what the official evaluation scores)."""
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        pred = net(place(blur, device))
    pred = pred.float()
    return (pred.clamp_(0, 1) if clamp else pred).cpu()


def evaluate(
    manifest: str | Path,
    checkpoint: str | Path,
    *,
    split: str = "test",
    hypercut: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 4,
    workers: int = 0,
    ssim: bool = True,
    net: Blur2VidNet | None = None,
) -> dict:
    """The figures of ``eval-blur2vid`` (the JSON keys listed in hypercut_models/README.md, plus counts and timings)."""
    from .metrics import PPSNRAccumulator

    dev = resolve_device(device)
    if net is None:
        net, _ = load_network(checkpoint)
    net = place(net, dev).eval()
    hc = None
    if hypercut is not None:
        hc_net, plane, _ = load_hypercut(hypercut)
        hc = (place(hc_net, dev, channels_last=dev.type == "cuda").eval(), plane.to(dev))
    dataset = BlurSequenceDataset(manifest, split)
    if hc is not None and dataset.smallest < MIN_SIDE:
        raise Rb2vError(
            f"{dataset.manifest}: frames of side {dataset.smallest} are too small for --hypercut "
            f"(HyperCUT needs {MIN_SIDE} px)"
        )
    if not dataset.uniform_size():
        batch_size = 1
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers, device=dev)
    acc = PPSNRAccumulator(ssim=ssim)
    fwd_scores, rev_scores = [], []
    t0 = time.perf_counter()
    subjects = dataset.rows["subject"].tolist()
    for blur, frames, index in progress(
        iterate(loader), total=len(loader), desc=f"eval-blur2vid {split}", unit="batch"
    ):
        pred = predict(net, blur, dev, clamp=False)
        if hc is not None:
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                f, r = pair_scores(hc[0], hc[1], pred.to(dev), channels_last=dev.type == "cuda")
            fwd_scores.append(f.float().cpu().numpy())
            rev_scores.append(r.float().cpu().numpy())
        p = pred.numpy().transpose(0, 1, 3, 4, 2)
        t = frames.numpy().transpose(0, 1, 3, 4, 2)
        b = blur.numpy().transpose(0, 2, 3, 1)
        for i in range(len(p)):
            acc.add(p[i], t[i], b[i], subjects[int(index[i])])
    result = acc.result()
    if hc is not None:
        m = ordering_metrics(np.concatenate(fwd_scores), np.concatenate(rev_scores))
        result.update({"hit": m["hit"], "con@2": m["con@2"], "con@3": m["con@3"]})
    result.update(
        {
            "split": split,
            "manifest": str(dataset.manifest),
            "checkpoint": str(checkpoint),
            "device": str(dev),
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return result


def format_result(result: dict) -> str:
    head = f"{'':<16}" + "".join(f"{f'x{k}':>7}" for k in range(7)) + f"{'mean':>8}"
    rows = [head]
    for name, key in (("pPSNR", "ppsnr"), ("forward PSNR", "psnr_forward"), ("blurry input", "baseline_ppsnr")):
        vals = result[key]
        rows.append(f"{name:<16}" + "".join(f"{v:>7.2f}" for v in vals) + f"{np.mean(vals):>8.2f}")
    by_subject = result.get("by_subject", {})
    if len(by_subject) > 1:  # where the figures come from: each video's border frames beside its floor
        rows.append(
            f"{'per subject':<24}{'samples':>8}{'x0':>7}{'x3':>7}{'x6':>7}{'mean':>8}   blurry input x0, x6, mean"
            "   motion px (truth, predicted)"
        )
        for subject, r in by_subject.items():
            v, b = r["ppsnr"], r["baseline_ppsnr"]
            rows.append(
                f"{subject[:23]:<24}{r['samples']:>8}{v[0]:>7.2f}{v[3]:>7.2f}{v[6]:>7.2f}{np.mean(v):>8.2f}"
                f"   {b[0]:.2f}, {b[6]:.2f}, {np.mean(b):.2f}{_motion(r)}"
            )
    if "motion_true_px" in result:
        rows.append(f"motion x0 -> x6 (median optical flow, px), truth, predicted:{_motion(result)}")
    extra = f"pSSIM {result['pssim_mean']:.4f}" if "pssim_mean" in result else ""
    if "con@3" in result:
        extra += f"   predictions under HyperCUT: hit {100 * result['hit']:.2f} %, con@3 {100 * result['con@3']:.2f} %"
    rows.append(extra.strip())
    rows.append(f"{result['split']} split, {result['samples']} samples, {result['seconds']:.1f}s on {result['device']}")
    return "\n".join(rows)


def _motion(r: dict) -> str:
    return f"   {r['motion_true_px']:.2f}, {r['motion_predicted_px']:.2f}" if "motion_true_px" in r else ""
