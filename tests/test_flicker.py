"""The sharp camera's flickering light: measured in align (``rb2v.align.flicker``), divided out in the build.

The thumbnails are rendered in linear light: a still textured backdrop (a green screen's shading) with a
bright subject crossing it, or a whole view panning, lit by a light that pulses at mains or PWM rates; the
sharp camera's short exposure samples the pulse, so each frame's light is known exactly.
"""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from rb2v.align import flicker
from rb2v.alignment import read_alignment
from rb2v.colorspace import linear_to_srgb, srgb_to_linear
from rb2v.dataset.stage import sharp_loader
from rb2v.dataset.takes import AlignedTake
from rb2v.errors import Rb2vError
from rb2v.io.images import read_image, write_image

FPS, EXPOSURE_S = 100.0, 1 / 800


def _light(kind: str, t: np.ndarray) -> np.ndarray:
    """Each frame's light: the pulse averaged over the short exposure (64 instants)."""
    ts = t[:, None] + (np.arange(64) / 63 - 0.5) * EXPOSURE_S
    if kind == "sine120":  # 60 Hz mains: the light pulses at 120 Hz, 40 % deep (beats at 20 Hz at 100 fps)
        return (1 + 0.4 * np.sin(2 * np.pi * 120 * ts + 2.1)).mean(axis=1)
    if kind == "pwm330":  # a PWM-dimmed LED: on a third of each 1/330 s cycle, off to 65 % between
        return np.where((ts * 330 + 0.4) % 1 < 0.3, 1.0, 0.65).mean(axis=1)
    return np.ones(len(t))


def _thumbnails(
    kind: str, scene: str, frames: int = 240, seed: int = 0, readout_s: float = 0.0, rows: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(luma thumbnails as the sync decodes them, 8-bit scale, sRGB-encoded and noisy; each frame's light, its
    middle row's under a rolling shutter of ``readout_s``, which exposes each row at its own time, or with
    ``rows`` each row's, (frames, rows))."""
    rng = np.random.default_rng(seed)
    h, w = 34, 40
    backdrop = cv2.GaussianBlur(rng.uniform(0.05, 0.6, (h, 3 * w)), (0, 0), 1.5)
    t = np.arange(frames) / FPS
    light = _light(kind, t)
    row_light = np.stack([_light(kind, t + (r / (34 - 1) - 0.5) * readout_s) for r in range(34)], axis=1)
    yy, xx = np.mgrid[0:h, 0:w]
    thumbs = []
    for i, ti in enumerate(t):
        if scene == "pan":  # the whole view moves, 0.4 thumbnail px a frame
            x0 = 0.4 * i % (2 * w)
            view = cv2.warpAffine(backdrop, np.float32([[1, 0, -x0], [0, 1, 0]]), (w, h), flags=cv2.INTER_LINEAR)
        else:  # a subject (a third of the frame) crossing a still backdrop
            view = backdrop[:, :w].copy()
            cx = 8 + 24 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * ti))
            view[(xx - cx) ** 2 + (yy - 17) ** 2 < 81] = (
                0.8 * (0.6 + 0.4 * np.sin(xx / 2.0))[(xx - cx) ** 2 + (yy - 17) ** 2 < 81]
            )
        encoded = linear_to_srgb(view * row_light[i][:, None]) * 255 + rng.normal(0, 0.3, (h, w))
        thumbs.append(encoded)
    return np.array(thumbs, np.float32), row_light if rows else light


@pytest.mark.parametrize("kind", ["sine120", "pwm330"])
def test_a_flickering_light_is_measured_frame_by_frame(kind):
    """Within the frames one sample takes (4 sharp frames) the measured light is right to 0.3 % (0.08 %
    measured here): the frames themselves differ by 39 % (PWM) and 116 % (sine)."""
    thumbs, light = _thumbnails(kind, "subject")
    measured = flicker.sharp_light(thumbs, FPS)
    assert measured.frames is not None and measured.rows is None and measured.step_rms > 0.1, measured.step_rms
    error = np.log(measured.frames) - np.log(light)  # the slow trend taken out is constant over 4 frames
    spread_in_sample = max(np.ptp(error[i : i + 4]) for i in range(len(error) - 3))
    true_spread = max(np.ptp(np.log(light[i : i + 4])) for i in range(len(light) - 3))
    assert spread_in_sample < 0.003 < 0.3 < true_spread, (spread_in_sample, true_spread)
    # relative to the light's mean, which the blurry frame's long exposure sees (its geometric mean is 3.9 %
    # under it for the sine, 0.8 % for the PWM)
    assert abs(np.median(measured.frames / (light / light.mean())) - 1) < 0.002


@pytest.mark.parametrize("scene", ["subject", "pan"])
def test_a_steady_light_is_left_alone(scene):
    """No flicker: nothing to divide out, whether a subject crosses a still backdrop or the view pans."""
    thumbs, _ = _thumbnails("steady", scene)
    measured = flicker.sharp_light(thumbs, FPS)
    assert measured.frames is None and measured.rows is None, measured
    assert measured.step_rms < flicker.MIN_STEP_RMS / 2 and measured.band_ptp < flicker.MIN_BAND_PTP / 4, measured


@pytest.mark.parametrize("kind", ["sine120", "pwm330"])
@pytest.mark.parametrize("scene", ["subject", "pan"])
def test_a_rolling_shutters_moving_bands_are_measured_row_by_row(kind, scene):
    """8 ms of readout under a pulsing light: each row sees another phase of the pulse, so bands move down the
    frame, 77 % (sine) and 33 % (PWM) apart within a sample's 4 frames, which one light per frame cannot even
    out. Each thumbnail row's light is measured within them to 0.4 % (median; at worst 0.7 %) on the still
    backdrop, 1.1 % (1.8 %) on the pan. Under the 120 Hz sine the frame's mean light changes by 1.1 % rms (the
    readout spans about one cycle), under the 2 % that says flicker: only the rows show it. A global shutter
    draws no bands, and no rows are measured."""
    rolling, truth = _thumbnails(kind, scene, frames=190, readout_s=0.008, rows=True)  # the pan wraps at 200
    measured = flicker.sharp_light(rolling, FPS)
    assert measured.band_ptp > 2 * flicker.MIN_BAND_PTP and measured.rows is not None
    error = np.log(measured.rows) - np.log(truth)
    spread = [np.ptp(error[i : i + 4], axis=0).max() for i in range(len(error) - 3)]
    true_spread = [np.ptp(np.log(truth[i : i + 4]), axis=0).max() for i in range(len(truth) - 3)]
    assert np.median(spread) < 0.012 and max(spread) < 0.025 < 0.3 < min(true_spread), (max(spread), min(true_spread))
    assert np.allclose(measured.frames, measured.rows.mean(axis=1))
    # against the mean light (the blurry frame's), not the geometric mean (3.9 % under it for the sine)
    assert abs(np.median(measured.rows / (truth / truth.mean())) - 1) < 0.002
    global_ = flicker.sharp_light(_thumbnails(kind, scene, frames=190)[0], FPS)
    assert global_.band_ptp < flicker.MIN_BAND_PTP / 4 and global_.rows is None


@pytest.mark.parametrize("flip", ["horizontal", "vertical"])
def test_bands_that_stand_still_are_measured_against_the_blurry_frames(flip):
    """A light pulsing at a multiple of the frame rate (100 Hz at 100 fps) draws the same bands on every sharp
    frame (here 0.8 of a cycle down the frame, ±30 %), which frame-to-frame changes cannot see; the blurry
    frames (the light's mean over whole cycles) show none. Against them each row's light is measured to 0.1 %
    (the sharp view flipped as the rig's mirror flips it); under a steady light nothing is changed."""
    from rb2v.align.geometry import flip_matrix

    rng = np.random.default_rng(0)
    h, w, frames, size = 34, 40, 160, (640, 544)
    backdrop = cv2.GaussianBlur(rng.uniform(0.05, 0.6, (h, w)), (0, 0), 1.5)
    yy, xx = np.mgrid[0:h, 0:w]
    views = []
    for i in range(frames):  # a subject crossing a still backdrop, as the recorded (raw) sharp frames see it
        view = backdrop.copy()
        inside = (xx - 8 - 24 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * i / FPS))) ** 2 + (yy - 17) ** 2 < 81
        view[inside] = (0.8 * (0.6 + 0.4 * np.sin(xx / 2.0)))[inside]
        views.append(view)
    views = np.array(views)
    bands = 1 + 0.3 * np.sin(2 * np.pi * 0.8 * np.arange(h) / h + 1.0)
    flipped = {"horizontal": lambda v: v[:, ::-1], "vertical": lambda v: v[::-1]}[flip]
    blur = np.array(
        [linear_to_srgb(flipped(views[max(4 * k - 2, 0) : 4 * k + 2].mean(axis=0))) * 255 for k in range(40)]
    )

    def recorded(gain):
        return np.array([linear_to_srgb(v * gain[:, None]) * 255 + rng.normal(0, 0.3, (h, w)) for v in views])

    for gain in (bands, np.ones(h)):
        thumbs = recorded(gain).astype(np.float32)
        light = flicker.sharp_light(thumbs, FPS)
        assert light.frames is None and light.rows is None  # nothing changes from frame to frame
        args = (thumbs, blur.astype(np.float32), flip_matrix(flip, *size), size, size, lambda t: t, 25.0, FPS)
        evened, still = flicker.still_bands(light, *args)
        if gain is bands:
            assert still > 2 * flicker.MIN_STILL_PTP and evened.rows is not None
            error = np.log(evened.rows[20:140]) - np.log(bands / bands.mean())
            assert np.abs(error).max() < 0.003, np.abs(error).max()
        else:
            assert still < flicker.MIN_STILL_PTP / 10 and evened is light


def test_a_colour_map_with_an_offset_under_a_sky_over_a_road_is_not_read_as_bands(monkeypatch):
    """The blur camera's colour map has an offset on encoded values (as rb2v's simulator's), so its luma ratio to
    the sharp camera's is larger on dark content than on bright; the view is bright above and dark below. Taken
    as a ratio per row, that read as 0.36 of bands under a steady light; with the cameras' relation a power law
    fitted within rows, 0.07. Under bands that stand still (±30 %) each row's light is measured to 0.055 (0.23
    as a ratio)."""
    rng = np.random.default_rng(2)
    h, w, size = 34, 40, (640, 544)
    view = np.geomspace(0.5, 0.03, h)[:, None] * cv2.GaussianBlur(rng.uniform(0.5, 1.5, (h, w)), (0, 0), 1.0)
    blur_view = srgb_to_linear(np.clip(0.9 * linear_to_srgb(view) + 0.05, 0, 1))
    blur = np.array([linear_to_srgb(blur_view) * 255 + rng.normal(0, 0.3, (h, w)) for _ in range(40)], np.float32)
    bands = 1 + 0.3 * np.sin(2 * np.pi * 0.8 * np.arange(h) / h + 1.0)
    for gain in (np.ones(h), bands):
        sharp = np.array([linear_to_srgb(view * gain[:, None]) * 255 + rng.normal(0, 0.3, (h, w)) for _ in range(160)])
        light = flicker.sharp_light(sharp.astype(np.float32), FPS)
        args = (light, sharp.astype(np.float32), blur, np.eye(3), size, size, lambda t: t, 25.0, FPS)
        evened, still = flicker.still_bands(*args)
        with monkeypatch.context() as m:
            m.setattr(flicker, "_power_within_rows", lambda *a: 0.0)
            as_ratio, still_as_ratio = flicker.still_bands(*args)
        if gain is bands:
            error = np.abs(np.log(evened.rows[20:140]) - np.log(bands / bands.mean())).max()
            ratio_error = np.abs(np.log(as_ratio.rows[20:140]) - np.log(bands / bands.mean())).max()
            assert error < 0.07 and ratio_error > 0.2, (error, ratio_error)
        else:
            assert still < flicker.MIN_STILL_PTP / 2 and evened is light, still
            assert still_as_ratio > flicker.MIN_STILL_PTP, still_as_ratio


def test_a_lens_on_one_camera_and_a_dark_border_are_not_read_as_bands_that_stand_still():
    """A steady light, the blur camera behind a barrel lens (k1 -0.05) and the sharp one a pinhole whose top 12
    rows are the rig's dark border, filming stripes across the rows: compared through the undistorted
    homography, the blurry view is carried through both lenses and only cells inside both cameras' valid boxes
    count, so the rows agree to 0.04 in log light and nothing is evened out. Compared as if neither camera had
    a lens, the stripes bent by the lens differ by 0.19 from row to row; with the dark border counted, by 1.3
    (the light of a steady lamp then "evened out" on every built sample)."""
    from rb2v.align import lens as lensmod
    from rb2v.align.geometry import flip_matrix
    from rb2v.alignment import Lens

    size = w, h = 640, 544
    K = ((512.0, 0.0, 319.5), (0.0, 512.0, 271.5), (0.0, 0.0, 1.0))
    lenses = {"blur": Lens(K, (-0.05, 0.0, 0.0, 0.0, 0.0), size), "sharp": Lens(K, (0.0,) * 5, size)}

    def scene(x, y):  # linear light: stripes across the rows, bending along them
        return 0.03 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * y / 300 + np.sin(x / 110)))

    def thumbnail(view):  # 16 x 16 pixel cells: 40 x 34, as sync's thumbnails of a 640 x 544 frame
        return linear_to_srgb(view.reshape(34, 16, 40, 16).mean(axis=(1, 3))) * 255

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sharp_view = scene(w - 1 - xs, ys)  # the splitter's mirror flips the sharp view
    sharp_view[:12] = 0.004
    seen = lensmod.undistort(lenses["blur"], np.stack([xs.ravel(), ys.ravel()], 1))
    blur_view = scene(seen[:, 0], seen[:, 1]).reshape(h, w)
    rng = np.random.default_rng(1)
    sharp = np.array([thumbnail(sharp_view) + rng.normal(0, 0.3, (34, 40)) for _ in range(160)], np.float32)
    blur = np.array([thumbnail(blur_view) + rng.normal(0, 0.3, (34, 40)) for _ in range(40)], np.float32)
    light = flicker.sharp_light(sharp, FPS)
    assert light.frames is None and light.rows is None
    args = (sharp, blur, flip_matrix("horizontal", *size), size, size, lambda t: t, 25.0, FPS)
    valid = ((0, 12, w - 1, h - 1), (0, 0, w - 1, h - 1))
    evened, still = flicker.still_bands(light, *args, lenses, valid)
    assert still < flicker.MIN_STILL_PTP / 5 and evened is light, still
    assert flicker.still_bands(light, *args, None, valid)[1] > flicker.MIN_STILL_PTP * 0.9
    assert flicker.still_bands(light, *args, lenses, None)[1] > flicker.MIN_STILL_PTP * 5


def test_aligns_exposure_fit_sees_the_raw_frames_evened_row_by_row():
    """The exposure fit decodes raw sharp frames (grey, at its working scale) and averages them into synthetic
    blur: each of their rows is divided by its band's light, so a frame filmed under bands comes out flat."""
    rows = np.array([[0.6, 1.0, 1.5, 1.1]])
    fractions = (np.arange(48) + 0.5) / 48
    lit = linear_to_srgb((0.3 * flicker.row_gains(rows[0], fractions))[:, None] * np.ones((48, 20)))
    recorded = np.rint(lit * 255).astype(np.uint8)
    light = flicker.SharpLight(np.array([1.0]), rows, 0.0, 1.0)
    evened = srgb_to_linear(flicker.evened_grey(recorded, light, 0) / 255.0)
    assert np.abs(evened - 0.3).max() < 0.004 and np.ptp(srgb_to_linear(recorded / 255.0)) > 0.25
    frame_only = flicker.SharpLight(np.array([0.5]), None, 0.1, 0.0)
    assert (
        np.abs(srgb_to_linear(flicker.evened_grey(recorded, frame_only, 0) / 255.0) - 2 * srgb_to_linear(lit)).max()
        < 0.01
    )


def _aligned_take(folder, frames: int, **keys) -> AlignedTake:
    """An aligned take of ``frames`` 16x16 sharp frames (already written) whose alignment.json has ``keys``
    beside an identity geometry."""
    meta = {
        "schema": "rb2v.alignment/2",
        "blur_fps": 25.0,
        "sharp_fps": 100.0,
        "flip_sharp": "none",
        "homography": np.eye(3).tolist(),
        "crop": {"x": 0, "y": 0, "width": 16, "height": 16},
        "time_offset_s": 0.0,
        "clock_ratio": 1.0,
        "sync_method": "audio",
        **keys,
    }
    (folder / "alignment.json").write_text(json.dumps(meta))
    return AlignedTake("hand", "s", "t", folder, read_alignment(folder), 0, frames, "f")


def test_the_build_divides_each_sharp_frame_by_its_light(tmp_path):
    """A frame filmed at 70 % of the light comes out as at the light's mean, in linear light; with
    ``even_light`` off, or where align measured no flicker, as stored."""
    folder = tmp_path / "take"
    (folder / "sharp").mkdir(parents=True)
    scene = np.random.default_rng(1).uniform(0.05, 0.8, (16, 16, 3)).astype(np.float32)
    light = [1.2, 0.7]
    for i, g in enumerate(light):
        write_image(folder / "sharp" / f"{i:06d}.png", linear_to_srgb(scene * g))
    take = _aligned_take(folder, 2, sharp_light=light)
    evened = [srgb_to_linear(sharp_loader(take, True)(i)) for i in range(2)]
    for frame in evened:
        assert np.abs(frame - scene).max() < 0.01  # 8-bit steps in the darker frame
    stored = read_image(folder / "sharp" / "000001.png")
    assert np.array_equal(sharp_loader(take, False)(1), stored)
    short = AlignedTake("hand", "s", "t", folder, take.alignment, 0, 3, "f")  # a frame more than values
    with pytest.raises(Rb2vError, match=r"alignment.json: sharp_light must hold one positive number per sharp"):
        sharp_loader(short, True)


def test_the_build_divides_each_pixel_by_the_light_of_the_row_it_was_recorded_on(tmp_path):
    """With bands (``sharp_light_rows``), each aligned pixel is divided by the light of the raw sharp row it came
    from: here the crop takes rows 8-23 of a 32-row frame filmed upside down (a vertical flip), so output row y
    was recorded on row 23 - y. Dividing by the light of row y instead leaves errors of over 50 %."""
    folder = tmp_path / "take"
    (folder / "sharp").mkdir(parents=True)
    scene = np.random.default_rng(2).uniform(0.05, 0.6, (16, 16, 3)).astype(np.float32)
    rows = [[0.6, 0.9, 1.2, 1.5], [1.4, 1.0, 0.8, 0.7]]  # four bands of the raw frame's rows, top to bottom
    recorded_on = (23 - np.arange(16) + 0.5) / 32  # as fractions of the raw frame's height
    for i, values in enumerate(rows):
        lit = scene * flicker.row_gains(np.array(values), recorded_on)[:, None, None]
        write_image(folder / "sharp" / f"{i:06d}.png", linear_to_srgb(lit.astype(np.float32)))
    geometry = {"flip_sharp": "vertical", "crop": {"x": 0, "y": 8, "width": 16, "height": 16}, "sharp_size": [16, 32]}
    take = _aligned_take(folder, 2, **geometry, sharp_light=[1.0, 1.0], sharp_light_rows=rows)
    for i in range(2):
        assert np.abs(srgb_to_linear(sharp_loader(take, True)(i)) - scene).max() < 0.01
    unflipped = dataclasses.replace(take.alignment, flip_sharp="none")
    wrong = srgb_to_linear(sharp_loader(AlignedTake("hand", "s", "t", folder, unflipped, 0, 2, "f"), True)(0))
    assert np.abs(wrong / scene - 1).max() > 0.5
    ragged = _aligned_take(folder, 2, **geometry, sharp_light_rows=[[1.0, 2.0], [1.0]])
    with pytest.raises(Rb2vError, match=r"alignment.json: sharp_light_rows must hold a list of positive numbers per"):
        sharp_loader(ragged, True)


def test_the_simulators_flickering_hand_is_measured_as_it_was_lit():
    """rb2v's simulator under a 120 Hz light 30 % deep (``SimConfig.flicker_*``): a hand before a green screen,
    shading, noise, 8 bits, each exposure integrating the pulse. Its sharp frames' thumbnails (area-averaged
    luma, as align decodes them) give each frame's light to 0.68 % within a sample's 4 frames, against the
    truth's 55 % (the blur camera's 32 ms exposure sees 3 % of the pulse). The rest is the camera's colour
    map, applied to the encoded values with black offsets of up to 2.5 levels, which the estimate, made in
    light decoded as plain sRGB, reads as 1.2 % less change than the light's."""
    from rb2v.simulate.config import SimConfig
    from rb2v.simulate.session import TakeSimulation

    cfg = SimConfig(category="hand", seconds=1.0, seed=3, flicker_hz=120.0, flicker_depth=0.3, internal_fps=400)
    sim = TakeSimulation(cfg, 0, 0)
    frames = 60
    thumbs = []
    for i in range(frames):
        rgb, _ = sim.film_sharp(i)
        luma = cv2.cvtColor((rgb * 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
        thumbs.append(cv2.resize(luma, (40, 34), interpolation=cv2.INTER_AREA))
    measured = flicker.sharp_light(np.array(thumbs), cfg.sharp_fps)
    light = np.array([sim.light(sim.sharp, i) for i in range(frames)])
    blur = np.array([sim.light(sim.blur, k) for k in range(10)])
    assert measured.frames is not None and measured.step_rms > 0.1 and np.ptp(light) > 0.4 and np.ptp(blur) < 0.04
    error = np.log(measured.frames) - np.log(light)
    spread_in_sample = max(np.ptp(error[i : i + 4]) for i in range(frames - 3))
    assert spread_in_sample < 0.012, spread_in_sample


@pytest.mark.parametrize("readout_s", [0.0, 0.008])
def test_the_simulators_rolling_shutter_draws_the_pulse_as_bands(readout_s):
    """Under a rolling shutter each row is exposed at its own time, so a 120 Hz light draws bands down the
    frame (8 ms of readout: about one cycle); a global shutter lights the frame alike. Rows of a still street
    filmed with and without the pulse, in light decoded from sRGB, against the truth's light per row."""
    from rb2v.simulate.config import SimConfig
    from rb2v.simulate.session import TakeSimulation

    base = SimConfig(category="street", seconds=1.0, seed=6, motion_scale=0.0, internal_fps=400)
    cams = {"sharp_readout_s": readout_s, "blur_readout_s": readout_s}
    steady = TakeSimulation(SimConfig(**{**base.as_dict(), **cams}), 0, 0)
    pulsing = TakeSimulation(SimConfig(**{**base.as_dict(), **cams, "flicker_hz": 120.0, "flicker_depth": 0.3}), 0, 0)
    rows = [srgb_to_linear(sim.film_sharp(5, noise=False)[0]).mean(axis=(1, 2)) for sim in (steady, pulsing)]
    ratio = rows[1][20:-20] / rows[0][20:-20]  # the sharp camera's black border bands left out
    light = pulsing.light(pulsing.sharp, 5, np.arange(base.height) / (base.height - 1))[20:-20]  # recorded rows
    if readout_s:
        assert np.ptp(light) > 0.4 and np.corrcoef(ratio, light)[0, 1] > 0.99, (np.ptp(light), ratio[:5], light[:5])
    else:
        assert np.ptp(light) == 0 and np.ptp(ratio) < 0.06 and abs(ratio.mean() - light.mean()) < 0.05
