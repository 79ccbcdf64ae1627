"""rb2v build / synth-reds / validate on simulated sessions with known truth."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hypercut_models.evaluate import write_labels
from rb2v.dataset.build import build_dataset
from rb2v.dataset.reds import synth_reds_dataset
from rb2v.dataset.settings import load_pipeline
from rb2v.errors import PartialFailure, Rb2vError
from rb2v.executor import ExecutorSettings
from rb2v.io.images import read_image, write_image
from rb2v.manifest import ORDER_KEY, manifest_metadata, read_manifest, validate_manifest
from rb2v.matting import ChromaKeyer
from rb2v.matting.backgrounds import enlargement

FAST = {"upsample.interpolator": "linear", "sampling.stride": 2}


def rb2v(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rb2v", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def colour_error(M, C, sharp: np.ndarray) -> tuple[float, float]:
    """Mean and 99th percentile of the max-channel difference of two 3x4 colour maps over a frame's own colours."""
    X = np.hstack([sharp.reshape(-1, 3), np.ones((sharp.size // 3, 1))])
    e = np.abs(X @ np.asarray(M).reshape(3, 4).T - X @ np.asarray(C).T).max(axis=1)
    return float(e.mean()), float(np.percentile(e, 99))


@pytest.fixture(scope="module")
def street(oracle_session, tmp_path_factory):
    raw, out = oracle_session
    work = tmp_path_factory.mktemp("street")
    shutil.copytree(out / "aligned", work / "aligned")
    dataset = build_dataset(work, load_pipeline("street", FAST))
    return raw, work, dataset


def test_samples_sit_where_the_truth_says(street):
    raw, work, dataset = street
    df = read_manifest(dataset / "manifest.parquet")
    assert len(df) >= 20
    hits, errors = 0, []
    for r in df.itertuples():
        truth = json.loads((raw / r.take / "truth.json").read_text())
        hits += r.sharp_start == truth["sharp_start"][r.blur_index]
        sharp = read_image(work / "aligned" / r.take / "sharp" / f"{r.sharp_start // 2:06d}.png")
        errors.append(colour_error(r.color_matrix, truth["color_matrix"], sharp))
    assert hits / len(df) >= 0.95, (hits, len(df))
    mean_err, p99_err = np.array(errors).T
    # identity would be off by 0.07-0.1 on average; the fit also absorbs the sRGB-vs-linear
    # averaging of real blur, hence not zero
    assert mean_err.max() < 0.015 and p99_err.max() < 0.05, (mean_err.max(), p99_err.max())
    assert df["psnr"].min() >= 28 and (df["upsample_factor"] == 2).all()


def test_a_short_shutter_is_scored_with_its_exposure(tmp_path):
    """A blur camera at 1/100 s (a quarter of its frame period), timestamps at the exposure start:
    with the exposure in alignment.json, Algorithm 1 synthesises a 10 ms box, not the paper's 30 ms
    window: the samples are accepted at the true start and fit better than without it."""
    import dataclasses

    from rb2v.alignment import read_alignment, write_alignment
    from rb2v.simulate import SimConfig, simulate_session
    from rb2v.simulate.oracle import write_oracle_alignment

    raw = tmp_path / "raw"
    cfg = SimConfig(
        seconds=1.0,
        seed=77,
        width=512,
        height=480,
        audio=False,
        blur_exposure_s=0.01,
        blur_anchor="start",
        motion_scale=2.5,
    )
    take = next(t for t in simulate_session(raw, cfg, progress=False) if t.parent.name != "calibration")
    truth = json.loads((take / "truth.json").read_text())
    rel = take.relative_to(raw)
    results = {}
    for name in ("with exposure", "without"):
        work = tmp_path / name
        aligned = write_oracle_alignment(take, work / "aligned" / rel, crop_size=(384, 384))
        if name == "without":  # a /1-style file: the exposure unknown
            write_alignment(aligned, dataclasses.replace(read_alignment(aligned), exposure=None))
        dataset = build_dataset(work, load_pipeline("street", FAST), report=False)
        if name == "without":  # a centred exposure assumed, not estimated: its clock is not held against samples
            assert not pd.read_parquet(dataset / "rejects.parquet")["reason"].str.contains("off_clock").any()
        info = json.loads((dataset / "build.json").read_text())["takes"][0]
        df = read_manifest(dataset / "manifest.parquet")
        exact = [r.sharp_start == truth["sharp_start"][r.blur_index] for r in df.itertuples()]
        psnr = float(df["psnr"].median()) if len(df) else 0.0
        results[name] = (
            info["accepted"],
            info["accepted"] + info["rejected"],
            float(np.mean(exact)) if exact else 0,
            psnr,
        )
    (acc, n, exact, psnr), (_, _, _, psnr_without) = results["with exposure"], results["without"]
    assert acc >= 0.9 * n and exact >= 0.95, results
    # measured 34.5 vs 31.5 dB: the 30 ms average fits a 10 ms exposure worse (seed 302 of the
    # rig-unknowns bench, with its codec and drift, lost half its samples to that)
    assert psnr >= psnr_without + 2.0, results


def test_a_rig_knocked_mid_take_loses_the_later_samples_not_the_earlier(tmp_path, capsys):
    """Halfway through the take the sharp camera turns and shifts (corners up to 1.5 px): the take's one
    homography is right before and wrong after. The samples after are rejected as misregistered, the
    ones before kept. (Measured: without the check, ``qc.max_shift_px = inf``, all 13 were kept.)"""
    from rb2v.simulate import SimConfig, simulate_session
    from rb2v.simulate.oracle import write_oracle_alignment

    raw = tmp_path / "raw"
    cfg = SimConfig(seconds=1.0, seed=78, width=512, height=480, audio=False, bump_px=1.5)
    take = next(t for t in simulate_session(raw, cfg, progress=False) if t.parent.name != "calibration")
    truth = json.loads((take / "truth.json").read_text())
    write_oracle_alignment(take, tmp_path / "aligned" / take.relative_to(raw), crop_size=(384, 384))
    dataset = build_dataset(tmp_path, load_pipeline("street", FAST))
    kept = read_manifest(dataset / "manifest.parquet")
    rejects = pd.read_parquet(dataset / "rejects.parquet")
    knock = truth["bump"]["at_s"] * truth["blur_fps"]  # in blurry frames
    # the blurry frame's exposure (centred, 19/600 s) wholly before or after the knock
    half = truth["blur_exposure_s"] / 2 * truth["blur_fps"]
    before, after = kept["blur_index"] + half < knock, kept["blur_index"] - half > knock
    assert before.sum() >= 5 and not after.any(), (kept["blur_index"].tolist(), rejects.to_dict("records"))
    late = rejects[rejects["blur_index"] - half > knock]
    assert len(late) >= 5 and late["reason"].str.contains("misregistered").all(), rejects.to_dict("records")
    assert not rejects[rejects["blur_index"] + half < knock]["reason"].str.contains("misregistered").any()
    said = capsys.readouterr()
    assert f"misregistered: {len(late)} blurry frames" in said.out + said.err
    # uncorrected lens distortion misregisters every frame of a take alike (an outside check's take without a
    # calibration take: the hint named a knocked rig only)
    assert "its lenses distort and no calibration take undistorted them" in said.out + said.err
    assert "a shift in time" not in said.out + said.err  # a knocked view is no exposure change
    # the report shows it: the reason's row, the take's alignment, and each frame's outcome along the take
    page = (dataset / "report.html").read_text()
    misregistered = int(rejects["reason"].str.contains("misregistered").sum())
    assert f"<td>misregistered</td><td class=n>{misregistered}</td>" in page
    assert "sit off their sharp frames" in page and "the take&#x27;s own" in page
    assert "<td>search</td>" in page and "<td>registration</td>" in page  # where the time went
    timeline = next(img for at, img in _page_images(page).items() if at > page.index("Along each take"))
    accepted, rejected = (int(_pixel_mask(timeline, c).sum()) for c in ((31, 119, 180), (214, 39, 40)))
    assert accepted > 50 and rejected > 50, (accepted, rejected)
    shot = _screenshot(dataset / "report.html", tmp_path / "report.png")
    if shot is not None:  # as a person sees it: the browser draws the timeline's dots (nothing else is red)
        drawn = int(_pixel_mask(shot, (214, 39, 40)).sum())
        assert drawn >= 0.5 * rejected, (drawn, rejected)
    _assert_contact_sheet_shows_the_stored_frames(page, dataset, kept)

    # Judged on the whole frame, with a laxer threshold, over every blurry frame, the per-frame check lets some
    # frames after the knock through (measured: 1 of 12 at 0.8 px; 0 at 0.6 and 0.7 px, where the half-size
    # linear-light refinement used before 2026-12-04 let 1 through); the take's verdict does not: from where
    # most frames are rejected for their geometry on, it rejects the rest "moved" and removes their folders.
    lax = {**FAST, "sampling.stride": 1, "qc.shift_grid": 1, "qc.max_shift_px": 0.8}
    dataset = build_dataset(tmp_path, load_pipeline("street", {**lax, "qc.move_min_frames": 0}), report=False)
    through = read_manifest(dataset / "manifest.parquet").query("blur_index - @half > @knock")
    assert len(through) >= 1, "the per-frame check alone caught every frame: this no longer tests the take's verdict"
    capsys.readouterr()
    dataset = build_dataset(tmp_path, load_pipeline("street", lax), report=False)
    kept = read_manifest(dataset / "manifest.parquet")
    rejects = pd.read_parquet(dataset / "rejects.parquet")
    moved = rejects[rejects["reason"] == "moved"]
    assert set(through["blur_index"]) <= set(moved["blur_index"]), (through["blur_index"], moved)
    assert not (kept["blur_index"] - half > knock).any() and (moved["blur_index"] + half > knock).all()
    assert (kept["blur_index"] + half < knock).sum() >= 12, kept["blur_index"].tolist()  # every one before kept
    assert not any((dataset / Path(p).parent).exists() for p in through["blur_path"])
    summary = json.loads((dataset / "build.json").read_text())["takes"][0]
    assert summary["reasons"]["moved"] == len(moved) and summary["accepted"] == len(kept)
    said = capsys.readouterr()
    assert f"moved: {len(moved)} blurry frames" in said.out + said.err

    # align's own evidence (what it writes where the matches of frames it compared sit apart from the others'):
    # from the first frame apart on, where every later one compared is apart too, no frame is searched ("knocked")
    aligned = tmp_path / "aligned" / take.relative_to(raw)
    meta = json.loads((aligned / "alignment.json").read_text())
    first = int(np.ceil(knock + half))
    meta.update(
        frames_checked=[0, 4, first, first + 2, first + 4], frames_apart_px={str(first + 2): 1.1, str(first + 4): 1.2}
    )
    (aligned / "alignment.json").write_text(json.dumps(meta))
    dataset = build_dataset(tmp_path, load_pipeline("street", lax), report=False)
    kept = read_manifest(dataset / "manifest.parquet")
    rejects = pd.read_parquet(dataset / "rejects.parquet")
    knocked = rejects[rejects["reason"] == "knocked"]
    later = rejects[rejects["blur_index"] > first]  # from the frame after the last one compared in line
    assert len(later) == truth["blur_frames"] - first - 1 and len(knocked) >= 5, later.to_dict("records")
    assert later["reason"].isin(["knocked", "out_of_range"]).all() and (knocked["blur_index"] > first).all()
    assert (kept["blur_index"] <= first).all() and (kept["blur_index"] + half < knock).sum() >= 12
    said = capsys.readouterr()
    assert f"knocked: {len(knocked)} blurry frames" in said.out + said.err


def test_an_exposure_changed_mid_take_is_told_from_a_knocked_view(tmp_path, capsys):
    """The blur camera's shutter goes from 36 to 18 ms at frame 15 (stamped at the exposure's start: the centre
    moves 9 ms, 1.8 steps of x): spliced from two simulations of one scene. Align fits one exposure per take, so
    the later frames are rejected off_clock; the summary said only "a knocked rig, or its clock is wrong" (an
    independent simulator's take lost half its frames so). It now names the constant shift in time."""
    from rb2v.simulate import SimConfig, simulate_session
    from rb2v.simulate.oracle import write_oracle_alignment

    aligned = {}
    for name, length in (("long", 0.036), ("short", 0.018)):
        cfg = SimConfig(
            seconds=1.2, seed=78, width=512, height=480, audio=False, blur_exposure_s=length, blur_anchor="start"
        )
        take = next(t for t in simulate_session(tmp_path / name, cfg, progress=False) if t.parent.name != "calibration")
        aligned[name] = write_oracle_alignment(
            take, tmp_path / name / "work" / "aligned" / take.relative_to(tmp_path / name), crop_size=(384, 384)
        )
    frames = sorted((aligned["long"] / "blur").glob("*.png"))
    for f in frames[15:]:
        shutil.copy(aligned["short"] / "blur" / f.name, f)
    dataset = build_dataset(tmp_path / "long" / "work", load_pipeline("street", {**FAST, "sampling.stride": 1}))
    kept = read_manifest(dataset / "manifest.parquet")
    rejects = pd.read_parquet(dataset / "rejects.parquet")
    assert sorted(kept["blur_index"]) == list(range(15)), rejects.to_dict("records")
    assert (rejects["reason"] == "off_clock").all() and sorted(rejects["blur_index"]) == list(range(15, len(frames)))
    assert np.allclose(rejects["clock_steps"], 1.8, atol=0.3), rejects["clock_steps"].tolist()
    said = capsys.readouterr().err
    take = kept["take"].iloc[0]
    assert (
        f"{take}: its {len(frames) - 15} off_clock blurry frames (15 to {len(frames) - 1}) all match sharp frames "
        "2.0 steps before where its clock puts them, the same for each: a shift in time, not in place (a knocked "
        "view's shift varies with the motion's speed): as when the blur camera's exposure changes during a take"
    ) in said, said

    # every frame at the short exposure: nothing kept before them, so the take's clock is what is off
    for f in frames[:15]:
        shutil.copy(aligned["short"] / "blur" / f.name, f)
    shutil.rmtree(tmp_path / "long" / "work" / "datasets")  # a take's built units are keyed by its alignment
    with pytest.raises(Rb2vError, match="no sample passed QC") as failed:
        build_dataset(tmp_path / "long" / "work", load_pipeline("street", {**FAST, "sampling.stride": 1}))
    said = str(failed.value)
    assert f"{take}: its {len(frames)} off_clock blurry frames (0 to {len(frames) - 1})" in said, said
    assert "its alignment's clock is off by that much" in said and "exposure changes during" not in said


def test_a_start_at_the_recordings_end_is_kept_where_the_clock_puts_it_there():
    """``stage._qc``: a start at an edge of the searched range is rejected edge_of_range (the truth may lie
    beyond), but the sharp recording's first and last starts have nothing beyond them: there the start is
    kept when the estimated clock puts it within half a step (an independent simulator's take lost its
    blurry frame 0, at its true start 0, so). An unknown exposure, or a clock that points beyond, still rejects."""
    from rb2v.dataset.stage import _qc

    settings = load_pipeline("street", FAST)
    fit = SimpleNamespace(psnr=40.0, margin=5.0)

    def reasons(p, lo, hi, clock_steps, last_start=100):
        return _qc(settings, fit, p, lo, hi, 0.05, 0.0, clock_steps, last_start)

    assert reasons(0, 0, 4, -0.37) == []  # the recording's first start, where the clock puts it
    assert reasons(100, 96, 100, 0.4) == []  # its last
    assert reasons(0, 0, 4, None) == ["edge_of_range"]  # no estimated exposure: no clock to ask
    assert reasons(0, 0, 4, 0.9) == ["edge_of_range"]  # the clock puts it a step further on: the truth may be before
    assert reasons(0, 0, 4, -1.4) == ["edge_of_range", "off_clock"]
    assert reasons(10, 10, 18, 0.2) == ["edge_of_range"]  # the search radius's edge: something lies beyond
    assert reasons(14, 10, 18, 0.2) == []


def test_a_lone_sample_a_little_off_is_kept_and_a_run_of_them_is_a_move(tmp_path):
    """A sample measured over ``qc.max_shift_px`` but under ``qc.lone_shift_factor`` times it is not rejected
    alone: on fast content that is the check's own error (an outside check's waving hands lost 8 of 234 samples
    at their true starts, 5 of them at 0.35-0.38 px). It is still evidence of a move: a take whose later samples
    mostly sit that far off moved (``moved``), and the far-off ones are rejected misregistered alone as before."""
    from rb2v.dataset.build import reject_moved
    from rb2v.dataset.records import TakeSummary
    from rb2v.dataset.stage import _qc

    settings = load_pipeline("hand", FAST)
    qc = settings.qc
    assert (qc.max_shift_px, qc.lone_shift_factor) == (0.35, 2.0)
    fit = SimpleNamespace(psnr=40.0, margin=5.0)
    assert _qc(settings, fit, 14, 10, 18, 0.05, 0.5, 0.1, 100) == []  # rejected misregistered before
    assert _qc(settings, fit, 14, 10, 18, 0.05, 0.75, 0.1, 100) == ["misregistered"]

    def rows(take, shifts):
        return pd.DataFrame(
            {"take": take, "blur_index": range(len(shifts)), "shift_px": shifts, "blur_path": "x/blur.png"}
        )

    lone = rows("a", [0.1] * 8 + [0.5] + [0.1] * 8 + [0.4, 0.1])  # two lone ones: kept
    run = rows("b", [0.1] * 8 + [0.5, 0.6, 0.1, 0.45, 0.5, 0.55, 0.6])  # from frame 8 on, mostly off: a move
    rej = pd.DataFrame(columns=["sample_id", "take", "subject", "blur_index", "reason"])
    summaries = [TakeSummary("a"), TakeSummary("b")]
    kept, rejected = reject_moved(tmp_path, pd.concat([lone, run], ignore_index=True), rej, summaries, 5, 0.35)
    assert kept["take"].value_counts().to_dict() == {"a": 19, "b": 8}
    assert rejected["blur_index"].tolist() == list(range(8, 15)) and (rejected["reason"] == "moved").all()
    assert summaries[1].reasons == {"moved": 7}
    # a unit recorded before the evidence was kept (``load_results`` gives it shift_px NaN): judged on its rejections
    kept, _ = reject_moved(tmp_path, run.assign(shift_px=np.nan), rej, [TakeSummary("b")], 5, 0.35)
    assert len(kept) == len(run)


def test_a_take_moves_where_most_later_frames_fail_their_geometry():
    """The take's verdict (``stage.moved_from``): True a geometry rejection, False kept, None rejected otherwise."""
    from rb2v.dataset.stage import moved_from

    x, o, n = True, False, None
    knocked = [o] * 12 + [x, x, o, x, x, n, x, x, o, x]
    assert moved_from(knocked, 5) == 12  # the kept frame right after the knock goes too
    assert moved_from(knocked, 0) is None and moved_from(knocked, 8) is None
    assert moved_from([o] * 12 + [o, o, x, x, x, x, x, o], 5) == 14  # frames kept before the first rejection stay
    assert moved_from([o] * 20 + [x] * 4, 5) is None  # too few to say
    assert moved_from([o, x] * 12, 5) is None  # scattered: half of any tail kept, never most
    assert moved_from([o] * 10 + [x, x, o] * 5, 5) == 10  # two rejections for every frame kept: enough
    assert moved_from([x] * 6 + [o] * 18, 5) is None  # a bad start is no move: what follows is kept
    assert moved_from([n, x, x, o, x, x, x], 5) == 1  # a take off from its start: its clock or homography
    assert moved_from([o] * 10, 5) is None and moved_from([], 5) is None


def test_the_timeline_draws_every_reject_reason_in_its_own_colour():
    """A dataset whose frames were rejected for every reason QC knows (and one it does not) still gets its
    timeline: one colour per known reason (there were 8 colours for 9 reasons once)."""
    from rb2v.dataset.records import REJECT_REASONS
    from rb2v.dataset.report import PALETTE, _timeline

    names = [*REJECT_REASONS, "from_another_version"]
    kept = pd.DataFrame({"take": "t", "blur_index": [0, 1], "psnr": [40.0, 41.0]})
    rejects = pd.DataFrame({"take": "t", "blur_index": range(2, 2 + len(names)), "psnr": 35.0, "reason": names})
    png, shown = _timeline(kept, rejects)
    assert shown == 1 and png.startswith("data:image/png;base64,")
    assert len(PALETTE) >= len(REJECT_REASONS) and len(set(PALETTE)) == len(PALETTE)


def _page_images(page: str) -> dict[int, np.ndarray]:
    """The PNGs embedded in a page (RGB uint8), keyed by where they start in it."""
    import base64
    import re

    import cv2

    found = {}
    for m in re.finditer(r'src="data:image/png;base64,([^"]+)"', page):
        buf = np.frombuffer(base64.b64decode(m.group(1)), np.uint8)
        found[m.start()] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return found


def _assert_contact_sheet_shows_the_stored_frames(page: str, dataset: Path, manifest: pd.DataFrame) -> None:
    """The report's random samples: a row per sample, its blurry frame and 7 sharp frames as stored, area-reduced
    to THUMB_PX wide (within one level), then the error map. (Drawn by matplotlib until 2026-12-07: resampled
    into one figure, no cell its frame.)"""
    import cv2

    from rb2v.dataset.report import THUMB_PX

    sheet = page[page.index("<div class=sheet>") :]
    images = list(_page_images(sheet).values())
    ids = re.findall(r"<div class=id>([^<]+)</div>", sheet)
    assert len(ids) == min(6, len(manifest)) and len(images) == 9 * len(ids), (ids, len(images))
    by_id = {sid.split("-", 1)[-1]: r for sid, r in zip(manifest["sample_id"], manifest.itertuples())}
    for row, sample in enumerate(ids):
        r = by_id[sample]
        for cell, rel in enumerate([r.blur_path, *r.sharp_paths]):
            stored = (read_image(dataset / rel) * 255).round()
            h, w = stored.shape[:2]
            want = cv2.resize(stored, (THUMB_PX, round(h * THUMB_PX / w)), interpolation=cv2.INTER_AREA)
            shown = images[9 * row + cell].astype(np.float32)
            assert shown.shape == want.shape and np.abs(shown - want).max() <= 1.0, (sample, cell)


def _pixel_mask(img: np.ndarray, rgb, tolerance: int = 12) -> np.ndarray:
    return (np.abs(img[..., :3].astype(int) - np.array(rgb)) <= tolerance).all(axis=-1)


def _screenshot(page: Path, out: Path) -> np.ndarray | None:
    """Headless Chromium's screenshot of a page (RGB), or None where no chromium is installed."""
    import cv2

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={out}"]
    subprocess.run([browser, *args, "--window-size=1400,2400", page.as_uri()], capture_output=True, timeout=120)
    return cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)


def test_a_take_whose_clock_is_steps_off_is_reported_not_trusted(oracle_session, tmp_path, capsys):
    """Algorithm 1 finds each exposure where the content is, even 3 steps from where the take's clock puts it;
    beyond qc.max_clock_steps the samples are rejected ``off_clock`` and the summary names the take (the same
    rejection catches a knock along the motion); with the check off they are kept, at the true starts."""
    from rb2v.alignment import read_alignment, write_alignment

    raw, out = oracle_session
    rel, other = Path("street/subject01/take01"), Path("street/subject02/take01")
    truth = json.loads((raw / rel / "truth.json").read_text())
    aligned = tmp_path / "aligned" / rel
    shutil.copytree(out / "aligned" / rel, aligned)
    shutil.copytree(out / "aligned" / other, tmp_path / "aligned" / other)  # its clock right
    meta = read_alignment(aligned)
    late = 3 / (meta.sharp_fps * 2)  # 3 steps of the 2x upsampled sequence
    write_alignment(aligned, dataclasses.replace(meta, time_offset_s=meta.time_offset_s + late))
    dataset = build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    rejects = pd.read_parquet(dataset / "rejects.parquet").query("take == @rel.as_posix()")
    assert len(rejects) >= 10 and rejects["reason"].str.contains("off_clock").all(), rejects.to_dict("records")
    assert set(read_manifest(dataset / "manifest.parquet")["take"]) == {other.as_posix()}
    said = capsys.readouterr()
    assert f"off_clock: {len(rejects)} blurry frames (most in {rel.as_posix()} ({len(rejects)}))" in said.err
    assert f"{rel.as_posix()}: none of its {len(rejects)} blurry frames gave a sample (off_clock" in said.err
    assert f"{other.as_posix()}: none" not in said.err
    shutil.rmtree(tmp_path / "aligned" / other.parts[0] / other.parts[1])  # its part is done: not built again
    dataset = build_dataset(
        tmp_path, load_pipeline("street", {**FAST, "qc.max_clock_steps": float("inf")}), report=False
    )
    kept = read_manifest(dataset / "manifest.parquet").query("take == @rel.as_posix()")
    exact = [r.sharp_start == truth["sharp_start"][r.blur_index] for r in kept.itertuples()]
    assert len(kept) >= len(rejects) - 1 and np.mean(exact) >= 0.9, kept[["blur_index", "sharp_start"]]


def test_manifest_splits_and_validation(street):
    _, _, dataset = street
    df = read_manifest(dataset / "manifest.parquet")
    assert set(df["split"]) == {"train", "test"}
    assert df.groupby("subject")["split"].nunique().max() == 1  # subjects never cross splits
    assert validate_manifest(dataset) == []
    t1 = pd.read_csv(dataset / "table1.csv")
    assert int(t1["train_samples"].iloc[0] + t1["test_samples"].iloc[0]) == len(df)
    assert (dataset / "report.html").stat().st_size > 10_000
    meta = read_manifest(dataset / "manifest.parquet").attrs["metadata"]
    assert meta["schema"] == "rb2v.manifest/1" and len(meta["settings_hash"]) == 16


def test_validate_names_paths_outside_the_dataset_and_impossible_sizes(street, tmp_path):
    """Absolute and ``../`` paths passed while the files existed; a row of another split was also
    called a subject in both train and test; a negative width passed without the file checks."""
    from rb2v.manifest import write_manifest

    _, _, dataset = street
    df = read_manifest(dataset / "manifest.parquet")
    ids = list(df["sample_id"][:3])
    df.loc[0, "blur_path"] = str(dataset / df.loc[0, "blur_path"])  # an existing file, named absolutely
    df.at[1, "sharp_paths"] = ["../street/" + df.loc[1, "sharp_paths"][0], *df.loc[1, "sharp_paths"][1:]]
    df.loc[2, "split"], df.loc[2, "width"] = "validation", -5
    copy = tmp_path / "m.parquet"
    write_manifest(copy, df, df.attrs["metadata"])
    shutil.copytree(dataset / "samples", tmp_path / "samples")
    problems = validate_manifest(copy, check_files=False)
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"{ids[0]}: path {df.loc[0, 'blur_path']} is not relative to the manifest's folder",
        f"{ids[1]}: path {df.loc[1, 'sharp_paths'][0]} is not relative to the manifest's folder",
        f"{ids[2]}: split 'validation' is not train/test",
        f"{ids[2]}: frame size -5x448 is not positive",
    ], problems


def test_validate_names_a_sample_that_is_not_png_data(street, tmp_path):
    """JPEG bytes under a .png name (with a matching sha256) passed: the contract's samples are PNG, lossless."""
    import cv2

    from rb2v.manifest import write_manifest

    _, _, dataset = street
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns(".work", "*.html"))
    df = read_manifest(copy / "manifest.parquet")
    rel = df.loc[0, "blur_path"]
    data = cv2.imencode(".jpg", cv2.imread(str(copy / rel)))[1].tobytes()
    (copy / rel).write_bytes(data)
    df.at[0, "sha256"] = [hashlib.sha256(data).hexdigest(), *df.loc[0, "sha256"][1:]]
    write_manifest(copy / "manifest.parquet", df, df.attrs["metadata"])
    assert [p.split(": ", 1)[1] for p in validate_manifest(copy)] == [
        f"{df.loc[0, 'sample_id']}: {rel} is not PNG data"
    ]


def test_validate_names_column_types_empty_values_and_impossible_indices(street, tmp_path):
    """A manifest written by other tools (int64 columns, a null id, an upsample factor of 5, a negative
    start) was called valid, or the null made validate an internal error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, dataset = street
    table = pq.read_table(dataset / "manifest.parquet")
    ids = table.column("sample_id").to_pylist()
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    columns["upsample_factor"][0], columns["sharp_start"][1], columns["sample_id"][2] = 5, -2, None
    # passed as valid: a NaN psnr, an empty id, and a file two rows name (one sample's frames another's)
    columns["psnr"][3], columns["sample_id"][4] = float("nan"), " "
    shared = columns["blur_path"][5] = columns["blur_path"][6]
    fields = [
        pa.field("blur_index", pa.int64()) if f.name == "blur_index" else f.with_nullable(True) for f in table.schema
    ]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), other)
    problems = validate_manifest(other, check_files=False)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "column blur_index is int64, expected int32",
        "column sample_id is empty in 1 row(s)",
        "an empty sample_id",
        f"file {shared} is listed more than once",
        f"{ids[0]}: upsample_factor 5 is not one of 1, 2, 3",
        f"{ids[1]}: sharp_start -2 or blur_index {columns['blur_index'][1]} is negative",
        f"{ids[3]}: psnr is NaN",
    ], problems
    # values that are not numbers: the rows are not checked, and that is said
    columns["width"] = ["wide"] * len(ids)
    schema = schema.set(schema.get_field_index("width"), pa.field("width", pa.string()))
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), other)
    assert [p.split(": ", 1)[1] for p in validate_manifest(other, check_files=False)] == [
        "column blur_index is int64, expected int32",
        "column width is string, expected int32",
        "rows not checked: their columns do not convert to the contract's types",
    ]


def test_metadata_json_reads_like_the_official_trainer(street):
    """Read metadata.json exactly as VinAIResearch/HyperCUT's Seq7Dataset does."""
    _, work, dataset = street
    dataset_root = dataset.parent  # DATASET_ROOT; the trainer joins DATASET_ROOT / name / path
    meta = json.loads((dataset / "metadata.json").read_text())
    assert meta["frame_per_seq"] == 7 and meta["name"] == dataset.name
    df = read_manifest(dataset / "manifest.parquet").set_index("sample_id")
    for entry in meta["data"]:
        assert entry["partition"] in ("train", "val", "test") and entry["order"] in (
            "keep",
            "reverse",
            "random",
            "ignore",
        )
        frames = [os.path.join(dataset_root, meta["name"], entry[f"frame{t:03d}_path"]) for t in range(1, 8)]
        assert all(os.path.isfile(f) for f in frames)
        assert os.path.isfile(os.path.join(dataset_root, meta["name"], entry["blur_path"]))
        row = df.loc[entry["id"]]
        assert (
            entry["partition"] == row["split"]
            and [entry[f"frame{t:03d}_path"] for t in range(1, 8)] == row["sharp_paths"]
        )
    assert len(meta["data"]) == len(df)


def test_rerun_skips_and_settings_changes_recompute_what_they_affect(street, capsys):
    _, work, dataset = street
    before = read_manifest(dataset / "manifest.parquet")
    build_dataset(work, load_pipeline("street", FAST), report=False)
    assert "(2 already built)" in capsys.readouterr().err
    pd.testing.assert_frame_equal(read_manifest(dataset / "manifest.parquet"), before)
    build_dataset(work, load_pipeline("street", {**FAST, "split.seed": 5, "split.test_fraction": 0.5}), report=False)
    assert "(2 already built)" in capsys.readouterr().err  # the split does not touch the takes
    # nor do the settings of models a street build does not use (--backgrounds rebuilt every unit)
    unused = {"matting.backgrounds": str(work), "matting.device": "cpu", "upsample.cdfi_checkpoint": "x.pth"}
    build_dataset(work, load_pipeline("street", {**FAST, **unused}), report=False)
    assert "(2 already built)" in capsys.readouterr().err
    # a second build of the dataset while one runs is refused at once (the two removed each other's samples)
    from rb2v.fsutil import exclusive

    with (
        exclusive(dataset, "test"),
        pytest.raises(Rb2vError, match=rf"street: rb2v \(pid {os.getpid()}\) is writing it"),
    ):
        build_dataset(work, load_pipeline("street", FAST), report=False)
    pd.testing.assert_frame_equal(read_manifest(dataset / "manifest.parquet"), before)
    # a finished unit whose sample files were deleted is redone (the manifest listed files that were gone)
    gone = dataset / before["sharp_paths"].iloc[0][3]
    gone.unlink()
    build_dataset(work, load_pipeline("street", FAST), report=False)
    assert "1 of its sample file(s) are gone" in capsys.readouterr().err and gone.is_file()
    assert validate_manifest(dataset) == []
    pd.testing.assert_frame_equal(read_manifest(dataset / "manifest.parquet"), before)
    with pytest.raises(Rb2vError, match="no sample passed QC"):
        build_dataset(work, load_pipeline("street", {**FAST, "qc.min_psnr": 99.0}), report=False)
    assert not (dataset / "manifest.parquet").exists()  # its samples were redone: the old record is withdrawn
    # ... and the records beside it are this build's (build.json said the last good build's samples)
    record = json.loads((dataset / "build.json").read_text())
    assert record["samples"] == 0 and record["rejected"] > 0
    assert not (dataset / "metadata.json").exists() and not (dataset / "table1.csv").exists()
    rejects = pd.read_parquet(dataset / ".work" / "subject01__take01__000000.rejects.parquet")
    assert (rejects["reason"].str.contains("low_psnr")).all()
    build_dataset(work, load_pipeline("street", FAST), report=False)  # back: recomputed, same result
    pd.testing.assert_frame_equal(read_manifest(dataset / "manifest.parquet"), before)


def test_report_names_a_damaged_dataset_and_writes_the_others(street, tmp_path):
    """A corrupt build.json or rejects.parquet was an internal error that stopped every report."""
    import subprocess
    import sys

    _, reference, _ = street
    for category in ("street", "hand", "face"):
        shutil.copytree(reference / "datasets" / "street", tmp_path / "datasets" / category)
        (tmp_path / "datasets" / category / "report.html").unlink()
    (tmp_path / "datasets" / "face" / "build.json").write_text("{")
    (tmp_path / "datasets" / "hand" / "rejects.parquet").write_text("x")
    out = subprocess.run([sys.executable, "-m", "rb2v", "report", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "internal error" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("rb2v: error:")]
    assert any("face/build.json: not valid JSON" in e for e in errors), errors
    assert any("hand/rejects.parquet: not a readable parquet table" in e for e in errors), errors
    assert "2 of 3 report(s) not written" in out.stderr
    assert (tmp_path / "datasets" / "street" / "report.html").stat().st_size > 10_000
    assert not (tmp_path / "datasets" / "face" / "report.html").exists()


def test_a_rebuild_keeps_the_order_labels_of_the_same_samples(street, tmp_path, capsys, monkeypatch):
    _, reference, _ = street
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)  # the module's inputs and its built dataset
    dataset = tmp_path / "datasets" / "street"
    ids = read_manifest(dataset / "manifest.parquet")["sample_id"]
    labels = {s: "reverse" if i % 3 == 0 else "ignore" for i, s in enumerate(ids)}
    write_labels(dataset / "manifest.parquet", labels, "test ordering")
    build_dataset(tmp_path, load_pipeline("street", FAST), report=False)  # nothing changed: labels kept
    assert "(2 already built)" in capsys.readouterr().err
    again = read_manifest(dataset / "manifest.parquet")
    assert (
        dict(zip(again["sample_id"], again["order"])) == labels
        and "test ordering" in again.attrs["metadata"][ORDER_KEY]
    )
    exported = json.loads((dataset / "metadata.json").read_text())["data"]
    assert sum(e["order"] == "reverse" for e in exported) == sum(v == "reverse" for v in labels.values()) > 0
    # a build stopped before its end (Ctrl-C, or every take failing) lost the labels for good: they were
    # only in memory once the manifest was withdrawn; metadata.json stayed, listing samples being redone
    import rb2v.dataset.build as build

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(build, "assemble", interrupted)
        with pytest.raises(KeyboardInterrupt):
            build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    assert not (dataset / "manifest.parquet").exists() and not (dataset / "metadata.json").exists()
    build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    resumed = read_manifest(dataset / "manifest.parquet")
    assert dict(zip(resumed["sample_id"], resumed["order"])) == labels and ORDER_KEY in resumed.attrs["metadata"]
    assert not (dataset / ".work" / build.WITHDRAWN_MANIFEST).exists()
    # other samples (another stride): labels made for the old ones are not carried over
    build_dataset(tmp_path, load_pipeline("street", {**FAST, "sampling.stride": 3}), report=False)
    changed = read_manifest(dataset / "manifest.parquet")
    assert (changed["order"] == "ignore").all() and ORDER_KEY not in changed.attrs["metadata"]


def test_killed_build_resumes_to_the_same_manifest(oracle_session, street, tmp_path):
    _, reference, dataset = street
    shutil.copytree(reference / "aligned", tmp_path / "aligned")
    args = [
        sys.executable,
        "-m",
        "rb2v",
        "build",
        "--category",
        "street",
        "--out",
        tmp_path,
        "--interpolator",
        "linear",
        "--stride",
        "2",
        "--no-report",
    ]
    proc = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tmp_path / "datasets" / "street" / ".work"
    deadline = time.time() + 240
    while time.time() < deadline and not list(work.glob("*.done.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(work.glob("*.done.json"))) == 1  # killed after the first take, before the second
    assert not (tmp_path / "datasets" / "street" / "manifest.parquet").exists()
    out = rb2v(*args[3:])
    assert out.returncode == 0, out.stderr
    assert "(1 already built)" in out.stderr
    pd.testing.assert_frame_equal(
        read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet"),
        read_manifest(dataset / "manifest.parquet"),
    )


def test_chunks_are_small_enough_for_every_worker():
    from rb2v.dataset.build import CHUNK_FRAMES, chunk_size

    assert chunk_size(250, ExecutorSettings(1)) == CHUNK_FRAMES  # one worker: no reason to cut more
    assert chunk_size(250, ExecutorSettings(2)) == 32  # a 10 s take on 2 workers: 8 chunks, not 200 + 50
    assert chunk_size(100_000, ExecutorSettings(8)) == CHUNK_FRAMES
    assert chunk_size(40, ExecutorSettings(4)) == 25  # never below the chunk's own start-up cost
    assert chunk_size(250, ExecutorSettings(1, "ray")) == 32  # a cluster: workers unknown here, at least 2


def test_manifest_is_byte_identical_whatever_the_chunks_and_workers(street, tmp_path, capsys):
    # The module's build is inline, one chunk per take; this one is cut into chunks of 2 frames and run
    # on a pool of two processes. Ray's builds (chunks of 4) are compared with the same manifest by the
    # two-node cluster test below, the killed-and-resumed build by its own test.
    _, reference, dataset = street
    shutil.copytree(reference / "aligned", tmp_path / "aligned")
    got = build_dataset(tmp_path, load_pipeline("street", FAST), ExecutorSettings(2), report=False, chunk_frames=2)
    assert (got / "manifest.parquet").read_bytes() == (dataset / "manifest.parquet").read_bytes()
    chunks = len(list((got / ".work").glob("*.done.json")))
    assert chunks > 2  # really cut into chunks (two takes)
    # a re-run counts the chunks it reuses (it said "from 2 unit(s) (0 already built)" after a killed run)
    capsys.readouterr()
    build_dataset(tmp_path, load_pipeline("street", FAST), ExecutorSettings(2), report=False, chunk_frames=2)
    assert f"from {chunks} unit(s) ({chunks} already built)" in capsys.readouterr().err


def test_ray_started_here_keeps_the_order_and_the_failure_rule(tmp_path):
    """`--executor ray` without an address starts Ray on this machine (here, not in tests/test_executor.py:
    the cluster test's `ray stop --force` would end it). Units call rb2v and builtins, which Ray's workers import."""
    pytest.importorskip("ray")
    from rb2v.executor import Unit, run_units

    missing = tmp_path / "missing.png"
    units = [Unit(f"unit{x}", pow, (x, 2)) for x in range(5)]
    units += [Unit("unit5", read_image, (missing,)), Unit("unit6", pow, ("x", 2)), Unit("unit7", pow, (7, 2))]
    out = run_units(units, ExecutorSettings(2, "ray"), report=False)
    assert [o.unit for o in out] == [f"unit{x}" for x in range(8)]
    assert [o.value for o in out if o.ok] == [0, 1, 4, 9, 16, 49]
    assert out[5].error == f"unit5: {missing}: image not found" and out[5].traceback is None
    assert out[6].error.startswith("unit6: internal error: TypeError") and "TypeError" in out[6].traceback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_cluster_of_two_nodes_builds_the_manifest_of_a_local_run(oracle_session, street, tmp_path):
    """`ray start --head` plus a second `ray start --address` node on loopback, then
    `rb2v build --executor ray --ray-address`: the same manifest bytes as the inline build (the module's)."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed next to this Python")
    _, out = oracle_session
    port = _free_port()
    # A clean Ray environment: a ray.init() earlier in this process leaves RAY_* variables, and a
    # ~/.ray/auth_token of another run makes the head demand a token the joining node never sends.
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path / "home"), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", RB2V_PROGRESS="0")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [str(ray_bin), "start", "--head", "--port", str(port), "--include-dashboard", "false", *common]
    worker = [str(ray_bin), "start", "--address", f"127.0.0.1:{port}", *common]
    try:
        for cmd in (head, worker):
            started = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            assert started.returncode == 0, (started.stdout + started.stderr)[-3000:]
        for _ in range(30):  # the second node registers with the head within seconds
            status = subprocess.run(
                [str(ray_bin), "status", "--address", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            active = status.stdout.split("Active:")[-1].split("Pending:")[0]
            if active.count("node_") >= 2:
                break
            time.sleep(2)
        assert active.count("node_") >= 2, status.stdout  # two nodes really joined
        root = tmp_path / "ray"
        shutil.copytree(out / "aligned" / "street", root / "aligned" / "street")
        args = ["build", "--category", "street", "--out", str(root), "--interpolator", "linear", "--stride", "2"]
        args += ["--no-report", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--workers", "2"]
        proc = subprocess.run(
            [sys.executable, "-m", "rb2v", *args, "--chunk-frames", "4"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        inline = street[2] / "manifest.parquet"
        assert (root / "datasets" / "street" / "manifest.parquet").read_bytes() == inline.read_bytes()
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_failed_write_or_a_truncated_frame_costs_its_own_sample_only(street, tmp_path, monkeypatch, capsys, threads):
    """In order (a worker with one core) or with the search and the PNG writes on threads: a write
    that fails, or a blurry frame cut short on disk, makes its sample a reject naming the problem,
    every other sample is as before, and the build says so and exits 1. Repaired, a re-run redoes
    the samples that failed."""
    import rb2v.dataset.stage as stage

    _, reference, dataset = street
    expected = read_manifest(dataset / "manifest.parquet")
    expected = expected[expected["subject"] == "subject01"]  # one take is enough
    victim, cut = expected.iloc[len(expected) // 2], expected.iloc[1]
    write = stage.write_sample_images

    def full_disk(dataset_dir, rels, images, compression):
        if rels[0] == victim.blur_path:
            raise OSError(28, "No space left on device")
        return write(dataset_dir, rels, images, compression)

    monkeypatch.setattr(stage, "write_sample_images", full_disk)
    monkeypatch.setattr(stage, "cpu_threads", lambda: threads)
    shutil.copytree(reference / "aligned" / "street" / "subject01", tmp_path / "aligned" / "street" / "subject01")
    frame = tmp_path / "aligned" / "street" / "subject01" / "take01" / "blur" / f"{cut.blur_index:06d}.png"
    intact = frame.read_bytes()
    frame.write_bytes(intact[:300])
    with pytest.raises(PartialFailure, match=r"2 sample\(s\) of 'street' failed"):
        build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    err = capsys.readouterr().err
    assert f"rb2v: error: {frame}: " in err and "rb2v: error: OSError: [Errno 28] No space left on device" in err
    got = tmp_path / "datasets" / "street"
    if threads == 1:  # the report lists both messages
        from rb2v.dataset.report import write_report

        page = write_report(got).read_text()
        failures = page.split("<h2>Failures</h2>")[1].split("<h2>")[0]
        assert str(frame) in failures and "No space left on device" in failures
    df = read_manifest(got / "manifest.parquet")
    rejects = pd.read_parquet(got / "rejects.parquet").set_index("sample_id")
    assert not {victim.sample_id, cut.sample_id} & set(df["sample_id"])
    assert rejects.loc[victim.sample_id, "reason"] == "stage_failed: OSError: [Errno 28] No space left on device"
    assert (
        rejects.loc[cut.sample_id, "reason"].startswith("stage_failed: ")
        and str(frame) in rejects.loc[cut.sample_id, "reason"]
    )
    others = expected[~expected["sample_id"].isin([victim.sample_id, cut.sample_id])]
    others = others.drop(columns="split").reset_index(drop=True)
    pd.testing.assert_frame_equal(df.drop(columns="split").reset_index(drop=True), others)

    frame.write_bytes(intact)
    monkeypatch.setattr(stage, "write_sample_images", write)
    build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    df = read_manifest(got / "manifest.parquet").drop(columns="split").reset_index(drop=True)
    pd.testing.assert_frame_equal(df, expected.drop(columns="split").reset_index(drop=True))


def test_hand_samples_are_matted_onto_one_background(oracle_session, tmp_path, monkeypatch, capsys):
    import rb2v.dataset.stage as stage

    raw, out = oracle_session
    shutil.copytree(out / "aligned" / "hand", tmp_path / "aligned" / "hand")
    monkeypatch.setattr(stage, "cpu_threads", lambda: 2)  # a sample's frames keyed on two threads at once
    dataset = build_dataset(tmp_path, load_pipeline("hand", {**FAST, "sampling.stride": 5}), report=False)
    df = read_manifest(dataset / "manifest.parquet")
    enlarged = sum(enlargement(r.background, r.width, r.height) > 1 for r in df.itertuples())
    assert f"note: {enlarged} of {len(df)} samples got a background photo enlarged" in capsys.readouterr().err
    # frames keyed on two threads at once are those keyed one after another (a worker with one core)
    frames = [read_image(p) for p in sorted((tmp_path / "aligned" / "hand").glob("*/*/blur/*.png"))[:8]]
    background = np.random.default_rng(0).random(frames[0].shape, dtype=np.float32)
    matted = []
    for threads in (2, 1):
        with stage._Matting(ChromaKeyer(), SimpleNamespace(blur_count=8), frames.__getitem__, threads) as matting:
            assert (matting.pool is not None) == (threads > 1)
            matted.append(matting(frames, background))
    for a, b in zip(*matted, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(df) >= 4 and (df["matting"] == "chroma").all() and df["background"].notna().all()
    assert df["background"].nunique() > 1  # a random background per sample
    for r in df.head(3).itertuples():
        images = [read_image(dataset / p) for p in [r.blur_path, *r.sharp_paths]]
        for img in images:  # the green screen is gone
            green = (img[..., 1] > 0.35) & (img[..., 1] > 1.6 * img[..., 0]) & (img[..., 1] > 1.6 * img[..., 2])
            assert green.mean() < 0.01
        # far from the moving hand, all 8 frames show the same background photo
        static = np.std(np.stack(images), axis=0).max(axis=-1) < 0.02
        assert static.mean() > 0.3
    # a mistyped backgrounds folder is refused before any sample is touched: the dataset stays whole
    missing = tmp_path / "no such folder"
    with pytest.raises(Rb2vError, match=f"{missing}: backgrounds folder not found"):
        build_dataset(
            tmp_path, load_pipeline("hand", {**FAST, "sampling.stride": 5, "matting.backgrounds": str(missing)})
        )
    pd.testing.assert_frame_equal(read_manifest(dataset / "manifest.parquet"), df)
    assert validate_manifest(dataset / "manifest.parquet") == []


def test_bad_inputs_give_clear_errors(street, tmp_path):
    with pytest.raises(Rb2vError, match="no aligned takes for category 'face'"):
        build_dataset(tmp_path, load_pipeline("face", FAST))
    _, reference, _ = street
    shutil.copytree(reference / "aligned", tmp_path / "aligned")
    (tmp_path / "aligned" / "street" / "subject02" / "take01" / "alignment.json").write_text("{not json")
    with pytest.raises(PartialFailure, match="1 take"):
        build_dataset(tmp_path, load_pipeline("street", FAST), report=False)
    assert read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet")["subject"].unique().tolist() == [
        "subject01"
    ]
    failures = json.loads((tmp_path / "datasets" / "street" / "build.json").read_text())["failures"]
    assert [f["unit"] for f in failures] == ["street/subject02/take01"] and "not valid JSON" in failures[0]["error"]
    only_broken = tmp_path / "only-broken"
    shutil.copytree(tmp_path / "aligned" / "street" / "subject02", only_broken / "aligned" / "street" / "subject02")
    with pytest.raises(Rb2vError, match="no sample was built: every take or sequence failed"):
        build_dataset(only_broken, load_pipeline("street", FAST), report=False)
    out = rb2v("build", "--category", "underwater", "--out", tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('category = "street"\n[qc]\nmin_psnr = "high"\n')
    out = rb2v("build", "--category", "street", "--out", tmp_path, "--pipeline", bad)
    assert out.returncode == 2 and "key 'qc.min_psnr' must be a number" in out.stderr and "Traceback" not in out.stderr
    # a device no unit can use is refused once, before any work (each sample failed alike, then "no sample passed")
    built = read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet")
    devices = ["gpu"] + ([] if torch_cuda_available() else ["cuda"])
    for device in devices:
        with pytest.raises(Rb2vError, match=f"device '{device}'"):
            build_dataset(tmp_path, load_pipeline("street", {**FAST, "upsample.device": device}), report=False)
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet"), built)
    # ... and a checkpoint that is not one, on two workers too (each worker failed on it, after the withdrawal)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    cdfi = load_pipeline("street", {**FAST, "upsample.interpolator": "cdfi", "upsample.cdfi_checkpoint": str(junk)})
    with pytest.raises(Rb2vError, match="junk.pth: not a"):
        build_dataset(tmp_path, cdfi, ExecutorSettings(2), report=False)
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet"), built)
    # ... and so is a Ray address where no cluster answers (ray.init retried it for minutes, after the
    # manifest had been withdrawn), or one that is not an address
    if importlib.util.find_spec("ray") is not None:
        for address, message in [
            (f"127.0.0.1:{_free_port()}", "no Ray cluster answers there"),
            ("head-node", "expected HOST:PORT, ray://HOST:PORT or auto"),
        ]:
            with pytest.raises(Rb2vError, match=f"--ray-address {address}: {re.escape(message)}"):
                build_dataset(
                    tmp_path, load_pipeline("street", FAST), report=False, executor=ExecutorSettings(2, "ray", address)
                )
        pd.testing.assert_frame_equal(read_manifest(tmp_path / "datasets" / "street" / "manifest.parquet"), built)


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_synth_reds_from_real_frames(fixtures_dir, tmp_path, capsys):
    src = tmp_path / "in"
    for name, files in (("seqA", range(0, 6)), ("seqB", range(6, 12))):
        (src / name).mkdir(parents=True)
        for i in files:
            shutil.copy(fixtures_dir / "img_seq" / f"{i:05d}.jpg", src / name)
    dataset = synth_reds_dataset(
        src, tmp_path / "out", 120, load_pipeline("reds", {"upsample.interpolator": "linear"}), report=False
    )
    df = read_manifest(dataset / "manifest.parquet")
    assert len(df) == 2 and set(df["split"]) == {"train", "test"} and validate_manifest(dataset) == []
    r = df.iloc[0]
    frames = [read_image(dataset / p) for p in r.sharp_paths]
    seq = sorted((src / r.subject).iterdir())
    # 120 fps: frames 1, 3, 5, 7 are 4 consecutive real frames, the others interpolated between them
    for j, f in zip((0, 2, 4, 6), frames[::2]):
        np.testing.assert_allclose(f, read_image(seq[j // 2]), atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(frames[1], (frames[0] + frames[2]) / 2, atol=1.5 / 255)
    blur = read_image(dataset / r.blur_path)
    # 19 linear sub-frames weigh the inner frames 3/19 and the two end frames 2/19
    weights = np.array([2, 3, 3, 3, 3, 3, 2]) / 19
    np.testing.assert_allclose(blur, np.tensordot(weights, np.stack(frames), axes=1), atol=1.5 / 255)
    assert r.sharp_start == 0 and r.upsample_factor == 2 and r.psnr > 45
    # the rate is recorded: above 240 fps blur_index and sharp_start count decimated frames
    source = json.loads(manifest_metadata(dataset)["source"])
    assert source == {"fps": 120, "upsample_factor": 2, "decimation": 1}
    with pytest.raises(Rb2vError, match="--fps 100"):
        synth_reds_dataset(src, tmp_path / "o2", 100, load_pipeline("reds"))
    # 160 fps: 6/240 s is 4 of its frames, yet 240/160 is no whole number (the message said no frame landed)
    with pytest.raises(Rb2vError, match=r"--fps 160: .* the rate must divide 240 \(80, 120 or 240 fps\) or be"):
        synth_reds_dataset(src, tmp_path / "o2", 160, load_pipeline("reds"))
    decimated = tmp_path / "in480"
    (decimated / "seqA").mkdir(parents=True)
    for i in range(13):  # one sample at 480 fps spans 13 frames; the fixture has 12 (its last one twice)
        shutil.copy(fixtures_dir / "img_seq" / f"{min(i, 11):05d}.jpg", decimated / "seqA" / f"{i:05d}.jpg")
    dataset = synth_reds_dataset(decimated, tmp_path / "o480", 480, load_pipeline("reds"), report=False)
    assert json.loads(manifest_metadata(dataset)["source"]) == {"fps": 480, "upsample_factor": 1, "decimation": 2}
    # run again at other rates into the same folder: the samples of the earlier rate that this one does not
    # make were left beside it (disk, and a folder that is not its manifest); its own and nothing else remain
    linear = load_pipeline("reds", {"upsample.interpolator": "linear"})
    for fps in (120, 240):
        dataset = synth_reds_dataset(decimated, tmp_path / "o480", fps, linear, report=False)
        folders = {p.parent.relative_to(dataset).as_posix() for p in (dataset / "samples").rglob("blur.png")}
        listed = {str(Path(p).parent) for p in read_manifest(dataset / "manifest.parquet")["blur_path"]}
        assert folders == listed and len(listed) == {120: 3, 240: 1}[fps]
    assert "removed 2 sample folder(s) of an earlier build" in capsys.readouterr().err

    # a corrupt video, an empty sequence folder and a video of another rate than --fps beside the good
    # sequences: each named, the others built
    from rb2v.io.video import write_video

    (src / "broken.mp4").write_bytes(b"not a video")
    (src / "seqC").mkdir()
    write_video(src / "slow.mp4", np.zeros((8, 48, 48, 3), np.uint8), 30)
    linear = load_pipeline("reds", {"upsample.interpolator": "linear"})
    with pytest.raises(PartialFailure, match="3 sequence"):
        synth_reds_dataset(src, tmp_path / "o3", 120, linear, report=False)
    built = tmp_path / "o3" / "datasets" / "reds"
    assert sorted(read_manifest(built / "manifest.parquet")["subject"]) == ["seqA", "seqB"]
    failures = {f["unit"]: f["error"] for f in json.loads((built / "build.json").read_text())["failures"]}
    assert sorted(failures) == [str(src / name) for name in ("broken.mp4", "seqC", "slow.mp4")]
    assert all(unit in error for unit, error in failures.items())
    assert "recorded at 30 fps, not the --fps 120 given" in failures[str(src / "slow.mp4")]
    # a folder and a video of one name (their samples overwrote each other's under duplicate ids, exit 0),
    # and a sequence too short for one sample (left out without a word): each named, the others built
    shutil.copytree(src / "seqB", src / "twin")
    write_video(src / "twin.mp4", np.zeros((8, 48, 48, 3), np.uint8), 120)
    (src / "short").mkdir()
    for i in range(3):  # 120 fps: a sample spans 4 source frames
        shutil.copy(src / "seqA" / sorted(os.listdir(src / "seqA"))[i], src / "short")
    with pytest.raises(PartialFailure, match="6 sequence"):
        synth_reds_dataset(src, tmp_path / "o6", 120, linear, report=False)
    built = tmp_path / "o6" / "datasets" / "reds"
    assert sorted(read_manifest(built / "manifest.parquet")["subject"]) == ["seqA", "seqB"]
    failures = {f["unit"]: f["error"] for f in json.loads((built / "build.json").read_text())["failures"]}
    assert f"{src / 'twin'}: sequence name 'twin' is also that of twin.mp4 (rename one)" == failures[str(src / "twin")]
    assert "also that of twin (rename one)" in failures[str(src / "twin.mp4")]
    assert (
        failures[str(src / "short")] == f"{src / 'short'}: 3 frame(s), fewer than the 4 one sample spans at --fps 120"
    )
    for name in ("seqA", "seqB", "twin", "short"):
        shutil.rmtree(src / name)
    (src / "twin.mp4").unlink()
    with pytest.raises(Rb2vError, match="none of its 3 sequence"):
        synth_reds_dataset(src, tmp_path / "o4", 120, linear, report=False)
    # a frame of another size inside a sequence is named (it was an interpolator's shape error)
    odd = tmp_path / "odd" / "seqE"
    odd.mkdir(parents=True)
    for i in range(6):
        image = read_image(fixtures_dir / "img_seq" / f"{i:05d}.jpg")
        write_image(odd / f"{i:05d}.png", image[:-8] if i == 2 else image)
    with pytest.raises(Rb2vError, match="no sample was built: every take or sequence failed"):
        synth_reds_dataset(odd.parent, tmp_path / "o5", 120, linear, report=False)
    h, w = image.shape[:2]
    assert f"{odd / '00002.png'}: {w}x{h - 8}, not the {w}x{h} of the sequence's first frame 00000.png" in (
        capsys.readouterr().err
    )
    # ... and so is one at the start of a later chunk of samples, which decodes only its own frames
    from rb2v.dataset.reds import Sequence

    for i in range(3, 6):
        write_image(odd / f"{i:05d}.png", image[:-8])
    with pytest.raises(Rb2vError, match=r"00003.png: .* not the .* of the sequence's first frame 00000.png"):
        list(Sequence(odd).frames(3, 6))


def test_stage_failures_are_said_once_per_message_and_capped(capsys):
    from rb2v.dataset.build import SAID_FAILURES, say_stage_failures

    reasons = [f"stage_failed: frame{i:02d}.png: not a readable image" for i in range(SAID_FAILURES + 2)]
    reasons += ["low_psnr;stage_failed: frame00.png: not a readable image", "static", "low_psnr"]
    failures = say_stage_failures(pd.DataFrame({"reason": reasons}))
    assert len(failures) == SAID_FAILURES + 2 and failures["frame00.png: not a readable image"] == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "rb2v: error: frame00.png: not a readable image (2 sample(s) rejected)"
    assert len(lines) == SAID_FAILURES + 1 and lines[-1] == "rb2v: error: … and 2 other message(s)"
    assert say_stage_failures(pd.DataFrame({"reason": ["static"]})) == {}


def test_metadata_json_names_the_folder_given_as_dot(street, tmp_path, monkeypatch):
    """`rb2v order --manifest manifest.parquet` from inside the dataset folder wrote "name": "" (the
    official trainer then opens DATASET_ROOT/<path>, not DATASET_ROOT/<name>/<path>)."""
    from rb2v.manifest import write_metadata_json

    copy = tmp_path / "street-copy"
    shutil.copytree(street[2], copy)
    monkeypatch.chdir(copy)
    write_metadata_json(Path("manifest.parquet").parent)
    assert json.loads((copy / "metadata.json").read_text())["name"] == "street-copy"


def test_report_of_a_dataset_without_rb2v_ids_or_without_samples(tmp_path):
    """Both were internal errors: ids without a "-" (SCHEMA.md does not require one), and a manifest with no rows."""
    from hypercut_models.synthetic import make_dataset
    from rb2v.dataset.report import write_report
    from rb2v.manifest import write_manifest

    manifest = make_dataset(tmp_path / "photos", photos=("astronaut", "coffee"), takes=1, samples=1, size=48)
    assert "-" not in "".join(read_manifest(manifest)["sample_id"])
    assert "2 samples from 2 take(s)" in write_report(manifest.parent).read_text()
    df = read_manifest(manifest)
    write_manifest(tmp_path / "empty" / "manifest.parquet", df.iloc[:0], df.attrs["metadata"])
    page = write_report(tmp_path / "empty").read_text()
    assert "0 samples from 0 take(s)" in page and "(no blurry frames)" in page and "(no samples)" in page
    # a dataset folder itself (a fetched or moved one) was "no built dataset (run rb2v build first)"
    from rb2v.cli import main as rb2v_main

    (manifest.parent / "report.html").unlink()
    assert rb2v_main(["report", str(manifest.parent)]) == 0 and (manifest.parent / "report.html").is_file()


def test_a_name_with_dollar_signs_is_drawn_as_written_in_the_report(tmp_path):
    """matplotlib read "$...$" in a sequence name as mathematics: the build stopped at its report with an
    internal error (no summary, no report.html)."""
    moving = np.random.default_rng(0).random((40, 60, 3), dtype=np.float32)
    for i in range(8):
        write_image(tmp_path / "frames" / "cost$5^{$" / f"{i:03d}.png", np.roll(moving, 2 * i, axis=1))
    dataset = synth_reds_dataset(tmp_path / "frames", tmp_path / "out", 120, load_pipeline("reds"))
    assert "cost$5^{$" in (dataset / "report.html").read_text()


def test_synth_reds_refuses_a_frame_there_twice_and_notes_a_gap(tmp_path, capsys):
    """000001.png beside 000001.jpg: every frame was used twice (the motion at half speed) with exit 0; a
    gap in the numbering was bridged unsaid."""
    moving = np.random.default_rng(0).random((40, 60, 3), dtype=np.float32)
    for i in range(12):
        write_image(tmp_path / "twice" / "seq" / f"{i:06d}.png", np.roll(moving, 2 * i, axis=1))
        if i not in (4, 5):
            write_image(tmp_path / "gap" / "seq" / f"{i:06d}.png", np.roll(moving, 2 * i, axis=1))
    write_image(tmp_path / "twice" / "seq" / "000003.jpg", np.roll(moving, 6, axis=1))
    with pytest.raises(Rb2vError, match="none of its 1 sequence"):
        synth_reds_dataset(tmp_path / "twice", tmp_path / "o1", 120, load_pipeline("reds"), report=False)
    assert "000003.png: frame 000003 is there twice (also 000003.jpg): keep one format" in capsys.readouterr().err
    synth_reds_dataset(tmp_path / "gap", tmp_path / "o2", 120, load_pipeline("reds"), report=False)
    assert "frame 000006.png follows 000003.png (1 gap(s) in the numbering)" in capsys.readouterr().err


def test_report_reads_a_build_record_of_another_shape(tmp_path):
    """A take record without time_offset_s (or with null) was an internal error (KeyError / TypeError), and
    `{"takes": [1]}` one more, none naming build.json."""
    from rb2v.dataset.report import write_report

    moving = np.random.default_rng(0).random((40, 60, 3), dtype=np.float32)
    for i in range(8):
        write_image(tmp_path / "frames" / "seq" / f"{i:03d}.png", np.roll(moving, 2 * i, axis=1))
    dataset = synth_reds_dataset(tmp_path / "frames", tmp_path / "out", 120, load_pipeline("reds"), report=False)
    record = json.loads((dataset / "build.json").read_text())
    take = record["takes"][0]
    for edited in ({k: v for k, v in take.items() if k != "time_offset_s"}, {**take, "time_offset_s": None}):
        (dataset / "build.json").write_text(json.dumps({**record, "takes": [edited]}))
        assert write_report(dataset).stat().st_size > 1000
    (dataset / "build.json").write_text(json.dumps({**record, "takes": [1]}))
    with pytest.raises(Rb2vError, match=r"build.json: 'takes' is not a list of take records"):
        write_report(dataset)


def test_the_summary_and_report_count_the_frames_the_clock_placed(street, tmp_path, monkeypatch, capsys):
    """A sample the take's clock moved to the neighbouring start (search.clock_prior_db) was told nowhere."""
    search_module = importlib.import_module("rb2v.colormatch.search")  # the package's ``search`` is the function
    own = search_module.refine_in_linear_light
    asked = []

    def every_clock_moves(*args, clock=None, **kwargs):  # as if each frame's neighbours tied
        result = own(*args, clock=clock, **kwargs)
        asked.append(clock is not None)
        return dataclasses.replace(result, clock_moved=True) if clock is not None else result

    monkeypatch.setattr(search_module, "refine_in_linear_light", every_clock_moves)
    _, reference, _ = street
    shutil.copytree(reference / "aligned", tmp_path / "aligned")
    dataset = build_dataset(tmp_path, load_pipeline("street", FAST))
    moved = sum(asked)
    assert moved >= 10, asked  # the fixture's takes estimate their exposure: the clock weighs in
    assert f"clock:    {moved} blurry frame(s) placed by their take's clock" in capsys.readouterr().err
    record = json.loads((dataset / "build.json").read_text())
    assert sum(t["clock_moved"] for t in record["takes"]) == moved
    assert ">placed by clock</th>" in (dataset / "report.html").read_text()
    build_dataset(tmp_path, load_pipeline("street", FAST), report=False)  # a re-run tells what the units recorded
    assert f"clock:    {moved} blurry frame(s)" in capsys.readouterr().err
