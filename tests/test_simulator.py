"""The rig simulator's truth, checked against its own rendering and its own videos."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from rb2v.colorspace import linear_to_srgb_fast
from rb2v.errors import Rb2vError
from rb2v.io.images import apply_flip, read_image
from rb2v.io.video import group_chapters, open_source, read_audio, read_frames
from rb2v.metrics import psnr
from rb2v.simulate import SimConfig, TakeSimulation, load_take, simulate_session


def to_blur_view(sim: TakeSimulation, sharp_frame: np.ndarray, H=None, flip=None) -> np.ndarray:
    """Undo the mirror, warp by the homography, map the colours: the sharp frame as the blur camera sees it."""
    H = sim.homography if H is None else H
    un = np.ascontiguousarray(apply_flip(sharp_frame, sim.cfg.flip if flip is None else flip))
    warped = cv2.warpPerspective(un, H, (sim.cfg.width, sim.cfg.height), flags=cv2.INTER_LINEAR)
    C = sim.color_matrix
    return warped @ C[:, :3].T + C[:, 3]


def valid_mask(sim: TakeSimulation, *images) -> np.ndarray:
    """Inside both views, away from the rig's borders and from clipped colours."""
    h, w = sim.cfg.height, sim.cfg.width
    ones = np.ones((h, w), np.float32)
    inside = cv2.warpPerspective(ones, sim.homography, (w, h)) > 0.999
    inside = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    m = inside.copy()
    m[:, :40] = m[:, -40:] = False
    m[:24] = m[-24:] = False
    for img in images:
        m &= np.all((img > 0.01) & (img < 0.99), axis=-1)
    return m


def sharp_at(sim: TakeSimulation, t_sharp: float) -> np.ndarray:
    """Noiseless sharp-camera frame at any time of its own clock (the 'true' interpolated frame)."""
    cam = sim.sharp
    times = sim.sharp_to_world(cam.subframe_times(t_sharp, sim.cfg.internal_fps))
    return cam.film(sim.scene, times, (sim.cfg.width, sim.cfg.height), None)[0]


def test_same_seed_same_session_different_seed_different():
    cfg = SimConfig(category="street", seconds=1, seed=3)
    a, b = TakeSimulation(cfg, 0, 0), TakeSimulation(cfg, 0, 0)
    np.testing.assert_array_equal(a.film_blur(4)[0], b.film_blur(4)[0])
    np.testing.assert_array_equal(a.film_sharp(17)[0], b.film_sharp(17)[0])
    c = TakeSimulation(SimConfig(category="street", seconds=1, seed=4), 0, 0)
    assert not np.allclose(a.homography, c.homography)
    assert a.time_offset_s != TakeSimulation(cfg, 0, 1).time_offset_s  # per take


def test_blur_frame_is_the_exposure_average_of_its_subframes():
    sim = TakeSimulation(SimConfig(category="street", seconds=1, seed=1), 0, 0)
    k = 9
    frame, _ = sim.film_blur(k, noise=False)
    times = sim.blur_subframe_times(k)
    assert len(times) >= 0.0316 * 400  # integrated at >= 400 fps
    assert times.max() - times.min() == pytest.approx(sim.cfg.blur_exposure_s * (1 - 1 / len(times)))
    radiance = np.mean([sim.scene.render(np.eye(3), t, (sim.cfg.width, sim.cfg.height))[0] for t in times], axis=0)
    encoded = linear_to_srgb_fast(radiance) @ sim.blur.colour[:, :3].T + sim.blur.colour[:, 3]
    expected = np.clip(encoded * sim.blur.borders[..., None], 0, 1)
    np.testing.assert_allclose(frame, expected, atol=2e-5)
    # and the scene really moves during the exposure
    size = (sim.cfg.width, sim.cfg.height)
    first, last = (sim.blur.film(sim.scene, t, size, None)[0] for t in (times[:1], times[-1:]))
    assert psnr(first, last) < 30


def test_true_homography_flip_and_colour_map_sharp_onto_blur():
    sim = TakeSimulation(SimConfig(category="street", seconds=1, seed=5, motion_scale=0.0), 0, 0)
    blur, _ = sim.film_blur(3)
    sharp, _ = sim.film_sharp(20)
    mapped = to_blur_view(sim, sharp)
    m = valid_mask(sim, blur, mapped)
    assert m.mean() > 0.5
    good = psnr(mapped, blur, mask=m)
    assert good > 33, good  # both cameras' sensor noise (noiseless: 40 dB, the resampling limit)
    # each part of the truth matters: a wrong flip, a 1 px shift or no colour map is far worse
    assert psnr(to_blur_view(sim, sharp, flip="none"), blur, mask=m) < good - 15
    shifted = sim.homography.copy()
    shifted[0, 2] += 1.0
    assert psnr(to_blur_view(sim, sharp, H=shifted), blur, mask=m) < good - 3
    raw = cv2.warpPerspective(np.ascontiguousarray(sharp[:, ::-1]), sim.homography, (sim.cfg.width, sim.cfg.height))
    assert psnr(raw, blur, mask=m) < good - 6


@pytest.mark.parametrize(
    "vignetting, gradient, expect",
    [
        ((0.0, 0.0), 0.0, {"left": 1.0, "right": 1.0, "outer": 1.0}),
        # the splitter's split ratio: the blur view darker on its left, the sharp view on its right
        ((0.0, 0.0), 0.1, {"left": 0.953, "right": 1.053}),
        ((0.3, 0.0), 0.0, {"left": 0.958, "right": 0.956, "outer": 0.938}),  # the blur camera's vignetting
        ((0.0, 0.3), 0.0, {"left": 1.057, "right": 1.055, "outer": 1.081}),  # the sharp camera's
    ],
)
def test_light_fall_off_differs_between_the_views_as_configured(vignetting, gradient, expect):
    """The blurry frame over the sharp frame mapped onto it (sRGB, a still scene), in the left and right thirds
    and outside the middle 60 % of the width: 1 where neither camera loses light, as the fall-off says where
    one does (measured values; a sign or axis error moves them by 0.05 or more)."""
    cfg = SimConfig(category="street", seconds=1, seed=5, motion_scale=0.0)
    sim = TakeSimulation(dataclasses.replace(cfg, vignetting=vignetting, splitter_gradient=gradient), 0, 0)
    blur, mapped = sim.film_blur(3)[0], to_blur_view(sim, sim.film_sharp(20)[0])
    m = valid_mask(sim, blur, mapped)
    ratio = (blur / np.maximum(mapped, 1e-3)).mean(-1)
    x = np.arange(blur.shape[1])[None, :] / blur.shape[1]
    parts = {"left": m & (x < 1 / 3), "right": m & (x > 2 / 3), "outer": m & (np.abs(x - 0.5) > 0.3)}
    for part, want in expect.items():
        assert abs(np.median(ratio[parts[part]]) - want) < 0.012, (part, np.median(ratio[parts[part]]), want)


def test_sharp_start_truth_puts_the_window_on_the_exposure():
    """The synthetic blur of the true 7-frame window (19 sub-frames) reproduces the blur frame;
    windows shifted by two steps do not. This pins the time convention of truth.json."""
    sim = TakeSimulation(SimConfig(category="street", seconds=1, seed=2), 0, 0)
    truth = sim.truth({"subject": "s", "take": "t", "blur_files": [], "sharp_files": []})
    k = 12
    blur, _ = sim.film_blur(k, noise=False)
    scores = {}
    for shift in (-2, 0, 2):
        p = truth["sharp_start"][k] + shift
        subframes = [sharp_at(sim, (p + j / 3) / 200) for j in range(19)]  # x[p..p+6] at 1/3 steps
        synth = to_blur_view(sim, np.mean(subframes, axis=0))
        scores[shift] = psnr(synth, blur, mask=valid_mask(sim, blur, synth))
    assert scores[0] > 33, scores
    assert scores[0] > max(scores[-2], scores[2]) + 3, scores


def test_green_screen_alpha_is_exact_and_blurred():
    sim = TakeSimulation(SimConfig(category="hand", seconds=1, seed=0), 0, 0)
    frame, alpha = sim.film_blur(7, noise=False)
    assert 0.03 < alpha.mean() < 0.6

    def band(a):
        return np.mean((a > 0.02) & (a < 0.98))

    ks = range(2, 20, 4)
    band_blur = np.mean([band(sim.film_blur(k, noise=False)[1]) for k in ks])
    band_sharp = np.mean([band(sim.film_sharp(4 * k + 10, noise=False)[1]) for k in ks])
    assert band_blur > 2 * band_sharp  # motion blur widens the fractional band
    # where alpha is 0 the frame is the green screen; a replaced backdrop shows instead
    screen = frame[(alpha == 0) & (sim.blur.borders > 0.999)]
    assert np.all(screen[:, 1] > screen[:, 0]) and np.all(screen[:, 1] > screen[:, 2])
    grey = np.full((sim.cfg.height, sim.cfg.width, 3), 0.5, np.float32)
    replaced, alpha2 = sim.film_blur(7, noise=False, backdrop=grey)
    np.testing.assert_array_equal(alpha2, alpha)
    inside = (alpha == 0) & (sim.blur.borders > 0.999)
    expected = np.clip(sim.blur.colour[:, :3] @ np.full(3, 0.5) + sim.blur.colour[:, 3], 0, 1)
    np.testing.assert_allclose(replaced[inside].mean(axis=0), expected, atol=0.005)


@pytest.fixture(scope="module")
def written_session(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    cfg = SimConfig(category="face", seconds=1.0, seed=11, chapter_seconds=0.6)
    simulate_session(raw, cfg, progress=False)
    return raw, cfg


def test_written_tree_matches_truth(written_session):
    raw, cfg = written_session
    take = raw / "face" / "subject01" / "take01"
    truth = json.loads((take / "truth.json").read_text())
    assert truth["schema"] == "rb2v.truth/1" and truth["calibration"] == "face-rig"
    assert (raw / "calibration" / "face-rig" / "truth.json").exists()
    assert 'calibration = "face-rig"' in (take / "take.toml").read_text()
    groups = group_chapters(take.glob("*.MP4"))
    assert sorted(len(g) for g in groups) == [2, 3]  # 1 s at 25 fps, ~1.3 s at 100 fps, 0.6 s chapters
    blur = open_source([take / f for f in truth["blur_files"]])
    sharp = open_source([take / f for f in truth["sharp_files"]])
    assert (blur.fps, sharp.fps) == (25, 100)
    assert (blur.frames, sharp.frames) == (truth["blur_frames"], truth["sharp_frames"])
    assert blur.paths[0].name[4:8] != sharp.paths[0].name[4:8]  # separate camera counters
    sim = load_take(take)
    for k in (0, 20):
        decoded = read_frames(blur, k, 1)[0].astype(np.float32) / 255
        assert psnr(decoded, sim.film_blur(k)[0]) > 36
    i = 70  # in the second chapter
    decoded = read_frames(sharp, i, 1)[0].astype(np.float32) / 255
    assert psnr(decoded, sim.film_sharp(i)[0]) > 34
    alpha = read_image(take / (truth["alpha_sharp"] % i), dtype="uint16", unchanged=True)
    np.testing.assert_allclose(alpha / 65535.0, sim.film_sharp(i)[1], atol=1e-4)


def test_both_cameras_hear_the_same_sound_offset_by_the_truth(written_session):
    raw, _ = written_session
    take = raw / "face" / "subject01" / "take01"
    truth = json.loads((take / "truth.json").read_text())
    a, rate = read_audio(open_source([take / f for f in truth["blur_files"]]))
    b, _ = read_audio(open_source([take / f for f in truth["sharp_files"]]))
    n = min(len(a), len(b))
    spec = np.fft.rfft(b[:n], 2 * n) * np.conj(np.fft.rfft(a[:n], 2 * n))
    xc = np.fft.irfft(spec / (np.abs(spec) + 1e-9), 2 * n)  # GCC-PHAT
    lag = int(np.argmax(xc))
    lag = lag - 2 * n if lag > n else lag
    assert abs(lag / rate - truth["time_offset_s"]) < 2.5 / 1000  # sharp camera started earlier by the offset


def test_rerun_resumes_and_keeps_finished_takes(written_session):
    raw, cfg = written_session
    take = raw / "face" / "subject01" / "take01"
    before = {p: p.stat().st_mtime_ns for p in take.glob("*.MP4")}
    (raw / "face" / "subject01" / ".take02.xyz12345.partial").mkdir()  # debris of a killed run
    cfg2 = SimConfig(**{**cfg.as_dict(), "takes": 2, "seconds": 0.6, "chapter_seconds": 0.0})
    simulate_session(raw, cfg2, progress=False)
    assert {p: p.stat().st_mtime_ns for p in take.glob("*.MP4")} == before
    assert (raw / "face" / "subject01" / "take02" / "truth.json").exists()


def test_a_real_take_folder_of_the_same_name_is_never_replaced(tmp_path):
    """simulate-rig into a RAW folder holding real captures replaced a take folder of the same name."""
    take = tmp_path / "street" / "subject01" / "take01"
    take.mkdir(parents=True)
    (take / "GX010042.MP4").write_bytes(b"a real capture")
    cfg = SimConfig(category="street", seconds=0.5, seed=3, chapter_seconds=0.0)
    with pytest.raises(Rb2vError, match=r"take01: holds files but no truth.json, so it is not a simulated take"):
        simulate_session(tmp_path, cfg, progress=False)
    assert sorted(p.name for p in take.iterdir()) == ["GX010042.MP4"]


def test_rig_motion_scales_how_fast_the_whole_view_moves():
    """``--rig-motion``: the default rig sways by under a pixel a sharp frame, which let the exposure-length
    error under a walking rig's pan (several px a frame) go unseen by every simulated test."""
    from rb2v.simulate.scene import Scene

    def fastest(rig_motion):
        scene = Scene("street", np.random.default_rng([2, 6512]), 640, 544, 1.0, rig_motion=rig_motion)
        corners = np.array([[0, 639, 0, 639], [0, 0, 543, 543], [1, 1, 1, 1]], float)
        seen = []
        for t in np.arange(0, 3, 0.01):  # the sharp camera's frames
            q = np.linalg.inv(scene.backdrop_transform(t)) @ corners
            seen.append(q[:2] / q[2])
        return float(np.abs(np.diff(np.array(seen), axis=0)).max())

    gentle, walking = fastest(1.0), fastest(8.0)
    assert gentle < 1.0 and walking > 4.0 and 7.0 < walking / gentle < 9.0, (gentle, walking)
    with pytest.raises(Rb2vError, match="--rig-motion must be between 0 and 12"):
        SimConfig(rig_motion=13.0).validate()
