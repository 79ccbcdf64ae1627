"""The simulator's camera conventions (issue 13.5): exposure anchor and length, rolling shutter,
drift, bitrate and ``--randomize`` — each checked against the truth it writes."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rb2v.alignment import Exposure, Lens
from rb2v.errors import Rb2vError
from rb2v.io.images import apply_flip
from rb2v.io.video import open_source, probe, read_frames
from rb2v.metrics import psnr
from rb2v.simulate import SimConfig, TakeSimulation, simulate_session
from rb2v.simulate.config import anchor_offset
from rb2v.simulate.lens import BOARD_INNER, BOARD_SQUARE_MM, pinhole
from rb2v.simulate.oracle import truth_alignment
from rb2v.simulate.timing import (
    BITRATE_RANGE,
    BOARD_REACH_RANGE,
    DISTORTION_K1_RANGE,
    DISTORTION_K2_RANGE,
    READOUT_RANGE,
    draw_distortion,
)

SMALL = {"width": 480, "height": 480, "seconds": 1.0}
NAMES = {"subject": "s", "take": "t", "blur_files": [], "sharp_files": []}


def _truth(sim: TakeSimulation) -> dict:
    return json.loads(json.dumps(sim.truth(NAMES)))  # as read back from truth.json


def _global_frame(sim: TakeSimulation, cam_name: str, t_own: float, length_s: float) -> np.ndarray:
    """Noiseless global-shutter frame of camera ``cam_name`` whose exposure (``length_s``) is centred on ``t_own``."""
    cam = sim.blur if cam_name == "blur" else sim.sharp
    n = max(1, int(np.ceil(length_s * sim.cfg.internal_fps - 1e-9)))
    own = t_own + length_s * ((np.arange(n) + 0.5) / n - 0.5)
    world = own if cam_name == "blur" else sim.sharp_to_world(own)
    return cam.film(sim.scene, world, (sim.cfg.width, sim.cfg.height), None)[0]


@pytest.mark.parametrize("anchor", ["start", "end", 0.004])
def test_blur_frame_averages_the_stated_window_for_any_anchor(anchor):
    cfg = SimConfig(category="street", seed=21, blur_anchor=anchor, blur_exposure_s=1 / 50, **SMALL)
    sim = TakeSimulation(cfg, 0, 0)
    e = Exposure.from_json(_truth(sim)["exposure"]["blur"], "truth")
    assert e.start_s == pytest.approx(-anchor_offset(anchor, 1 / 50)) and e.length_s == pytest.approx(1 / 50)
    k = 11
    frame, _ = sim.film_blur(k, noise=False)
    n = int(np.ceil(e.length_s * cfg.internal_fps))
    times = k / cfg.blur_fps + e.start_s + e.length_s * (np.arange(n) + 0.5) / n  # the stated window
    size = (cfg.width, cfg.height)
    radiance = np.zeros((cfg.height, cfg.width, 3), np.float32)
    for t in times:
        radiance += sim.scene.render(np.eye(3), t, size)[0]
    radiance *= np.float32(1 / n)
    np.testing.assert_allclose(frame, sim.blur.develop(radiance, np.zeros(radiance.shape[:2]), None)[0], atol=2e-5)
    # the anchor matters: the window centred on the timestamp gives another frame
    assert psnr(frame, _global_frame(sim, "blur", k / cfg.blur_fps, e.length_s)) < 40


@pytest.mark.parametrize("mount", ["upright", "upside-down"])
def test_rolling_shutter_rows_are_exposed_when_the_truth_says(mount):
    """Sharp camera, vertical mirror flip, 10 ms readout: a band of rows at the top and one at the bottom
    of a moving scene each match a global-shutter render at that band's true time, not ±2-4 ms off.
    Mounted upside down, the sensor reads the upright frame bottom up: the top band comes 10 ms later."""
    upside_down = mount == "upside-down"
    cfg = SimConfig(
        category="street",
        seed=22,
        flip="vertical",
        upside_down=(False, upside_down),
        sharp_readout_s=0.010,
        sharp_exposure_s=1 / 1000,
        sharp_anchor="start",
        motion_scale=4.0,
        internal_fps=2000.0,
        **SMALL,
    )
    sim = TakeSimulation(cfg, 0, 0)
    e = Exposure.from_json(_truth(sim)["exposure"]["sharp"], "truth")
    sign = -1 if upside_down else 1
    # anchored at the start of the first row read: the bottom one, when upside down
    assert e.readout_s == pytest.approx(sign * 0.010) and e.start_s == (0.010 if upside_down else 0.0)
    i = 40
    frame, _ = sim.film_sharp(i, noise=False)
    H = cfg.height
    found = {}
    for name, (r0, r1) in {"top": (24, 40), "bottom": (H - 40, H - 24)}.items():
        t_band = i / cfg.sharp_fps + e.centre_s((r0 + r1 - 1) / 2 / (H - 1))  # own clock
        assert sim.row_times("sharp", i)[(r0 + r1) // 2] == pytest.approx(sim.sharp_to_world(t_band), abs=2e-4)
        errors = {}
        for d_ms in (-4, -2, 0, 2, 4):
            ref = _global_frame(sim, "sharp", t_band + d_ms / 1000, e.length_s)
            errors[d_ms] = float(np.mean((frame[r0:r1, 40:-40] - ref[r0:r1, 40:-40]) ** 2))
        assert min(errors, key=errors.get) == 0, (name, errors)
        assert errors[0] * 10 < min(errors[-2], errors[2]), (name, errors)
        found[name] = t_band
    assert found["bottom"] - found["top"] == pytest.approx(sign * 0.010 * (H - 40 - 24) / (H - 1))


@pytest.mark.parametrize("tagged", [True, False])
def test_an_upside_down_camera_is_written_as_it_would_record(tmp_path, tagged):
    """With a rotation tag the file stores the sensor's frames turned and a display matrix that turns them
    back (read upright, as players show them); without, the pixels are already upright."""
    small = {**SMALL, "seconds": 0.5}
    cfg = SimConfig(category="street", seed=23, audio=False, upside_down=(False, True), rotation_tag=tagged, **small)
    (take,) = simulate_session(tmp_path, cfg, progress=False)
    sim = TakeSimulation(cfg, 0, 0)
    files = json.loads((take / "truth.json").read_text())["sharp_files"]
    info = probe(take / files[0])
    assert info.rotation % 360 == (180 if tagged else 0)
    frames = read_frames(open_source([take / f for f in files]), 10, 2)
    for i, decoded in zip((10, 11), frames.astype(np.float32) / 255):
        shown = sim.film_sharp(i)[0]
        # measured 32.3 dB (the camera's noise through the codec) against 8.5 dB turned
        assert psnr(decoded, shown) > 30 and psnr(decoded, shown[::-1, ::-1]) < 15


def test_randomize_is_deterministic_per_seed_and_differs_across_takes():
    cfg = SimConfig(category="street", seed=23, randomize=True, **SMALL)
    a, b = TakeSimulation(cfg, 0, 0).settings, TakeSimulation(cfg, 0, 0).settings
    assert a == b
    others = [TakeSimulation(cfg, 0, 1).settings, TakeSimulation(cfg, 1, 0).settings]
    others.append(TakeSimulation(SimConfig(category="street", seed=24, randomize=True, **SMALL), 0, 0).settings)
    for o in others:
        assert o.exposure["blur"] != a.exposure["blur"] and o.bitrate_mbps != a.bitrate_mbps
    for s in (a, *others):
        blur, sharp = s.exposure["blur"], s.exposure["sharp"]
        assert 1 / 100 <= blur.length_s <= 1 / 25 and sharp.length_s <= 1 / 100
        for e in (blur, sharp):
            assert -e.length_s <= e.start_s <= 0  # the timestamp is somewhere in [start, end] of the exposure
        assert READOUT_RANGE[0] <= blur.readout_s <= READOUT_RANGE[1] and READOUT_RANGE[0] <= sharp.readout_s <= 0.010
        assert BITRATE_RANGE[0] <= s.bitrate_mbps <= BITRATE_RANGE[1]
        assert s.exposure_drift > 0 and s.wb_drift > 0
    # lenses are the session's (its calibration take films them): same for every take, drawn per seed
    assert cfg.distortion_blur and cfg.distortion_sharp and cfg.distortion_blur != cfg.distortion_sharp
    assert SimConfig(category="street", seed=24, randomize=True).distortion_blur != cfg.distortion_blur
    assert not SimConfig(category="street", seed=23, randomize=True, randomize_lens=False).distorted
    assert BOARD_REACH_RANGE[0] <= cfg.board_reach <= BOARD_REACH_RANGE[1]
    # the scene, clocks and rig do not depend on the draws
    plain = TakeSimulation(SimConfig(category="street", seed=23, **SMALL), 0, 0)
    rand = TakeSimulation(cfg, 0, 0)
    assert plain.time_offset_s == rand.time_offset_s and np.array_equal(plain.homography, rand.homography)


def test_truth_exposure_block_round_trips_and_predicts_the_start():
    sim = TakeSimulation(SimConfig(category="street", seed=25, randomize=True, **SMALL), 0, 0)
    truth = _truth(sim)
    assert truth["timestamp_convention"] == "see exposure"
    lens = {c: Lens.from_json(truth["lens"][c], "truth.json") for c in ("blur", "sharp")}  # drawn per session
    assert all(DISTORTION_K1_RANGE[0] <= abs(v.dist_coeffs[0]) <= DISTORTION_K1_RANGE[1] for v in lens.values())
    assert all(DISTORTION_K2_RANGE[0] <= abs(v.dist_coeffs[1]) <= DISTORTION_K2_RANGE[1] for v in lens.values())
    assert lens["blur"].dist_coeffs != lens["sharp"].dist_coeffs
    for cam in ("blur", "sharp"):
        e = Exposure.from_json(truth["exposure"][cam], "truth.json")
        assert e.method == "truth" and e.to_json() == truth["exposure"][cam] and e == sim.exposure[cam]
    alignment = truth_alignment(truth, {"x": 0, "y": 0, "width": 448, "height": 448})
    for k in (0, 5, 17):
        assert alignment.predicted_start(k, 2, 7) == pytest.approx(truth["sharp_start_exact"][k], abs=1e-9)
    # default: centred, no readout — the historical truth
    plain = _truth(TakeSimulation(SimConfig(category="street", seed=25, **SMALL), 0, 0))
    assert plain["timestamp_convention"] == "exposure centre" and plain["color_matrix_per_frame"] is None
    assert plain["lens"] is None
    assert plain["exposure"]["blur"]["start_s"] == -plain["exposure"]["blur"]["length_s"] / 2


def test_sharp_start_truth_follows_a_non_centre_anchor():
    """Anchor at the exposure end: the synthetic blur of the window the truth names reproduces the blurry
    frame; the window the centred convention would name (about 3 steps later) does not."""
    cfg = SimConfig(category="street", seed=26, blur_anchor="end", **SMALL)
    sim = TakeSimulation(cfg, 0, 0)
    truth = _truth(sim)
    k = 12
    blur, _ = sim.film_blur(k, noise=False)
    C = sim.color_matrix
    crop = (slice(40, -40), slice(60, -60))

    def synth(p):
        sub = [_global_frame(sim, "sharp", (p + j / 3) / 200, cfg.sharp_exposure_s) for j in range(19)]
        un = np.ascontiguousarray(apply_flip(np.mean(sub, axis=0), cfg.flip))
        warped = cv2.warpPerspective(un, sim.homography, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR)
        return psnr((warped @ C[:, :3].T + C[:, 3])[crop], blur[crop])

    p = truth["sharp_start"][k]
    assert abs(truth["sharp_start_exact"][k] - p) <= 0.5
    centred = truth["sharp_start_exact"][k] + 2 * cfg.sharp_fps * cfg.blur_exposure_s / 2  # timestamp = centre
    shift = int(round(centred)) - p
    assert shift == 3
    scores = {d: synth(p + d) for d in (0, shift)}
    assert scores[0] > 33 and scores[0] > scores[shift] + 3, scores


def test_drift_truth_per_frame_colour_map():
    cfg = SimConfig(category="street", seed=27, motion_scale=0.0, exposure_drift=0.08, wb_drift=0.05, **SMALL)
    sim = TakeSimulation(cfg, 0, 0)
    truth = _truth(sim)
    gains = np.array(truth["gains"]["blur"])
    assert gains.shape == (sim.blur_frames, 3) and gains.std(axis=0).max() > 0.005
    k = 20
    blur, _ = sim.film_blur(k, noise=False)
    i = int(round((truth["sharp_start_exact"][k] + 3) / 2))
    sharp, _ = sim.film_sharp(i, noise=False)
    un = np.ascontiguousarray(apply_flip(sharp, cfg.flip))
    warped = cv2.warpPerspective(un, sim.homography, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR)
    crop = (slice(40, -40), slice(60, -60))

    def score(M):
        M = np.asarray(M)
        return psnr(np.clip(warped @ M[:, :3].T + M[:, 3], 0, 1)[crop], blur[crop])

    good = score(truth["color_matrix_per_frame"][k])
    assert good > 35 and good > score(truth["color_matrix"]) + 1, (good, score(truth["color_matrix"]))


def rb2v(*args):
    return subprocess.run([sys.executable, "-m", "rb2v", *map(str, args)], capture_output=True, text=True)


def test_cli_randomize_writes_the_draws_and_the_bitrate(tmp_path):
    raw = tmp_path / "raw"
    pinholes = ["--distortion-blur", "0", "--distortion-sharp", "0"]  # given lenses are kept: no board take here
    falloff = ["--vignetting", "0.2", "0.1", "--splitter-gradient", "0.04"]  # passed through, never drawn
    r = rb2v(
        "simulate-rig",
        raw,
        "--seconds",
        0.5,
        "--size",
        "512x512",
        "--randomize",
        "--seed",
        28,
        "--no-audio",
        *pinholes,
        *falloff,
    )
    assert r.returncode == 0, r.stderr
    take = raw / "street" / "subject01" / "take01"
    truth = json.loads((take / "truth.json").read_text())
    assert truth["sim_config"]["randomize"] and truth["exposure"]["blur"]["method"] == "truth"
    assert truth["lens"] is None and not (raw / "calibration").exists()
    assert truth["sim_config"]["vignetting"] == [0.2, 0.1] and truth["sim_config"]["splitter_gradient"] == 0.04
    expected = TakeSimulation(SimConfig(**truth["sim_config"]), 0, 0).settings
    assert truth["camera_settings"] == json.loads(json.dumps(expected.to_json()))
    src = open_source([take / f for f in truth["blur_files"]])
    bits = sum(p.stat().st_size for p in src.paths) * 8 / (src.frames / 25)
    target = expected.bitrate_bps(512, 512)
    assert 0.6 * target < bits < 1.4 * target, (bits, target)
    assert probe(src.paths[0]).fps == 25


@pytest.mark.parametrize(
    "args, message",
    [
        (["--exposure-anchor", "middle"], "exposure anchor must be start, centre, end"),
        (["--readout-sharp", "0.02"], "sharp readout must be between 0 and the frame period"),
        (["--blur-exposure", "0.05"], "blur exposure must be within one blur frame period"),
        (["--bitrate", "-3"], "--bitrate must be positive"),
        (["--board-reach", "0.5"], "--board-reach must be between 0 and 0.35"),
        (["--board", "aruco"], "'aruco' is not one of 'checkerboard', 'charuco'"),
        (["--vignetting", "0.7", "0"], "--vignetting must be 0 to 0.6 for each camera, got (0.7, 0.0)"),
        (["--splitter-gradient", "-0.5"], "--splitter-gradient must be within ±0.3, got -0.5"),
    ],
)
def test_cli_refuses_impossible_conventions(tmp_path, rb2v_here, args, message):
    r = rb2v_here("simulate-rig", tmp_path / "raw", *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def _board_coverage(cfg: SimConfig) -> tuple[float, int]:
    """The fraction of the frame inside the hull of the board's inner corners over the calibration
    take's poses (as the blur camera's pinhole sees them), and how many poses leave the frame."""
    board = TakeSimulation(cfg, 0, 0, calibration=True).scene
    cols, rows = BOARD_INNER
    obj = np.array([[i, j, 0] for j in range(rows) for i in range(cols)], np.float64) * BOARD_SQUARE_MM
    pts, outside = [], 0
    for rvec, t in board.poses:
        p = cv2.projectPoints(obj, rvec, t, board.K, None)[0].reshape(-1, 2)
        outside += not ((p >= 0).all() and (p[:, 0] < cfg.width).all() and (p[:, 1] < cfg.height).all())
        pts.append(p)
    hull = cv2.convexHull(np.concatenate(pts).astype(np.float32))
    return cv2.contourArea(hull) / (cfg.width * cfg.height), outside


def test_randomize_draws_k2_and_how_far_out_the_board_is_held():
    """--randomize draws each lens's k2 and the calibration board's reach per session (the k1 a seed
    drew before k2 existed is kept); a board held farther out covers more of the frame, and stays in it."""
    draws = [draw_distortion(seed) for seed in range(40)]
    k2 = np.array([[blur[1], sharp[1]] for blur, sharp, _ in draws])
    reach = np.array([r for *_, r in draws])
    assert (np.abs(k2) <= DISTORTION_K2_RANGE[1]).all() and (k2 > 0).any() and (k2 < 0).any()
    assert BOARD_REACH_RANGE[0] <= reach.min() and reach.max() <= BOARD_REACH_RANGE[1] and np.ptp(reach) > 0.1
    old = np.random.default_rng([8, 7283])  # the draw before k2: k1 from the first four numbers
    k1 = old.uniform(*DISTORTION_K1_RANGE, size=2) * old.choice([-1.0, 1.0], size=2)
    blur, sharp, _ = draw_distortion(7283)
    assert (blur[0], sharp[0]) == (k1[0], k1[1])

    lenses = {"distortion_blur": (-0.05,), "distortion_sharp": (0.04,), **SMALL, "width": 640, "height": 544}
    near, near_out = _board_coverage(SimConfig(category="street", seed=3, **lenses))
    far, far_out = _board_coverage(SimConfig(category="street", seed=3, board_reach=0.35, **lenses))
    assert 0.35 < near < 0.47 and 0.53 < far < 0.65 and near_out == far_out == 0


def test_rig_drift_moves_the_sharp_camera_of_every_take_but_the_calibration_take():
    """``--rig-drift PX``: the rig bumped after its calibration take. Every other take's true homography
    differs from the calibration take's by a turn and a shift of the sharp camera's view that move the
    frame's corners by at most PX, each take by its own; the calibration take is the rig's as before."""
    still = SimConfig(category="hand", seed=41, **SMALL)
    bumped = SimConfig(category="hand", seed=41, rig_drift_px=4.0, **SMALL)
    rig = TakeSimulation(still, 0, 0, calibration=True).homography
    assert np.array_equal(TakeSimulation(bumped, 0, 0, calibration=True).homography, rig)
    assert np.array_equal(TakeSimulation(still, 0, 1).homography, rig)
    corners = np.float64([[0, 0], [479, 0], [479, 479], [0, 479]]).reshape(-1, 1, 2)
    moves = []
    for take in range(4):
        H = TakeSimulation(bumped, 0, take).homography
        moves.append(
            np.linalg.norm(cv2.perspectiveTransform(corners, H) - cv2.perspectiveTransform(corners, rig), axis=2)
        )
    most = [float(m.max()) for m in moves]
    assert all(3.2 < m <= 4.0 * 1.03 for m in most), most  # the sharp view's scale is within 2 % of the blur's
    assert len({round(m, 6) for m in most}) == 4
    with pytest.raises(Rb2vError, match="--rig-drift"):
        SimConfig(category="hand", rig_drift_px=-1.0).validate()


def test_a_rig_moved_in_3d_turns_the_sharp_camera_and_leaves_a_keystone():
    """``--rig-moves-3d``: a bump turns the sharp camera about its centre of projection (pan, tilt, roll about a
    random axis) instead of turning and shifting its picture. It moves the frame's corners by PX at most (by PX
    exactly), but a pan or tilt leaves a keystone: the best turn and shift of the picture over the whole frame
    leave 0.29-0.68 px of a 2 px bump at its corners (6 draws), where they take up a bump in 2-D exactly."""
    from rb2v.align.geometry import apart_at_corners, turn_onto
    from rb2v.simulate.camera import rig_drift

    W, H = 640, 544
    box = (0, 0, W - 1, H - 1)
    corners = np.float64([[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1]]).reshape(-1, 1, 2)
    grid = np.stack(np.meshgrid(np.linspace(0, W - 1, 30), np.linspace(0, H - 1, 30)), -1).reshape(-1, 2)
    left = {}
    for in_3d in (False, True):
        left[in_3d] = []
        for seed in range(6):
            M = rig_drift(np.random.default_rng(seed), W, H, 2.0, in_3d)
            reach = np.linalg.norm(cv2.perspectiveTransform(corners, M) - corners, axis=2).max()
            assert abs(reach - 2.0) < 1e-3 if in_3d else reach <= 2.0 + 1e-9
            moved = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), M).reshape(-1, 2)
            left[in_3d].append(apart_at_corners(turn_onto(np.eye(3), (grid, moved), box)[0], M, box))
    assert max(left[False]) < 1e-3 and min(left[True]) > 0.2 and max(left[True]) > 0.5, left
    cfg = SimConfig(category="hand", seed=41, rig_drift_px=2.0, rig_moves_3d=True, **SMALL)
    assert TakeSimulation(cfg, 0, 1).homography[2, :2].any()


def test_a_rig_knocked_mid_take_moves_the_sharp_view_from_then_on():
    """``--bump PX``: halfway through a take the sharp camera turns and shifts; truth states when and the
    homography after. Sharp frames before the knock are the rigid rig's, frames after see the moved view."""
    rigid = TakeSimulation(SimConfig(category="street", seed=42, **SMALL), 0, 0)
    knocked = TakeSimulation(SimConfig(category="street", seed=42, bump_px=3.0, **SMALL), 0, 0)
    bump = _truth(knocked)["bump"]
    assert _truth(rigid)["bump"] is None and bump["at_s"] == pytest.approx(knocked.blur_frames / 2 / 25)
    corners = np.float64([[0, 0], [479, 0], [479, 479], [0, 479]]).reshape(-1, 1, 2)
    H0, H1 = knocked.homography, np.asarray(bump["homography"])
    moved = np.linalg.norm(cv2.perspectiveTransform(corners, H1) - cv2.perspectiveTransform(corners, H0), axis=2)
    assert 2.4 < moved.max() <= 3.0 * 1.03, moved
    first = int(knocked.sharp_frames * 0.2)  # well before the knock (sharp clock ahead by the offset)
    last = knocked.sharp_frames - 3
    same = sim_frame(knocked, first), sim_frame(rigid, first)
    assert np.array_equal(*same)
    assert psnr(sim_frame(knocked, last), sim_frame(rigid, last)) < 35
    with pytest.raises(Rb2vError, match="--bump"):
        SimConfig(category="street", bump_px=-1.0).validate()


def sim_frame(sim: TakeSimulation, i: int) -> np.ndarray:
    return sim.film_sharp(i, noise=False)[0]


def test_a_charuco_calibration_take_names_its_markers_and_shows_them():
    """``--board charuco``: board.toml names the markers, and the board's white squares hold them (the
    rendered texture differs from the checkerboard's only inside the white squares)."""
    from rb2v.simulate.lens import board_toml

    text = board_toml("charuco")
    assert 'type = "charuco"' in text and "marker_mm = 18.0" in text and 'dictionary = "DICT_5X5_100"' in text
    cfg = dict(category="street", seed=5, distortion_blur=(-0.05,), **SMALL)
    plain = TakeSimulation(SimConfig(**cfg), 0, 0, calibration=True).scene.texture
    marked = TakeSimulation(SimConfig(board="charuco", **cfg), 0, 0, calibration=True).scene.texture
    changed = plain != marked
    assert changed.any() and (plain[changed] == 0.75).all() and (marked[changed] == 0.02).all()
    with pytest.raises(Rb2vError, match="--board must be one of checkerboard, charuco"):
        SimConfig(category="hand", board="aruco").validate()


@pytest.mark.parametrize("distorted", ["blur", "sharp"])
def test_a_board_take_is_filmed_by_a_pinhole_camera_beside_a_distorted_one(distorted):
    """One lens distorted, the other a pinhole (``--distortion-blur -0.05`` alone): the pinhole camera filmed
    the board take through ``BoardScene.render`` with the parallax argument it did not take, and
    simulate-rig stopped with an internal error. Both cameras now show the board's inner corners."""
    sim = TakeSimulation(
        SimConfig(category="street", seed=5, **{f"distortion_{distorted}": (-0.05,)}, **SMALL), 0, 0, calibration=True
    )
    for film in (sim.film_blur, sim.film_sharp):
        grey = cv2.cvtColor((film(0, noise=False)[0] * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
        found, _ = cv2.findChessboardCorners(grey, BOARD_INNER)
        assert found, film.__name__


@pytest.mark.parametrize("flip", ["horizontal", "vertical"])
def test_sharp_lens_is_a_physical_camera_as_truth_states_it(flip):
    """The sharp camera (rig homography, lens, mirror flip) projects 3-D points exactly as the pinhole
    and lens in truth.json say, under some pose: its lens is centred on its own principal point (the
    simulator used to centre it on the frame, which only a decentred lens with p1 p2 could mimic)."""
    sim = TakeSimulation(SimConfig(category="street", seed=25, randomize=True, flip=flip, **SMALL), 0, 0)
    true = Lens.from_json(_truth(sim)["lens"]["sharp"], "truth.json")
    w, h = SMALL["width"], SMALL["height"]
    assert np.hypot(*(true.K[:2, 2] - ((w - 1) / 2, (h - 1) / 2))) > 2  # the principal point is not the centre
    rng = np.random.default_rng(0)
    z = rng.uniform(500, 2000, 200)
    X = np.stack([rng.uniform(-0.45, 0.45, 200) * z, rng.uniform(-0.45, 0.45, 200) * z, z], axis=1)
    seen = (pinhole(w, h) @ X.T).T  # the blur camera's undistorted pixels: canonical
    q = (np.linalg.inv(sim.sharp.G) @ seen.T).T
    recorded = sim.sharp.lens.distort_points(q[:, :2] / q[:, 2:])
    axis = 0 if flip == "horizontal" else 1
    recorded[:, axis] = (w, h)[axis] - 1 - recorded[:, axis]
    X[:, axis] *= -1  # a mirrored camera is a plain one looking at the mirrored points
    ok, rvec, tvec = cv2.solvePnP(X, recorded, true.K, true.dist, flags=cv2.SOLVEPNP_ITERATIVE)
    reproj = cv2.projectPoints(X, rvec, tvec, true.K, true.dist)[0].reshape(-1, 2)
    assert ok and np.abs(reproj - recorded).max() < 0.01, np.abs(reproj - recorded).max()


@pytest.mark.parametrize("sharp_size, lenses", [(None, True), ((320, 272), False), ((320, 272), True)])
def test_a_smaller_sharp_camera_is_where_truth_says(sharp_size, lenses):
    """A sharp camera recording fewer pixels (``sharp_size``, area-resampled from the render) is stated
    in its recorded pixels: truth's homography, flip and lens take a static frame of it onto the blur
    camera's to within 0.1 px (the pixel-centre convention alone would be 0.5 px off at half size)."""
    from rb2v.align.lens import frame_maps
    from rb2v.simulate.oracle import valid_crop

    def _maps(meta, cam):
        return [m.astype(np.float32) for m in frame_maps(meta, cam)]

    lens = {"distortion_blur": (-0.05, 0.01), "distortion_sharp": (0.04,)} if lenses else {}
    cfg = SimConfig(category="street", seconds=0.5, seed=5, motion_scale=0.0, sharp_size=sharp_size, **lens)
    cfg.validate()
    sim = TakeSimulation(cfg, 0, 0)
    truth = {**sim.view_truth(), "blur_fps": 25.0, "sharp_fps": 100.0, "time_offset_s": 0.0, "clock_ratio": 1.0}
    truth |= {"blur_frames": 1, "sharp_frames": 1}
    meta = truth_alignment(truth, valid_crop(truth, 384, 384))
    sharp = sim.film_sharp(12, noise=False)[0]
    assert sharp.shape == (*(sharp_size or (cfg.width, cfg.height))[::-1], 3)
    c = meta.crop
    if lenses:
        blur = cv2.remap(sim.film_blur(3, noise=False)[0], *_maps(meta, "blur"), cv2.INTER_LINEAR)
        sharp = cv2.remap(sharp, *_maps(meta, "sharp"), cv2.INTER_CUBIC)
    else:
        blur = sim.film_blur(3, noise=False)[0][c.y : c.y + c.height, c.x : c.x + c.width]
        shift = np.array([[1, 0, -c.x], [0, 1, -c.y], [0, 0, 1]], np.float64)
        sharp = cv2.warpPerspective(
            apply_flip(sharp, cfg.flip), shift @ meta.H, (c.width, c.height), flags=cv2.INTER_CUBIC
        )
    C = sim.color_matrix
    grey = [
        cv2.cvtColor(np.clip(im, 0, 1).astype(np.float32), cv2.COLOR_RGB2GRAY)
        for im in (blur, sharp @ C[:, :3].T + C[:, 3])
    ]
    (dx, dy), _ = cv2.phaseCorrelate(*grey, cv2.createHanningWindow((c.width, c.height), cv2.CV_32F))
    assert np.hypot(dx, dy) < 0.1, (dx, dy)
    with pytest.raises(Rb2vError, match="--sharp-size must be even and 0.4-1x"):
        SimConfig(sharp_size=(700, 544)).validate()
