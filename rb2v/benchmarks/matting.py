"""``rb2v bench matting``: our keyer vs ffmpeg chromakey+despill vs a plain HSV threshold.

Green-screen takes come from the rig simulator (exact alpha from the exposure-averaged
coverage). For each blurry frame the three keyers run side by side; matting errors
(SAD/1000, MSE, gradient error/1000) are reported over the whole frame and over the
motion-blurred band (0 < true alpha < 1), and each matte is composited onto a random
background and compared (PSNR) with the true composite: the same exposure filmed with
that background in place of the screen.

ffmpeg's chromakey gets the take's screen colour (median of our fitted screen) and its
similarity/blend are tuned on the first frame of each take from a small grid (best band
SAD), so the comparison is not against a strawman.
"""

from __future__ import annotations

import time

import click
import cv2
import numpy as np

from .. import ffmpeg
from ..io.images import to_uint8
from ..matting import ChromaKeyer, composite, metrics, pick_background
from ..metrics import psnr
from ..progress import say

MARGIN = 24  # the simulated rig's dark borders (16 px + a 4 px ramp) are cropped, as alignment does
FFMPEG_GRID = [(s, b) for s in (0.03, 0.05, 0.08, 0.12, 0.18) for b in (0.02, 0.05, 0.1, 0.2)]


def ffmpeg_key(
    frames: np.ndarray, colour: np.ndarray, similarity: float, blend: float
) -> tuple[np.ndarray, np.ndarray]:
    """ffmpeg chromakey + despill on (N,H,W,3) sRGB frames -> alphas (N,H,W), fgs (N,H,W,3)."""
    n, h, w, _ = frames.shape
    hexcol = "0x" + "".join(f"{int(round(float(c) * 255)):02X}" for c in colour)
    vf = (
        f"format=yuva444p,chromakey=color={hexcol}:similarity={similarity}:blend={blend},"
        f"format=gbrap,despill=type=green,format=rgba"
    )
    args = [
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-i",
        "-",
        "-vf",
        vf,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgba",
        "-",
    ]
    proc = ffmpeg.run(args, input=to_uint8(frames).tobytes(), what="ffmpeg chromakey")
    out = np.frombuffer(proc.stdout, np.uint8).reshape(n, h, w, 4).astype(np.float32) / 255.0
    return out[..., 3], out[..., :3]


def hsv_key(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary key: green hue (OpenCV H in 35..85), saturation > 0.3 and value > 0.15 is screen."""
    hsv = cv2.cvtColor(to_uint8(frame), cv2.COLOR_RGB2HSV)
    screen = (hsv[..., 0] >= 35) & (hsv[..., 0] <= 85) & (hsv[..., 1] > 76) & (hsv[..., 2] > 38)
    return (~screen).astype(np.float32), frame


def simulated_frames(category: str, size: int, frames: int, seed: int):
    """(take, blur indices, frames (N,S,S,3), alphas (N,S,S)) of one simulated green-screen take."""
    from ..simulate import SimConfig, TakeSimulation

    cfg = SimConfig(
        category=category, width=size + 2 * MARGIN, height=size + 2 * MARGIN, seconds=max(1.0, frames * 0.2), seed=seed
    )
    take = TakeSimulation(cfg, 0, 0)
    idx = np.unique(np.linspace(2, take.blur_frames - 3, frames).round().astype(int))
    c = slice(MARGIN, -MARGIN)
    shots = [take.film_blur(int(k)) for k in idx]
    return take, idx, np.stack([f[c, c] for f, _ in shots]), np.stack([a[c, c] for _, a in shots])


def true_composite(take, k: int, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop as recorded and the noiseless exposure filmed in front of it (both cropped).

    The simulated camera applies a colour transform after encoding; the backdrop is
    pre-distorted by its inverse so that what the camera records is the photo itself.
    """
    M = take.blur.colour.astype(np.float32)
    pad = cv2.copyMakeBorder(background, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_REFLECT)
    pre = np.clip((pad - M[:, 3]) @ np.linalg.inv(M[:, :3]).T, 0, 1).astype(np.float32)
    recorded = np.clip(pre @ M[:, :3].T + M[:, 3], 0, 1).astype(np.float32)
    frame, _ = take.film_blur(int(k), noise=False, backdrop=pre)
    c = slice(MARGIN, -MARGIN)
    return recorded[c, c], frame[c, c]


def score(alpha, fg, true_alpha, truth, background, space) -> dict:
    band = (true_alpha > 1e-4) & (true_alpha < 1 - 1e-4)
    comp = composite(fg, alpha, background, space=space)
    return {
        "SAD": metrics.sad(alpha, true_alpha),
        "SAD band": metrics.sad(alpha, true_alpha, band),
        "MSE": metrics.mse(alpha, true_alpha),
        "MSE band": metrics.mse(alpha, true_alpha, band),
        "Grad": metrics.gradient_error(alpha, true_alpha),
        "Grad band": metrics.gradient_error(alpha, true_alpha, band),
        "PSNR": psnr(comp, truth),
    }


@click.command()
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(["hand", "face"]),
    default=("hand", "face"),
    show_default=True,
    help="Simulated green-screen categories (repeatable).",
)
@click.option("--frames", type=click.IntRange(min=1), default=4, show_default=True, help="Blurry frames per take.")
@click.option(
    "--size",
    type=click.IntRange(min=64),
    default=448,
    show_default=True,
    help="Side of the (cropped) frames in pixels.",
)
@click.option("--seed", default=0, show_default=True, help="Simulator seed.")
def main(categories, frames, size, seed):
    """Our chroma keyer vs ffmpeg chromakey+despill vs an HSV threshold on simulated takes."""
    rows: list[tuple[str, str, dict, float]] = []
    for cat in categories:
        say(f"simulating a {cat} take ({frames} frames, {size}x{size})")
        take, idx, shots, alphas = simulated_frames(cat, size, frames, seed)
        t0 = time.perf_counter()
        keyer = ChromaKeyer().fit(shots)
        fit_s = time.perf_counter() - t0
        colour = np.median(keyer.screen_image(size, size).reshape(-1, 3), axis=0)
        backgrounds = [pick_background(f"bench-matting-{cat}-{k}", (size, size)) for k in idx]
        truths = [true_composite(take, k, bg) for k, (bg, _) in zip(idx, backgrounds)]

        band0 = (alphas[0] > 1e-4) & (alphas[0] < 1 - 1e-4)
        best = min(FFMPEG_GRID, key=lambda p: metrics.sad(ffmpeg_key(shots[:1], colour, *p)[0][0], alphas[0], band0))
        t0 = time.perf_counter()
        ff_alpha, ff_fg = ffmpeg_key(shots, colour, *best)
        ff_s = (time.perf_counter() - t0) / len(shots)

        results = {"ours (chroma)": [], f"ffmpeg chromakey s={best[0]} b={best[1]}": [], "HSV threshold": []}
        times = {name: 0.0 for name in results}
        names = list(results)
        for i in range(len(shots)):
            recorded_bg, truth = truths[i]
            t0 = time.perf_counter()
            a, fg = keyer(shots[i])
            times[names[0]] += time.perf_counter() - t0
            results[names[0]].append(score(a, fg, alphas[i], truth, recorded_bg, "linear"))
            results[names[1]].append(score(ff_alpha[i], ff_fg[i], alphas[i], truth, recorded_bg, "srgb"))
            t0 = time.perf_counter()
            a, fg = hsv_key(shots[i])
            times[names[2]] += time.perf_counter() - t0
            results[names[2]].append(score(a, fg, alphas[i], truth, recorded_bg, "srgb"))
        times[names[0]] = times[names[0]] / len(shots) + fit_s / len(shots)
        times[names[1]] = ff_s
        times[names[2]] /= len(shots)
        for name, scores in results.items():
            mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            rows.append((cat, name, mean, times[name]))

    keys = ["SAD", "SAD band", "MSE", "MSE band", "Grad", "Grad band", "PSNR"]
    header = f"{'category':8} {'method':34} " + " ".join(f"{k:>9}" for k in keys) + f" {'ms/frame':>9}"
    click.echo(header)
    click.echo("-" * len(header))
    for cat, name, mean, secs in rows:
        click.echo(f"{cat:8} {name:34} " + " ".join(f"{mean[k]:9.4f}" for k in keys) + f" {secs * 1000:9.1f}")
    click.echo("")
    for cat in categories:
        ours = next(m for c, n, m, _ in rows if c == cat and n.startswith("ours"))
        ff = next(m for c, n, m, _ in rows if c == cat and n.startswith("ffmpeg"))
        ratio = ours["SAD band"] / max(ff["SAD band"], 1e-12)
        click.echo(
            f"{cat}: band SAD ours/ffmpeg = {ratio:.3f} (target <= 0.7); composite PSNR ours = "
            f"{ours['PSNR']:.2f} dB (target >= 35 on hand), ffmpeg = {ff['PSNR']:.2f} dB"
        )
    click.echo(
        f"(blurry frames of simulated takes, seed {seed}, {frames} frames per take, {size}x{size}; "
        f"SAD and Grad are /1000; ours includes fitting the take's screen, spread over its frames)"
    )
