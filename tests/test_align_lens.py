"""Lens distortion (issue 13.3): board calibration takes, undistortion before the homography.

One simulated street session whose two lenses differ (k1 = -0.06 on the blur camera, +0.05 on
the sharp one) with its checkerboard calibration take, simulated and aligned once per module.
Tolerances: the crop's corners within 0.5 px (measured in the true undistorted blur view, see
``rb2v.benchmarks.align.corner_errors``), fx within 1 %, k1 within 0.01.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rb2v.align import lens
from rb2v.align.discover import discover
from rb2v.align.stage import AlignOptions, align_take
from rb2v.alignment import read_alignment
from rb2v.benchmarks.align import corner_errors
from rb2v.cli import main
from rb2v.errors import Rb2vError
from rb2v.settings import load_rig
from rb2v.simulate import SimConfig, simulate_session

K1 = {"blur": -0.06, "sharp": 0.05}
CORNER_TOL_PX = 0.5


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("lens")
    raw, out = root / "raw", root / "out"
    cfg = SimConfig(
        category="street",
        seconds=1.2,
        seed=43,
        internal_fps=400,
        distortion_blur=(K1["blur"],),
        distortion_sharp=(K1["sharp"],),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("rb2v.simulate.lens.BOARD_POSES", 9)  # a shorter board take
        simulate_session(raw, cfg, progress=False)
    code = main(["align", str(raw), str(out)])
    return {"raw": raw, "out": out, "code": code, "root": root}


def _truth(raw: Path) -> dict:
    return json.loads((raw / "street" / "subject01" / "take01" / "truth.json").read_text())


def test_simulated_session_has_board_and_lens_truth(session):
    raw = session["raw"]
    board = lens.read_board(raw / "calibration" / "street-rig")
    assert board is not None and board.type == "checkerboard" and (board.cols, board.rows) == (9, 6)
    truth = _truth(raw)
    assert truth["calibration"] == "street-rig"
    for cam in ("blur", "sharp"):
        assert truth["lens"][cam]["method"] == "truth"
        assert truth["lens"][cam]["dist_coeffs"][0] == pytest.approx(K1[cam])


def test_calibration_recovers_intrinsics(session):
    assert session["code"] == 0
    stored, data = lens.read_intrinsics(session["out"] / "calibration" / "street-rig" / lens.INTRINSICS_FILE)
    truth = _truth(session["raw"])["lens"]
    # The simulated sharp camera sees the blur camera's view through the rig's homography, so its
    # focal length in its own pixels is the blur camera's over the homography's scale.
    t = _truth(session["raw"])
    H, w, h = np.asarray(t["homography"]), t["width"], t["height"]
    q = H @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    J = (H[:2, :2] * q[2] - np.outer(q[:2], H[2, :2])) / q[2] ** 2
    scale = {"blur": 1.0, "sharp": float(np.sqrt(abs(np.linalg.det(J))))}
    for cam in ("blur", "sharp"):
        est, true = stored[cam], truth[cam]
        fx_true = true["camera_matrix"][0][0] / scale[cam]
        assert est.method == "calibrated" and est.rms_px < 0.3, (cam, est.rms_px)
        assert abs(est.K[0, 0] / fx_true - 1) < 0.01, (cam, est.K[0, 0], fx_true)
        assert abs(est.dist[0] - K1[cam]) < 0.01, (cam, est.dist)
        assert data["views"][cam]["views"] >= lens.MIN_VIEWS


def test_distorted_take_aligns(session):
    out = session["out"] / "aligned" / "street" / "subject01" / "take01"
    meta = read_alignment(out)
    assert meta.lens is not None and meta.lens["blur"].method == "calibrated"
    err = corner_errors(meta, _truth(session["raw"]))
    assert err.max() <= CORNER_TOL_PX, err
    blur = sorted((out / "blur").glob("*.png"))
    sharp = sorted((out / "sharp").glob("*.png"))
    assert len(blur) == meta.extra["blur_frames"] and len(sharp) == meta.extra["sharp_frames"]
    # the calibration take's alignment carries the lenses (what the takes were undistorted with)
    calib = read_alignment(session["out"] / "calibration" / "street-rig")
    assert calib.lens is not None and calib.lens["sharp"].size == (640, 544)


def test_rig_intrinsics_undistort(session):
    """lens.undistort = true with the rig file's intrinsics (no board take named)."""
    raw2 = session["root"] / "raw-rig"
    src = session["raw"] / "street" / "subject01" / "take01"
    dst = raw2 / "street" / "subject01" / "take01"
    shutil.copytree(src, dst)
    (dst / "take.toml").unlink()
    truth = _truth(session["raw"])
    K = truth["lens"]["blur"]["camera_matrix"]
    rig = load_rig(
        overrides={
            "blur.width": 640,
            "blur.height": 544,
            "sharp.width": 640,
            "sharp.height": 544,
            "lens.undistort": True,
            "lens.fx": K[0][0],
            "lens.fy": K[1][1],
            "lens.cx": K[0][2],
            "lens.cy": K[1][2],
            "lens.dist_blur": [K1["blur"]],
            "lens.dist_sharp": [K1["sharp"]],
        }
    )
    takes, _, _ = discover(raw2)
    _, meta = align_take(takes[0], session["root"] / "out-rig", AlignOptions(rig=rig, write_frames=False))
    assert meta.lens["blur"].method == "rig"
    np.testing.assert_allclose(meta.lens["sharp"].dist[0], K1["sharp"])
    err = corner_errors(meta, truth)
    assert err.max() <= CORNER_TOL_PX, err

    # undistort = true without intrinsics and without a board take: a one-line error
    bare = load_rig(overrides={"lens.undistort": True})
    with pytest.raises(Rb2vError, match="lens.undistort = true but no intrinsics"):
        lens.take_lenses(takes[0], bare, None)


@pytest.mark.parametrize(
    "text, what",
    [
        ('type = "circles"\ninner_corners = [9, 6]\nsquare_mm = 25.0\n', "type"),
        ('type = "checkerboard"\ninner_corners = [9]\nsquare_mm = 25.0\n', "inner_corners"),
        ('type = "checkerboard"\ninner_corners = [9, 6]\nsquare_mm = -1\n', "square_mm"),
        ('type = "checkerboard"\ninner_corners = [7, 7]\nsquare_mm = 20\n', "square"),
        (
            'type = "charuco"\ninner_corners = [9, 6]\nsquare_mm = 25.0\nmarker_mm = 18\ndictionary = "X"\n',
            "dictionary",
        ),
        ('type = "checkerboard"\ninner_corners = [9, 6]\nsquare_mm = 25.0\ncolour = 1\n', "unknown key"),
        ("type = \n", "not valid TOML"),
    ],
)
def test_bad_board_toml(tmp_path, text, what):
    (tmp_path / "board.toml").write_text(text)
    with pytest.raises(Rb2vError) as e:
        lens.read_board(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "board.toml") in msg and what in msg and "\n" not in msg


def test_good_board_toml(tmp_path):
    (tmp_path / "board.toml").write_text(
        'type = "charuco"\ninner_corners = [9, 6]\nsquare_mm = 25.0\nmarker_mm = 18.0\ndictionary = "DICT_5X5_100"\n'
    )
    b = lens.read_board(tmp_path)
    assert (b.type, b.cols, b.rows, b.marker_mm, b.dictionary) == ("charuco", 9, 6, 18.0, "DICT_5X5_100")
    assert lens.read_board(tmp_path / "elsewhere") is None
