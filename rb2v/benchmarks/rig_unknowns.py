"""``rb2v bench rig-unknowns``: what each unknown of the rig costs, end to end (issue 13).

For every setting of the simulated cameras (exposure anchor start / centre / end, rolling-shutter
readout 0 / 8 / 16 ms, ``--randomize``, …) and every seed given, simulate one take, run
``rb2v align`` and ``rb2v build`` on it exactly as a user would (child processes, default
pipeline unless told), and compare with the simulator's truth:

- offset error (ms): ``time_offset_s`` of alignment.json against the truth (by construction off by the
  latency on the audio-latency settings, whose sound does not say when the pictures were taken)
- exposure on the sharp clock (ms, per seed): where the blurry exposures' middle rows fall on the sharp
  clock (offset and estimated exposure together, what a sample's start follows) against the truth
- corner error (px): ``rb2v.benchmarks.align.corner_errors`` of the crop (mean and max over corners):
  how far apart, in the true undistorted blur view, are the scene points the output pairs there
- at exact start (%): accepted samples whose ``sharp_start`` is the truth's (middle row, true exposures);
  the truth is the rounded fractional start ``sharp_start_exact``. Where that sits within
  ``TIE`` of k + 0.5, k and k + 1 are equally right (both windows are half a step, 2.5 ms at 200 fps,
  from centred) and rounding picks one at random: ``exact%`` counts either there (``strict%`` only the
  rounded one). Also: within one step of the fractional start (<1st%), the mean distance |dp| in
  steps, and the fractional part (frac) of the take's true starts
- accepted (%): accepted samples over the blurry frames the build considered (and over all frames)
- colour error: median over accepted samples of the mean max-channel difference between the sample's
  3x4 matrix and the true one (per-frame under drift) over the sharp frame's own colours

One seed gives the same scene, clocks and rig in every setting: only the convention changes.
Targets (issue 13): offset <= 2.5 ms, corner <= 0.5 px, >= 95 % at exact start, >= 70 % accepted,
colour <= 0.03.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..config import frame_size
from . import int_list

# name -> SimConfig fields; the sharp camera's readout is capped at its 10 ms frame period
SETTINGS: dict[str, dict] = {
    "centre": {},
    "start": {"blur_anchor": "start"},
    "end": {"blur_anchor": "end"},
    "short-20ms": {"blur_exposure_s": 1 / 50, "blur_anchor": "start"},
    "readout-8": {"blur_readout_s": 0.008, "sharp_readout_s": 0.008},
    "readout-16": {"blur_readout_s": 0.016, "sharp_readout_s": 0.010},
    # a rig whose mirror flips the sharp view upside down: the two rolling shutters then add
    "vertical-readout": {"flip": "vertical", "blur_readout_s": 0.012, "sharp_readout_s": 0.008},
    "drift+codec": {"exposure_drift": 0.03, "wb_drift": 0.02, "bitrate_mbps": 45.0},
    "distortion": {"distortion_blur": (-0.06,), "distortion_sharp": (0.05,)},
    # no audio: visual synchronisation (its offset is content time, off from the timestamps' by the exposure phase)
    "visual-lens": {"audio": False, "distortion_blur": (-0.06,), "distortion_sharp": (0.05,)},
    "randomized-nolens": {"randomize": True, "randomize_lens": False},
    "randomized": {"randomize": True},  # all of the above drawn, lenses too (with a checkerboard take)
    # the same on a rig whose mirror turns the sharp view upside down (its lens then mirrored in y)
    "randomized-vertical": {"randomize": True, "flip": "vertical"},
    # the same with a ChArUco board: its markers must be resolved, so the drawn reach fails at 640x544 on
    # some seeds (squares under 14 px across); at a GoPro's resolution they are 3x larger
    "randomized-charuco": {"randomize": True, "board": "charuco"},
    # the sharp camera's sound lags its pictures by 15 / 40 ms more than the blur camera's: audio sync is
    # off by that much, and only the blur exposure's estimate (its start against the sharp clock) can take it up
    "audio-latency-15": {"randomize": True, "sharp_audio_delay_s": 0.015},
    "audio-latency-40": {"randomize": True, "sharp_audio_delay_s": 0.040},
    # files whose streams start apart: the blur camera's sound stamped 37 ms after its first picture, the
    # sharp camera's 121 ms before (its pictures start 0.121 s into its files), and the converse
    "stream-starts": {"randomize": True, "audio_start_s": (0.037, -0.121)},
    "stream-starts-2": {"randomize": True, "audio_start_s": (-0.083, 0.052)},
    # both cameras in H.265, as a GoPro records its high-rate modes (at the drawn bitrates), every convention drawn
    "randomized-hevc": {"randomize": True, "codec": "hevc"},
    # the sharp camera mounted upside down, its file tagged to be turned back (a display matrix): its rolling
    # shutter reads the upright picture bottom up, against the blur camera's top down; every convention drawn
    "upside-down": {"randomize": True, "upside_down": (False, True)},
    # the blur camera upside down, turning its pixels itself (no tag): only its readout's direction tells
    "upside-down-untagged": {"randomize": True, "upside_down": (True, False), "rotation_tag": False},
    # the rig bumped by up to 2 px after its calibration take (a take trusts its calibration take's homography
    # unless its own matches sit 1.5 px off it: under that, the bump's shift and turn are fitted to its matches)
    "rig-drift-2": {"randomize": True, "rig_drift_px": 2.0},
    # the same bump as the sharp camera turned in 3-D (pan, tilt, roll): a pan or tilt leaves a keystone, which
    # align takes up by half where the lens is known (it cannot tell a pan from a slide of the camera)
    "rig-drift-2-3d": {"randomize": True, "rig_drift_px": 2.0, "rig_moves_3d": True},
    # the rig knocked halfway through the take: the sharp camera turns and shifts, its corners moving up to 2 px
    "bump": {"randomize": True, "bump_px": 2.0},
    # the real street video (``street_frames``) as the scene's backdrop instead of the bundled photos: real
    # texture (a race track: cars, asphalt, a hazy sky) behind the moving photos, every convention drawn; and knocked
    "real-backdrop": {"randomize": True, "real_backdrop": True},
    "real-backdrop-bump": {"randomize": True, "real_backdrop": True, "bump_px": 2.0},
    # strong barrel lenses, as wide modes record (at the simulator's fx = 0.8 width a frame's corner comes in
    # by 16 / 15 %), every other convention drawn
    "strong-lenses": {"randomize": True, "distortion_blur": (-0.3, 0.1), "distortion_sharp": (-0.27, 0.08)},
    # a sharp camera recording fewer pixels than the blur one (2.7K blur + 1080p sharp: 0.71 the width),
    # every convention drawn, lenses too (sharp_scale: of --size, rounded to even pixels)
    "randomized-sharp-smaller": {"randomize": True, "sharp_scale": 1920 / 2704},
    # a GoPro in its NTSC mode: 29.97 / 119.88 fps (30000/1001, 120000/1001), every convention drawn
    "randomized-ntsc": {"randomize": True, "blur_fps": 30000 / 1001, "sharp_fps": 120000 / 1001},
    # the faster pair a HERO8 offers at 1080p: 59.94 / 239.76 fps (exposures and readouts capped at their periods)
    "randomized-ntsc60": {
        "randomize": True,
        "blur_fps": 60000 / 1001,
        "sharp_fps": 240000 / 1001,
        "blur_exposure_s": 1 / 60,  # only validated: the take's own are drawn
    },
    # light fall-off that differs between the views: vignetting of 20 / 10 % at the corners and a beam splitter
    # whose split ratio changes by +/-4 % across the frame (opposite in the two views), every convention drawn
    "falloff": {"randomize": True, "vignetting": (0.20, 0.10), "splitter_gradient": 0.04},
    # an operator walking with the rig: the whole view pans, turns and zooms by up to 3.6-5.8 px a sharp frame
    # (the default rig sways by under 0.7), every convention drawn; and with a short exposure stamped at its start
    "moving-rig": {"randomize": True, "rig_motion": 8.0},
    "moving-rig-12ms": {"rig_motion": 8.0, "blur_exposure_s": 0.012, "blur_anchor": "start"},
    # mains light pulsing at 120 Hz, 30 % deep: the sharp camera's short exposure samples the pulse, and its
    # rolling shutter (the drawn readouts) draws bands that move down its frames; every convention drawn
    "flicker": {"randomize": True, "flicker_hz": 120.0, "flicker_depth": 0.3},
    # the same under fixed readouts (8 ms sharp, 12 ms blur: about one cycle down a frame), stamped at the start
    "flicker-bands": {
        "flicker_hz": 120.0,
        "flicker_depth": 0.3,
        "sharp_readout_s": 0.008,
        "blur_readout_s": 0.012,
        "blur_anchor": "start",
    },
    # 50 Hz mains: the light pulses at 100 Hz, a multiple of the sharp camera's 100 fps, so its rolling shutter (the
    # drawn readout) draws bands that stand still on every frame, which only the blurry frames show; every
    # convention drawn
    "flicker-100": {"randomize": True, "flicker_hz": 100.0, "flicker_depth": 0.3},
    # a rig whose sharp camera's centre of projection sits 5 mm beside the blur camera's (none is exactly nodal):
    # a face or hand at 0.6 m and the calibration board at 1 m shift by 1.07 px against each other between the
    # views, a street's objects (4 m) by 0.27 px against its backdrop (12 m); every convention but lenses drawn
    "parallax-5mm": {"randomize": True, "randomize_lens": False, "centre_offset_mm": (5.0, 0.0)},
}
DEFAULT_SETTINGS = ",".join(SETTINGS)  # every convention: the per-option table of the issue 13 note
TIE = 0.1  # steps: a true start this close to k + 0.5 is a tie between k and k + 1
TARGETS = {"offset_ms": 2.5, "corner_px": 0.5, "at_exact": 0.95, "accepted": 0.70, "colour": 0.03}


def colour_error(M, C, sharp: np.ndarray) -> float:
    """Mean over the frame's pixels of the max-channel difference of two 3x4 colour maps (as tests/test_build)."""
    X = np.hstack([sharp.reshape(-1, 3), np.ones((sharp.size // 3, 1))])
    return float(
        np.abs(X @ np.asarray(M, np.float64).reshape(3, 4).T - X @ np.asarray(C, np.float64).T).max(axis=1).mean()
    )


def _rb2v(args: list[str], log: Path) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "rb2v", *args], capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return False, lines[-1] if lines else f"exit {proc.returncode}"
    return True, ""


def measure_take(raw: Path, out: Path, category: str) -> dict:
    """Errors of one aligned and built take against its truth.json."""
    from ..align.flicker import MIN_STILL_PTP
    from ..alignment import read_alignment
    from ..io.images import read_image
    from ..simulate.session import UPSAMPLE, WINDOW
    from .align import corner_errors

    truth_path = next(raw.glob(f"{category}/*/*/truth.json"))
    truth = json.loads(truth_path.read_text())
    key = truth_path.parent.relative_to(raw).as_posix()
    meta = read_alignment(out / "aligned" / key)
    corners = corner_errors(meta, truth)
    # what the samples depend on: where each blurry exposure's middle row falls on the sharp clock
    # (offset and exposure together; audio sync with unequal sound latencies moves the two apart)
    ks = [k for k in range(truth["blur_frames"]) if truth["sharp_start"][k] is not None]
    content = [meta.predicted_start(k, UPSAMPLE, WINDOW) - truth["sharp_start_exact"][k] for k in ks]
    res = {
        "offset_ms": 1000 * (meta.time_offset_s - truth["time_offset_s"]),
        "content_ms": 1000 * float(np.mean(content)) / (UPSAMPLE * truth["sharp_fps"]) if ks else float("nan"),
        "corner_mean_px": float(corners.mean()),
        "corner_max_px": float(corners.max()),
        "exposure_est": None if meta.exposure is None else {c: e.to_json() for c, e in meta.exposure.items()},
        "exposure_true": truth.get("exposure"),
        "blur_frames": truth["blur_frames"],
    }
    dataset = out / "datasets" / category
    info = json.loads((dataset / "build.json").read_text())
    take = info["takes"][0]
    df = pd.read_parquet(dataset / "manifest.parquet")
    df = df[df["take"] == key]
    starts = np.array(
        [truth["sharp_start"][k] if truth["sharp_start"][k] is not None else -999 for k in df["blur_index"]]
    )
    steps = df["sharp_start"].to_numpy() - starts
    exact = np.array([truth["sharp_start_exact"][k] for k in df["blur_index"]], np.float64)
    dist = np.abs(df["sharp_start"].to_numpy() - exact)  # in upsampled steps, to the true (fractional) start
    # bands standing still on the sharp frames exist where the light pulses at a multiple of the sharp frame rate
    # under a rolling shutter; align's finding (sharp_light_still_ptp over MIN_STILL_PTP) should match
    sim = truth.get("sim_config", {})
    cycles = float(sim.get("flicker_hz", 0.0)) / float(truth["sharp_fps"])
    readout = float((truth.get("exposure") or {}).get("sharp", {}).get("readout_s", 0.0))
    still = meta.extra.get("sharp_light_still_ptp")
    res["still_ptp"] = still
    whole = cycles > 0.5 and abs(cycles - round(cycles)) < 1e-6
    res["still_expected"] = bool(sim.get("flicker_depth") and readout > 0 and whole)
    res["still_found"] = still is not None and still >= MIN_STILL_PTP
    per_frame = truth.get("color_matrix_per_frame")
    errors = []
    for r in df.itertuples():
        C = per_frame[r.blur_index] if per_frame else truth["color_matrix"]
        sharp = read_image(out / "aligned" / key / "sharp" / f"{r.sharp_start // 2:06d}.png")
        errors.append(colour_error(r.color_matrix, C, sharp))
    considered = take["accepted"] + take["rejected"]
    res.update(
        {
            "accepted": int(take["accepted"]),
            "considered": int(considered),
            "accepted_frac": take["accepted"] / considered if considered else 0.0,
            "accepted_of_all": take["accepted"] / truth["blur_frames"],
            "at_exact_strict": float(np.mean(steps == 0)) if len(steps) else 0.0,
            "at_exact": float(np.mean((steps == 0) | ((np.abs(exact % 1 - 0.5) < TIE) & (dist < 0.5 + TIE))))
            if len(steps)
            else 0.0,
            # the true start is fractional: when it sits near k + 0.5, k and k + 1 are equally right
            "within_1": float(np.mean(dist < 1)) if len(dist) else 0.0,
            "mean_abs_steps": float(dist.mean()) if len(dist) else float("nan"),
            "exact_fraction": float(np.median(exact % 1)) if len(exact) else float("nan"),
            "step_errors": {int(s): int(n) for s, n in zip(*np.unique(steps, return_counts=True))},
            "colour_median": float(np.median(errors)) if errors else float("nan"),
            "colour_max": float(np.max(errors)) if errors else float("nan"),
            "reject_reasons": take.get("reasons", {}),
        }
    )
    return res


def run_one(work: Path, name: str, seed: int, args: dict) -> dict:
    from ..simulate import SimConfig, simulate_session

    raw, out = work / name / f"seed{seed}" / "raw", work / name / f"seed{seed}" / "out"
    setting = dict(SETTINGS[name])
    scale = setting.pop("sharp_scale", None)
    if setting.pop("real_backdrop", False):
        setting["source"] = args["backdrop"]
    if scale:
        setting["sharp_size"] = tuple(2 * round(scale * v / 2) for v in (args["width"], args["height"]))
    cfg = SimConfig(
        category=args["category"],
        seconds=args["seconds"],
        seed=seed,
        width=args["width"],
        height=args["height"],
        **setting,
    )
    if args.get("measure_only"):
        res: dict = {"setting": name, "seed": seed}
        try:
            res.update(measure_take(raw, out, args["category"]))
        except Exception as e:
            res["error"] = f"measure: {type(e).__name__}: {e}"
        return res
    t0 = time.perf_counter()
    simulate_session(raw, cfg, progress=False)
    t_sim = time.perf_counter() - t0
    res = {"setting": name, "seed": seed, "simulate_s": t_sim}
    if not (out / "takes.parquet").exists():
        t0 = time.perf_counter()
        ok, err = _rb2v(["align", str(raw), str(out)], out.parent / "align.log")
        res["align_s"] = time.perf_counter() - t0
        if not ok:
            return {**res, "error": f"align: {err}"}
    build_args = ["build", "--category", args["category"], "--out", str(out), "--no-report"]
    if args["interpolator"]:
        build_args += ["--interpolator", args["interpolator"]]
    t0 = time.perf_counter()
    ok, err = _rb2v(build_args, out.parent / "build.log")
    res["build_s"] = time.perf_counter() - t0
    if not ok:
        return {**res, "error": f"build: {err}"}
    try:
        res.update(measure_take(raw, out, args["category"]))
    except Exception as e:  # a missing output is a result of the run, reported as such
        res["error"] = f"measure: {type(e).__name__}: {e}"
    return res


def _fmt_row(name: str, rs: list[dict]) -> str:
    ok = [r for r in rs if "error" not in r]
    if not ok:
        return f"{name:<18}{len(rs):>3}  failed: {rs[0]['error']}"
    off = max(abs(r["offset_ms"]) for r in ok)
    cm = np.mean([r["corner_mean_px"] for r in ok])
    cx = max(r["corner_max_px"] for r in ok)
    ex = min(r["at_exact"] for r in ok)
    strict = min(r.get("at_exact_strict", r["at_exact"]) for r in ok)
    near = min(r.get("within_1", float("nan")) for r in ok)
    dist = max(r.get("mean_abs_steps", float("nan")) for r in ok)
    frac = ",".join(f"{r.get('exact_fraction', float('nan')):.2f}" for r in ok)
    acc = min(r["accepted_frac"] for r in ok)
    acc_all = min(r["accepted_of_all"] for r in ok)
    col = float(np.nanmax([r["colour_median"] for r in ok]))
    stills = [r.get("still_ptp") for r in ok if r.get("still_ptp") is not None]
    still = f"{min(stills):.2f}-{max(stills):.2f}" if stills else "-"
    steps: dict[int, int] = {}
    for r in ok:
        for s, n in r["step_errors"].items():
            steps[int(s)] = steps.get(int(s), 0) + n
    step_txt = " ".join(f"{s:+d}:{n}" for s, n in sorted(steps.items()))
    flags = "".join(
        "*" if bad else "."
        for bad in (
            off > TARGETS["offset_ms"],
            cx > TARGETS["corner_px"],
            ex < TARGETS["at_exact"],
            acc < TARGETS["accepted"],
            col > TARGETS["colour"],
            any(r.get("still_found", False) != r.get("still_expected", False) for r in ok),
        )
    )
    failed = f"  ({len(rs) - len(ok)} failed)" if len(ok) < len(rs) else ""
    return (
        f"{name:<18}{len(ok):>3}{off:>9.3f}{cm:>8.3f}{cx:>8.3f}{100 * ex:>8.1f}{100 * strict:>8.1f}"
        f"{100 * near:>7.1f}{dist:>7.2f}"
        f"{100 * acc:>7.1f}{100 * acc_all:>8.1f}{col:>9.4f}{still:>11}  {flags}  frac {frac} steps {step_txt}{failed}"
    )


@click.command("rig-unknowns")
@click.option("--seeds", default="301", show_default=True, help="Comma-separated simulator seeds (one take each).")
@click.option(
    "--settings",
    "names",
    default=DEFAULT_SETTINGS,
    show_default=True,
    help=f"Comma-separated settings: {', '.join(SETTINGS)}.",
)
@click.option("--category", type=click.Choice(["street", "face", "hand"]), default="street", show_default=True)
@click.option("--seconds", type=float, default=2.0, show_default=True, help="Length of each simulated take.")
@click.option("--size", default="640x544", show_default=True, help="Frame size (WxH).")
@click.option(
    "--interpolator", type=click.Choice(["flow", "linear", "cdfi"]), default=None, help="Build's (default: pipeline's)."
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for takes and outputs (kept; finished takes are reused, align/build re-run when missing).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--measure-only", is_flag=True, help="Only measure the outputs already under --work (no runs).")
def main(seeds, names, category, seconds, size, interpolator, work, json_path, measure_only):
    """Offset, corner, start, acceptance and colour errors per camera convention, end to end."""
    from ..errors import Rb2vError
    from . import street_frames

    seeds = int_list(seeds, "--seeds")
    every = names == DEFAULT_SETTINGS
    names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise click.ClickException(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    backdrop = None
    if any(SETTINGS[n].get("real_backdrop") for n in names):
        try:  # found before the first take is simulated, not after an hour of them
            backdrop = str(street_frames()[0].parent)
        except Rb2vError as e:
            if not every:
                raise
            names = [n for n in names if not SETTINGS[n].get("real_backdrop")]
            click.echo(f"note: the real-backdrop settings are left out: {e}", err=True)
    w, h = frame_size(size)
    args = {
        "category": category,
        "seconds": seconds,
        "width": w,
        "height": h,
        "interpolator": interpolator,
        "measure_only": measure_only,
        "backdrop": backdrop,
    }
    results: dict[str, list[dict]] = {}
    t_all = time.perf_counter()
    for name in names:
        for seed in seeds:
            r = run_one(work, name, seed, args)
            results.setdefault(name, []).append(r)
            click.echo(
                f"  {name} seed {seed}: "
                + (
                    r["error"]
                    if "error" in r
                    else f"offset {r['offset_ms']:+.3f} ms (exposure on the sharp clock {r['content_ms']:+.3f} ms), "
                    f"corners {r['corner_max_px']:.3f} px, "
                    f"exact {100 * r['at_exact']:.1f} %, accepted {r['accepted']}/{r['considered']}, "
                    f"colour {r['colour_median']:.4f}"
                ),
                err=True,
            )
    click.echo(
        f"\nrig unknowns: {category}, {len(seeds)} seed(s) {','.join(map(str, seeds))}, {seconds:g} s takes {size}, "
        f"build interpolator {interpolator or 'pipeline default'}; worst of seeds; {time.perf_counter() - t_all:.0f} s"
    )
    click.echo(
        f"{'setting':<18}{'n':>3}{'|off|ms':>9}{'corner':>8}{'cornmax':>8}{'exact%':>8}{'strict%':>8}{'<1st%':>7}{'|dp|':>7}"
        f"{'acc%':>7}{'acc/all':>8}{'colour':>9}{'still':>11}  flags (off,corner,exact,acc,colour,bands; * misses)"
    )
    for name in names:
        click.echo(_fmt_row(name, results[name]))
    click.echo(
        f"targets: offset <= {TARGETS['offset_ms']} ms, corner <= {TARGETS['corner_px']} px, exact >= 95 %, "
        f"accepted >= 70 %, colour <= {TARGETS['colour']}; still: the sharp light's bands standing still "
        "(sharp_light_still_ptp), bands '*' where align's finding (>= 0.2) differs from the truth's"
    )
    if json_path:
        json_path.write_text(json.dumps(results, indent=1, default=str))
