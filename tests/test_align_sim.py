"""rb2v align end to end on simulated rig sessions with exact ground truth (truth.json).

Two tiny sessions, each simulated once per module: a street take (audio + timecode, chaptered
recordings, horizontal flip) and a green-screen face take with its calibration take (no audio:
visual sync; vertical flip although the rig file says horizontal). Tolerances are the issue's:
time offset within 1/400 s, crop corners within 0.5 px.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from rb2v.align import flicker, stage
from rb2v.align.discover import discover
from rb2v.align.geometry import crop_warp, translated
from rb2v.alignment import read_alignment
from rb2v.benchmarks.align import corner_errors
from rb2v.cli import main
from rb2v.errors import Rb2vError
from rb2v.io.images import read_image
from rb2v.io.video import read_frames
from rb2v.settings import load_rig
from rb2v.simulate import SimConfig, simulate_session
from rb2v.simulate.session import UPSAMPLE, WINDOW

OFFSET_TOL_S = 1 / 400
CORNER_TOL_PX = 0.5


def _take(raw: Path, category: str) -> Path:
    return raw / category / "subject01" / "take01"


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    """Simulate, interrupt an align run half-way, leave a crash leftover, align, align again."""
    root = tmp_path_factory.mktemp("street")
    raw, out = root / "raw", root / "out"
    simulate_session(
        raw,
        SimConfig(
            category="street",
            seconds=2.0,
            seed=31,
            flip="horizontal",
            audio=True,
            timecode=True,
            chapter_seconds=1.0,
            internal_fps=400,
            # the blur camera's sound starts after its pictures, the sharp camera's before (its pictures
            # start 0.121 s into its files): every seek and both tracks must count from the first frame
            audio_start_s=(0.037, -0.121),
        ),
        progress=False,
    )
    final = out / "aligned" / "street" / "subject01" / "take01"
    calls = {"n": 0}
    real_save = stage._save_warped

    def crash_after_some_frames(*args):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("simulated crash")
        real_save(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stage, "_save_warped", crash_after_some_frames)
        interrupted_code = main(["align", str(raw), str(out)])
    interrupted = {
        "code": interrupted_code,
        "finished": final.exists(),
        "leftovers": [p.name for p in final.parent.iterdir()],
        "errors": pq.read_table(out / "align_errors.parquet").to_pylist(),
    }
    leftover = final.parent / ".take01.k1lled_x.partial"  # what a SIGKILL mid-take leaves
    (leftover / "blur").mkdir(parents=True)
    (leftover / "blur" / "000000.png").write_bytes(b"half")
    first_code = main(["align", str(raw), str(out)])
    mtime = (final / "alignment.json").stat().st_mtime_ns
    second_code = main(["align", str(raw), str(out)])
    frames = sorted(p.name for p in (final / "blur").iterdir())
    no_frames_code = main(["align", "--no-frames", str(raw), str(out)])  # it wiped the finished take's frames
    return {
        "no_frames": (no_frames_code, frames, sorted(p.name for p in (final / "blur").iterdir())),
        "raw": raw,
        "out": out,
        "final": final,
        "interrupted": interrupted,
        "first_code": first_code,
        "second_code": second_code,
        "mtime": mtime,
        "leftover": leftover,
        "truth": json.loads((_take(raw, "street") / "truth.json").read_text()),
        "meta": json.loads((final / "alignment.json").read_text()),
    }


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    root = tmp_path_factory.mktemp("face")
    raw, out = root / "raw", root / "out"
    simulate_session(
        raw,
        SimConfig(category="face", seconds=2.0, seed=32, flip="vertical", audio=False, internal_fps=400),
        progress=False,
    )
    code = main(["align", "--workers", "2", "--no-frames", str(raw), str(out)])
    final = out / "aligned" / "face" / "subject01" / "take01"
    return {
        "raw": raw,
        "out": out,
        "code": code,
        "truth": json.loads((_take(raw, "face") / "truth.json").read_text()),
        "meta": json.loads((final / "alignment.json").read_text()),
    }


def test_street_offset_and_homography_within_tolerance(street):
    meta, truth = street["meta"], street["truth"]
    assert street["first_code"] == 0
    assert meta["schema"] == "rb2v.alignment/2"
    assert meta["sync_method"] == "audio" and meta["sync_prior"] == "timecode"
    assert abs(meta["time_offset_s"] - truth["time_offset_s"]) <= OFFSET_TOL_S
    assert meta["flip_sharp"] == truth["flip_sharp"] == "horizontal"
    err = corner_errors(meta, truth)
    assert err.max() <= CORNER_TOL_PX, err
    assert meta["inliers"] >= 40 and meta["residual_px"] < 2.0
    for key in ("blur_fps", "sharp_fps", "homography", "crop", "clock_ratio", "sync_method", "residual_px", "inliers"):
        assert key in meta
    # a steady light (its street moving, the whole view swaying): nothing to even out
    assert "sharp_light" not in meta and "sharp_light_rows" not in meta
    assert meta["sharp_light_step_rms"] < flicker.MIN_STEP_RMS / 4
    assert meta["sharp_light_band_ptp"] < flicker.MIN_BAND_PTP / 2
    assert meta["sharp_light_still_ptp"] < flicker.MIN_STILL_PTP  # against the blurry frames


def test_street_frames_keep_indices_and_lie_inside_both_views(street):
    meta, truth, final = street["meta"], street["truth"], street["final"]
    assert len(list((final / "blur").glob("*.png"))) == truth["blur_frames"]
    assert len(list((final / "sharp").glob("*.png"))) == truth["sharp_frames"]
    crop, valid = meta["crop"], truth["valid_region"]
    assert (crop["width"], crop["height"]) == (448, 448)
    assert valid["x"] <= crop["x"] and crop["x"] + 448 <= valid["x"] + valid["width"]
    assert valid["y"] <= crop["y"] and crop["y"] + 448 <= valid["y"] + valid["height"]
    # sharp/000150.png is raw sharp frame 150 (second chapter) warped by flip, H and crop
    sharp_files = [_take(street["raw"], "street") / f for f in truth["sharp_files"]]
    assert len(sharp_files) >= 2
    raw_frame = read_frames(sharp_files, 150, 1)[0]
    expected = cv2.warpPerspective(
        raw_frame,
        crop_warp(np.array(meta["homography"]), meta["flip_sharp"], crop, truth["width"], truth["height"]),
        (448, 448),
        flags=cv2.INTER_CUBIC,
    )
    got = read_image(final / "sharp" / "000150.png", dtype="uint8").astype(int)
    # equal up to the fixed-point resampling tables (and chroma at the decoded box's edge)
    assert np.abs(got - expected).mean() < 0.2 and np.abs(got - expected).max() <= 3
    neighbour = read_image(final / "sharp" / "000151.png", dtype="uint8").astype(int)
    assert np.abs(neighbour - expected).mean() > 5 * np.abs(got - expected).mean()  # the index is exact
    # a blur frame matches the exposure average of the aligned sharp frames the truth puts in it
    k = 30
    start = truth["sharp_start_exact"][k] / 2  # in sharp frames: window of 7 upsampled = 3 sharp periods
    frames = [read_image(final / "sharp" / f"{i:06d}.png") for i in range(int(start), int(start) + 4)]
    synth = np.mean(frames, axis=0)
    blur = read_image(final / "blur" / f"{k:06d}.png")
    assert np.corrcoef(synth[..., 1].ravel(), blur[..., 1].ravel())[0, 1] > 0.95


def test_interrupted_run_leaves_nothing_finished_and_resumes(street):
    it = street["interrupted"]
    assert it["code"] == 1 and not it["finished"]
    assert it["leftovers"] == []  # the temporary folder of the failed take is removed
    assert [e["take"] for e in it["errors"]] == ["take01"] and "simulated crash" in it["errors"][0]["error"]
    # a bug is recorded with its traceback, down to the frame that raised it
    assert "crash_after_some_frames" in it["errors"][0]["traceback"]
    assert not street["leftover"].exists()  # a crashed run's partial folder is cleaned up
    assert street["second_code"] == 0
    assert (street["final"] / "alignment.json").stat().st_mtime_ns == street["mtime"]  # skipped, not redone
    code, before, after = street["no_frames"]  # a take aligned with frames serves --no-frames as it is
    assert code == 0 and len(before) > 10 and after == before


def test_takes_table_joins_chapters(street):
    rows = pq.read_table(street["out"] / "takes.parquet").to_pylist()
    assert len(rows) == 1
    assert len(rows[0]["blur_files"]) == 2 and rows[0]["blur_frames"] == street["truth"]["blur_frames"]
    assert rows[0]["blur_audio"] and rows[0]["sharp_audio"]


def test_face_visual_sync_detects_flip_within_tolerance(face):
    meta, truth = face["meta"], face["truth"]
    assert face["code"] == 0
    assert meta["sync_method"] == "visual"
    assert meta["rig_flip_sharp"] == "horizontal" and meta["flip_sharp"] == "vertical" == truth["flip_sharp"]
    assert "sharp_light" not in meta and meta["sharp_light_step_rms"] < flicker.MIN_STEP_RMS / 4  # visual sync's thumbs
    assert abs(meta["time_offset_s"] - truth["time_offset_s"]) <= OFFSET_TOL_S
    err = corner_errors(meta, truth)
    assert err.max() <= CORNER_TOL_PX, err
    calibration = json.loads((face["out"] / "calibration" / "face-rig" / "alignment.json").read_text())
    assert calibration["sharp_light_step_rms"] < flicker.MIN_STEP_RMS / 4  # measured for its exposure fit too


def test_face_take_whose_matches_span_little_uses_the_calibration_homography(face, tmp_path):
    """The face's matches lie on the subject, about a quarter of the frame: a homography fitted there
    extrapolates to the crop's corners (0.071 px off on this take; 0.18 before ECC compared the views without
    their shading), so the calibration take's is used (0.029 px). With ``min_match_cover`` 0 the take's own is
    used again."""
    meta, truth = face["meta"], face["truth"]
    assert meta["calibration"] == "face-rig" and meta["take_match_cover"] < 0.3
    assert "using calibration take 'face-rig': its homography puts this take's matches" in meta["note"]
    assert meta["take_inliers"] >= 40
    assert meta["calibration_shift_px"] < 0.5  # the rig did not move
    best = corner_errors(meta, truth).max()
    assert best <= 0.1
    takes, calibrations, _ = discover(face["raw"])
    calib_meta = read_alignment(face["out"] / "calibration" / "face-rig")
    opts = stage.AlignOptions(rig=load_rig(overrides={"align.min_match_cover": 0.0}), write_frames=False)
    status, own = stage.align_take(takes[0], tmp_path / "own", opts, calib_meta, calibrations["face-rig"])
    assert status == "aligned" and own.extra["calibration"] is None
    assert corner_errors(own, truth).max() > best + 0.025


def test_a_shift_the_matches_ask_for_that_the_blurry_frames_do_not_is_refused(face, tmp_path, monkeypatch):
    """The face take on its still rig, its matches made to ask for a shift of (+0.45, -0.3) px (as a blurred hand's
    did on rb2v bench rig-unknowns' hand seed 7414, where ORB's coarse pyramid levels put every frame's matches that
    far off and the shift took the crop's corners from 0.08 to 0.60 px): the exposure fit under that shift matches the
    blurry frames worse than under the calibration take's homography, so the homography is not moved."""
    real = stage.geometry.offset_from
    monkeypatch.setattr(stage.geometry, "offset_from", lambda H, matched: real(H, matched) + [0.45, -0.3])
    takes, calibrations, _ = discover(face["raw"])
    calib_meta = read_alignment(face["out"] / "calibration" / "face-rig")
    opts = stage.AlignOptions(rig=load_rig(), write_frames=False)
    status, meta = stage.align_take(takes[0], tmp_path / "take", opts, calib_meta, calibrations["face-rig"])
    assert status == "aligned" and meta.extra["calibration"] == "face-rig"
    assert "the blurry frames fit the sharp frames worse so moved" in meta.extra["note"], meta.extra["note"]
    assert meta.extra["calibration_offset_px"] == [0.0, 0.0]
    assert corner_errors(meta, face["truth"]).max() <= 0.1


def _take_on_face_rig(face, tmp_path: Path, category: str = "face", **sim):
    """One take simulated on the face fixture's rig (seed 32) after its calibration take, which it names:
    (the take, that calibration take, its alignment, the take's truth)."""
    raw = tmp_path / "raw"
    shutil.copytree(face["raw"] / "calibration", raw / "calibration")  # filmed before the take
    base = {"category": category, "seconds": 2.0, "seed": 32, "flip": "vertical", "audio": False, "internal_fps": 400}
    cfg = SimConfig(**{**base, **sim})
    simulate_session(raw, cfg, progress=False)
    if category != "face":
        (_take(raw, category) / "take.toml").write_text('calibration = "face-rig"\n')
    truth = json.loads((_take(raw, category) / "truth.json").read_text())
    takes, calibrations, _ = discover(raw)
    return takes[0], calibrations["face-rig"], read_alignment(face["out"] / "calibration" / "face-rig"), truth


def test_a_take_after_the_rig_moved_far_has_its_calibration_homography_moved_onto_its_few_matches(face, tmp_path):
    """The rig bumped after its calibration take (``rig_drift_px`` 6: the sharp camera's view turned and
    shifted, its corners moved by up to 6 px; 3.7 px at the matches). Over the 1.5 px that says the rig
    moved, but a face on a green screen has its matches on the face alone (23 % of the frame), and the
    take's own homography extrapolates to the crop's corners (0.14 px off here; hands bumped 3-5 px: 0.57-2.36
    px, and hand 7412 in ``rb2v bench rig-unknowns``, bumped 1.68 px: 5.15 px). The calibration take's
    homography is shifted onto the matches and turned, as for a smaller move: 0.11 px (the hands: 0.20-0.36,
    hand 7412 0.39)."""
    take, calibration, calib_meta, truth = _take_on_face_rig(face, tmp_path, rig_drift_px=6.0)
    opts = stage.AlignOptions(rig=load_rig(), write_frames=False)
    status, meta = stage.align_take(take, tmp_path / "take", opts, calib_meta, calibration)
    assert status == "aligned" and meta.extra["calibration"] == "face-rig", meta.extra["note"]
    assert meta.extra["calibration_shift_px"] > 2 * opts.rig.align.max_calibration_shift_px
    assert meta.extra["take_match_cover"] < stage.MOVED_MIN_COVER and "the rig moved since, but" in meta.extra["note"]
    assert meta.extra["calibration_turn_px"] > stage.TURN_PX
    moved = corner_errors(meta, truth).max()
    with pytest.MonkeyPatch.context() as mp:  # the take's own homography, as over MOVED_MIN_COVER
        mp.setattr(stage, "MOVED_MIN_COVER", 0.0)
        status, own = stage.align_take(take, tmp_path / "own", opts, calib_meta, calibration)
    assert own.extra["calibration"] is None and "using this take's own homography" in own.extra["note"]
    assert moved < min(0.15, corner_errors(own, truth).max()), (moved, corner_errors(own, truth))


def test_a_take_after_the_rig_turned_a_little_has_its_calibration_homography_turned(face, tmp_path):
    """A street take filmed after the rig was bumped by 2 px (``rig_drift_px``; on this seed a 0.94 px shift
    and a turn moving the corners 1.06 px more), below the 1.5 px that says the rig moved: the take keeps its
    calibration take's homography, moved by its matches' median offset, which takes up the shift and not
    the turn. A turn and shift fitted to the matches too stand out of their scatter, and are applied: the
    crop's corners 0.02-0.05 px off, where the offset alone leaves them 0.58-1.04 px off
    (rig-drift-2 on street seed 7701: 0.55-1.14 px, and build rejected every sample)."""
    take, calibration, calib_meta, truth = _take_on_face_rig(face, tmp_path, "street", rig_drift_px=2.0)
    opts = stage.AlignOptions(rig=load_rig(), write_frames=False)
    status, meta = stage.align_take(take, tmp_path / "take", opts, calib_meta, calibration)
    assert status == "aligned" and meta.extra["calibration"] == "face-rig", meta.extra["note"]
    assert meta.extra["calibration_turn_px"] > stage.TURN_PX and "the rig turned" in meta.extra["note"]
    turned = corner_errors(meta, truth).max()
    shift_only = translated(calib_meta.H, meta.extra["calibration_offset_px"])
    shifted = dataclasses.replace(meta, homography=tuple(map(tuple, shift_only)))
    assert turned < 0.15 < CORNER_TOL_PX < corner_errors(shifted, truth).max(), (turned, corner_errors(shifted, truth))
    # the fit over the subject barely sees a turn, which moves the corners: it no longer vetoes one (hand 7417,
    # rig-drift-2: 0.14 dB worse under the true turn, and the corners stayed 0.81 px off)
    own, H_cal = stage._exposure_rounds, np.asarray(calib_meta.H)

    def turn_fits_worse(take, s, opts, H, *args):
        out = own(take, s, opts, H, *args)
        moved = np.asarray(H) @ np.linalg.inv(H_cal)
        if out[3] is not None and abs(moved[0, 1] / moved[2, 2]) > 1e-5:  # turned, not only shifted
            out[4]["rounds"][-1]["psnr"] -= 100.0  # worse than any shift fits
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stage, "_exposure_rounds", turn_fits_worse)
        status, vetoed = stage.align_take(take, tmp_path / "vetoed", opts, calib_meta, calibration)
    assert "the rig turned" in vetoed.extra["note"] and corner_errors(vetoed, truth).max() < 0.15


def test_a_rig_knocked_during_the_take_has_its_later_frames_left_out_of_the_exposure_fit(face, tmp_path):
    """A street take knocked at 0.8 s (``bump_px`` 2: the sharp view turned and shifted, 1.16 px at the centre,
    0.75-1.84 px at the corners), stamped at the exposure's start. The two frames the exposure fit compares after
    the knock sit 1.09-1.24 px off the others' matches and are left out: the exposures' middle rows then fall 0.01
    ms from the truth's on the sharp clock, 0.25 ms with them (rb2v bench rig-unknowns, bump, street seed 7713: 2.5
    ms early with them, every sample's start a step off; 0.12 ms without)."""
    take, calibration, calib_meta, truth = _take_on_face_rig(
        face, tmp_path, "street", seconds=1.6, bump_px=2.0, blur_anchor="start"
    )
    opts = stage.AlignOptions(rig=load_rig(), write_frames=False)

    def content_ms(meta) -> float:  # where the blurry exposures' middle rows fall on the sharp clock, against the truth
        ks = [k for k in range(truth["blur_frames"]) if truth["sharp_start"][k] is not None]
        steps = [meta.predicted_start(k, UPSAMPLE, WINDOW) - truth["sharp_start_exact"][k] for k in ks]
        return 1000 * float(np.mean(steps)) / (UPSAMPLE * truth["sharp_fps"])

    status, meta = stage.align_take(take, tmp_path / "take", opts, calib_meta, calibration)
    assert status == "aligned" and meta.extra["calibration"] == "face-rig", meta.extra["note"]
    knock = truth["bump"]["at_s"] * truth["blur_fps"]  # in blurry frames: 20
    apart = meta.extra["frames_apart_px"]
    assert sorted(int(k) for k in apart) == [20, 22] and knock == 20 and min(apart.values()) > 1.0, apart
    assert "blurry frame(s) 20, 22 sit" in meta.extra["note"]
    assert f"moved against each other from blurry frame {meta.knocked_from} on" in meta.extra["note"]
    with pytest.MonkeyPatch.context() as mp:  # as before: every frame fitted
        mp.setattr(stage, "PAIR_OFF_PX", np.inf)
        status, kept = stage.align_take(take, tmp_path / "kept", opts, calib_meta, calibration)
    assert kept.extra["frames_apart_px"] == {} and "sit" not in kept.extra["note"]
    # frames apart with frames in line after them are no knock: the fit keeps them (face 7519, rig-drift-2: four
    # frames of a turning head apart, left out, put the exposure 0.85 ms early and 21 of 39 samples a step early)
    own = stage._frames_apart

    def lone(*args):
        _, checked = own(*args)
        return {checked[1]: 0.9, checked[2]: 0.8}, checked

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stage, "PAIR_OFF_PX", np.inf)
        mp.setattr(stage, "_frames_apart", lone)
        status, lone_apart = stage.align_take(take, tmp_path / "lone", opts, calib_meta, calibration)
    assert len(lone_apart.extra["frames_apart_px"]) == 2 and "the views did not stay moved" in lone_apart.extra["note"]
    assert lone_apart.knocked_from is None and lone_apart.exposure == kept.exposure
    assert abs(content_ms(meta)) < 0.05 and abs(content_ms(kept)) > 0.2, (content_ms(meta), content_ms(kept))
    assert corner_errors(meta, truth).max() < 0.1  # the view before the knock


def test_a_still_rig_stamped_at_the_exposure_end_is_not_taken_for_moved(face, tmp_path):
    """A green-screen take's matches lie on the moving subject alone; made at the timestamps while the
    exposure ends there, they show the subject where it was half an exposure earlier, and the calibration
    take's homography put them 0.39 px off on this still rig (an outside check's faster subjects: 2.5 and
    3.1 px, over the 1.5 px limit): align called the rig moved and fitted the take's own homography. The
    shift is now measured again inside the estimated exposure (0.05 px), also where the first measure lies
    under the limit but above half of it (another outside check: 1.47 px against 1.5, reported as such). The
    limit is lowered to 0.6 px here to make this subject's shift count, and to 0.2 px without the exposure."""
    take, calibration, calib_meta, truth = _take_on_face_rig(face, tmp_path, blur_anchor="end")
    opts = stage.AlignOptions(rig=load_rig(overrides={"align.max_calibration_shift_px": 0.6}), write_frames=False)
    status, meta = stage.align_take(take, tmp_path / "take", opts, calib_meta, calibration)
    assert status == "aligned" and meta.extra["calibration"] == "face-rig" and "moved" not in meta.extra["note"]
    assert meta.extra["calibration_shift_px"] < 0.1  # measured inside the exposure, though 0.39 < 0.6 at first
    assert f"matches {meta.extra['calibration_shift_px']:.2f} px off" in meta.extra["note"]
    assert corner_errors(meta, truth).max() <= 0.1
    untimed = stage.AlignOptions(  # the matches at the timestamps
        rig=load_rig(overrides={"align.max_calibration_shift_px": 0.2}), write_frames=False, exposure=False
    )
    status, moved = stage.align_take(take, tmp_path / "untimed", untimed, calib_meta, calibration)
    assert "the rig moved since" in moved.extra["note"] and 0.3 < moved.extra["calibration_shift_px"] < 0.6


def test_face_falls_back_to_calibration_take(face, tmp_path):
    """With an inlier threshold no take can meet, the take uses its calibration take's homography."""
    takes, calibrations, _ = discover(face["raw"])
    calib_meta = read_alignment(face["out"] / "calibration" / "face-rig")
    rig = load_rig(overrides={"align.min_inliers": 10**9})
    opts = stage.AlignOptions(rig=rig, write_frames=False)
    status, meta = stage.align_take(takes[0], tmp_path / "take", opts, calib_meta, calibrations["face-rig"])
    assert status == "aligned" and meta.extra["calibration"] == "face-rig" and meta.inliers == calib_meta.inliers
    assert meta.homography == calib_meta.homography and meta.flip_sharp == "vertical"
    assert corner_errors(meta, face["truth"]).max() <= CORNER_TOL_PX
    # without a calibration take it is an error that names the take and says why
    with pytest.raises(Rb2vError, match="too few feature matches"):
        stage.align_take(takes[0], tmp_path / "take2", opts)


def test_a_take_whose_matches_span_much_of_the_frame_still_uses_its_calibration_take(face, tmp_path):
    """A face filling most of the frame (``subject_size`` 0.95) gives matches over more than 30 % of it, and
    align used to keep that take's own homography (an outside check's waving hands over 39-43 %: 0.14-1.98 px
    off at the crop's corners, their calibration take's 0.03 px). A take now uses the calibration take it
    names unless its matches say the rig moved (``min_match_cover`` 1.0; 0.3 before). This face's own
    homography is good (its matches span 42 %), the calibration take's as good."""
    take, calibration, calib_meta, truth = _take_on_face_rig(face, tmp_path, subject_size=0.95)
    metas = {}
    for cover in (1.0, 0.3):
        opts = stage.AlignOptions(rig=load_rig(overrides={"align.min_match_cover": cover}), write_frames=False)
        _, metas[cover] = stage.align_take(take, tmp_path / str(cover), opts, calib_meta, calibration)
    used, own = metas[1.0], metas[0.3]
    assert used.extra["take_match_cover"] > 0.3 and used.extra["calibration"] == "face-rig"
    assert load_rig().align.min_match_cover == 1.0 and own.extra["calibration"] is None
    # 0.029 and 0.032 px (0.042 and 0.063 before ECC compared the views without their shading)
    assert corner_errors(used, truth).max() <= 0.04 and corner_errors(own, truth).max() <= 0.05
