"""Colour matrix, synthetic blur and the Algorithm 1 search (fast vs the literal reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner

from rb2v.benchmarks.colormatch import main as bench_main
from rb2v.benchmarks.colormatch import simulated_take
from rb2v.colormatch import apply_color_matrix, fit_color_matrix, search, synthesize_blur
from rb2v.colormatch.reference import reference_search
from rb2v.errors import Rb2vError
from rb2v.interpolation import Interpolator, load_interpolator

# The default search sums float32 products of the frames' differences from the blur (gram.py). Against
# the float64 paths its scores differ by up to 8e-6 dB on 448x448 takes (rb2v bench colormatch) but more
# on small images: on 55 random 64x64 cases (this file's panning and blurry, 3 photos, seeds 0-19, the
# blur less than half clipped) by a median 1.3e-4 dB and at most 2.4e-3 dB (4.9e-3 dB with the
# previous 896-pixel tiles). Its colour matrices differ by about 1e-4 (a 4x4 solve amplifies the
# rounding; OpenBLAS builds sum float32 products in different orders: numpy 2.4.6's gives 2.2e-4 on
# astronaut). A wrong moment or fit is off by orders of magnitude more; the bound is 0.01 dB.
SCORE_ROUNDING_DB = 3e-3
MATRIX_ROUNDING = 5e-4
CORNERS = np.array([[r, g, b, 1.0] for r in (0, 1) for g in (0, 1) for b in (0, 1)])


def photo(name: str = "astronaut", size: int = 96) -> np.ndarray:
    import cv2

    img = getattr(skimage.data, name)()[..., :3]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def panning(name: str, size: int, frames: int, step=(1.7, 0.9)) -> np.ndarray:
    """A real photo panning with sub-pixel steps (bilinear resampling), 8-bit levels."""
    import cv2

    img = getattr(skimage.data, name)()[..., :3].astype(np.float32) / 255
    out = []
    for t in range(frames):
        A = np.float32([[1, 0, 40 + step[0] * t], [0, 1, 30 + step[1] * t]])
        out.append(cv2.warpAffine(img, A, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return (np.round(np.stack(out) * 255) / 255).astype(np.float32)


def random_matrix(rng) -> np.ndarray:
    return np.hstack([np.eye(3) + rng.uniform(-0.2, 0.2, (3, 3)), rng.uniform(-0.1, 0.1, (3, 1))])


def blurry(seq, start, M, rng, noise=0.01, **kw) -> np.ndarray:
    """A blurry frame made the way Algorithm 1 models it, plus a colour matrix and noise."""
    y = synthesize_blur(seq[start : start + 7], **kw)
    return np.clip(y @ M[:, :3].T + M[:, 3] + rng.normal(0, noise, y.shape), 0, 1).astype(np.float32)


def check_pruned(blur, seq, ref, **options):
    """The default (pruned) search returns the exhaustive ``ref``'s answer, every candidate it scored within
    0.01 dB of ``ref``'s score and every one it skipped under its bound."""
    res = search(blur, seq, **options)
    assert res.start == ref.start and abs(res.psnr - ref.psnr) < 0.01 and abs(res.margin - ref.margin) < 0.01
    np.testing.assert_allclose(res.matrix, ref.matrix, atol=MATRIX_ROUNDING)
    assert sorted([*res.scores, *res.bounds]) == sorted(ref.scores)
    assert all(abs(v - ref.scores[p]) < 0.01 for p, v in res.scores.items())
    assert all(ref.scores[p] <= b for p, b in res.bounds.items())
    return res


class Squared(Interpolator):
    """A deliberately non-linear interpolator (a + (b-a) t²): exercises the dense path."""

    name = "squared"

    def _batch(self, A, B, t):
        return (A + (B - A) * (t * t)).astype(np.float32)


# ---- colour matrix -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_fit_recovers_a_known_matrix(seed):
    rng = np.random.default_rng(seed)
    src = photo(["astronaut", "coffee", "chelsea", "rocket"][seed])
    M = random_matrix(rng)
    dst = np.clip(src @ M[:, :3].T + M[:, 3], 0, 1).astype(np.float32)  # a camera clips
    est = fit_color_matrix(src, dst)
    assert est.shape == (3, 4) and est.dtype == np.float64
    assert np.abs(CORNERS @ (est - M).T).max() <= 0.005
    # the closed form equals lstsq over the same (unclipped) pixel rows
    keep = ~(
        ((src <= 0.5 / 255) | (src >= 1 - 0.5 / 255)).any(-1) | ((dst <= 0.5 / 255) | (dst >= 1 - 0.5 / 255)).any(-1)
    )
    X = np.concatenate([src[keep], np.ones((keep.sum(), 1))], axis=1).astype(np.float64)
    np.testing.assert_allclose(est, np.linalg.lstsq(X, dst[keep].astype(np.float64), rcond=None)[0].T, atol=1e-9)


def test_clipped_pixels_break_the_fit_unless_excluded():
    rng = np.random.default_rng(7)
    src = photo("astronaut")
    M = np.array([[1.3, 0.1, 0.0, 0.05], [0.0, 1.2, 0.1, 0.02], [0.1, 0.0, 1.25, 0.04]])
    dst = np.clip(src @ M[:, :3].T + M[:, 3] + rng.normal(0, 0.002, src.shape), 0, 1).astype(np.float32)
    assert ((dst >= 1 - 0.5 / 255).any(-1)).mean() > 0.05  # many highlights clip
    good = fit_color_matrix(src, dst, exclude_clipped=True)
    bad = fit_color_matrix(src, dst, exclude_clipped=False)
    assert np.abs(CORNERS @ (good - M).T).max() < 0.01
    assert np.abs(CORNERS @ (bad - M).T).max() > 0.05


def test_apply_color_matrix():
    rng = np.random.default_rng(1)
    src = photo("coffee")
    M = random_matrix(rng)
    raw = src.astype(np.float64) @ M[:, :3].T + M[:, 3]
    out = apply_color_matrix(M, src)
    assert out.dtype == np.float32 and out.shape == src.shape
    np.testing.assert_allclose(out, np.clip(raw, 0, 1), atol=1e-6)
    np.testing.assert_allclose(apply_color_matrix(M, src, clip=False), raw, atol=1e-6)
    batch = apply_color_matrix(M, np.stack([src, src[::-1]]))
    # OpenCV's float32 transform: a pixel's last bit depends on its SIMD lane, so 1 ulp apart at most
    np.testing.assert_allclose(batch[1], out[::-1], rtol=0, atol=1.2e-7)


def test_degenerate_inputs_raise_clear_errors():
    src = photo("astronaut", 32)
    const = np.full_like(src, 0.4)
    grey = np.repeat(src.mean(-1, keepdims=True), 3, axis=-1)
    nan = src.copy()
    nan[3, 4, 1] = np.nan
    inf = src.copy()
    inf[0, 0, 0] = np.inf
    cases = [
        ((const, src), "degenerate"),
        ((grey, src), "degenerate"),
        ((nan, src), "NaN"),
        ((src, inf), "NaN or inf"),
        ((src, src[:16]), "differ in size"),
        ((src[..., :2], src[..., :2]), "RGB"),
        ((np.zeros_like(src), src), "unclipped pixels"),
    ]
    for (a, b), words in cases:
        with pytest.raises(Rb2vError, match=words):
            fit_color_matrix(a, b)
    with pytest.raises(Rb2vError, match="shape"):
        apply_color_matrix(np.eye(3), src)


# ---- synthetic blur ------------------------------------------------------------------


def test_synthetic_blur_is_the_mean_of_19_subframes():
    seq = panning("astronaut", 48, 7)
    y = synthesize_blur(seq)
    # 2 in-betweens per pair at t=1/3, 2/3: sharp frames weigh 3/19, the two ends 2/19
    w = np.array([2, 3, 3, 3, 3, 3, 2]) / 19
    np.testing.assert_allclose(y, np.tensordot(w, seq.astype(np.float64), axes=1), atol=1e-6)
    # an explicit list of the 19 sub-frames, interpolated by an object, averaged
    sq = Squared()
    subs = [seq[i] if j == 0 else sq(seq[i], seq[i + 1], j / 3) for i in range(6) for j in range(3)] + [seq[6]]
    np.testing.assert_allclose(synthesize_blur(seq, 19, sq), np.mean(subs, axis=0), atol=1e-6)
    # sub generalises: 13 sub-frames from 7 = one in-between per pair at t=1/2
    w13 = np.array([1.5, 2, 2, 2, 2, 2, 1.5]) / 13
    np.testing.assert_allclose(synthesize_blur(seq, 13), np.tensordot(w13, seq.astype(np.float64), axes=1), atol=1e-6)
    with pytest.raises(Rb2vError, match="multiple"):
        synthesize_blur(seq, sub=18)
    with pytest.raises(Rb2vError, match="space"):
        synthesize_blur(seq, space="log")


def test_srgb_curves_in_float32_follow_the_formula():
    """The float32 path (OpenCV's pow, in place) against the formula in float64, over the whole range, both
    segments and their joins; the dtype and shape are kept, out-of-range values clipped."""
    from rb2v.colorspace import linear_to_srgb, srgb_to_linear

    grid = np.concatenate([np.linspace(0, 1, 200_001), [0.04045, 0.0031308, 1e-9, 1 - 1e-7]])
    exact_lin = np.where(grid <= 0.04045, grid / 12.92, ((grid + 0.055) / 1.055) ** 2.4)
    exact_srgb = np.where(grid <= 0.0031308, 12.92 * grid, 1.055 * grid ** (1 / 2.4) - 0.055)
    image = grid.astype(np.float32)[:200_000].reshape(200, 250, 4)[..., :3]  # a strided (H,W,3) view
    for curve, exact in ((srgb_to_linear, exact_lin), (linear_to_srgb, exact_srgb)):
        out = curve(grid.astype(np.float32))
        assert out.dtype == np.float32 and out.shape == grid.shape
        assert np.abs(out - exact).max() < 3e-7  # float32 steps are 6e-8 near 1
        assert curve(np.float64(0.3)) == curve(np.array([0.3]))[0]  # float64 keeps numpy's own formula
        np.testing.assert_allclose(curve(image), curve(image.astype(np.float64)), atol=3e-7)
    np.testing.assert_array_equal(srgb_to_linear(np.array([-0.5, 2.0], np.float32)), [0.0, 1.0])
    assert np.isnan(linear_to_srgb(np.array([np.nan], np.float32))[0])


def test_linear_light_blur():
    black, white = np.zeros((1, 8, 8, 3), np.float32), np.ones((1, 8, 8, 3), np.float32)
    frames = np.concatenate([black, white])  # n=2, sub=4: 0, 1/3, 2/3, 1
    srgb = synthesize_blur(frames, sub=4)
    lin = synthesize_blur(frames, sub=4, space="linear")
    np.testing.assert_allclose(srgb, 0.5, atol=1e-6)
    # linear light: mean of decoded (0, 1/3, 2/3, 1) sRGB values, then encoded
    dec = [0.0, ((1 / 3 + 0.055) / 1.055) ** 2.4, ((2 / 3 + 0.055) / 1.055) ** 2.4, 1.0]
    expect = 1.055 * np.mean(dec) ** (1 / 2.4) - 0.055
    np.testing.assert_allclose(lin, expect, atol=1e-5)
    static = np.repeat(photo("chelsea", 32)[None], 7, axis=0)
    np.testing.assert_allclose(synthesize_blur(static, space="linear"), static[0], atol=1e-5)


# ---- the search: fast vs reference ----------------------------------------------------


@pytest.mark.parametrize(
    "name,options",
    [
        ("astronaut", {}),
        ("coffee", {"exclude_clipped": False}),
        ("chelsea", {"space": "linear"}),
        ("rocket", {"interpolator": Squared()}),
        ("astronaut", {"interpolator": Squared(), "space": "linear", "sub": 13}),
        # exposures shorter than the window (a box centred on it): gram, explicit-weight and dense paths
        ("coffee", {"span": 2.3}),
        ("chelsea", {"span": 0.0, "exclude_clipped": False}),
        ("rocket", {"span": 1.4, "space": "linear"}),
        ("astronaut", {"span": 3.7, "interpolator": Squared()}),
    ],
)
def test_fast_search_equals_the_reference_on_real_photos(name, options):
    rng = np.random.default_rng(len(name))
    seq = panning(name, 80, 18)
    kw = {k: v for k, v in options.items() if k in ("interpolator", "space", "sub", "span")}
    y = blurry(seq, 6, random_matrix(rng), rng, **kw)
    fast = search(y, seq, prune=False, **options)
    ref = reference_search(y, seq, **options)
    assert fast.start == ref.start == 6
    assert sorted(fast.scores) == sorted(ref.scores) == list(range(12))
    check_pruned(y, seq, ref, **options)
    assert max(abs(fast.scores[p] - ref.scores[p]) for p in ref.scores) < 0.01
    np.testing.assert_allclose(fast.matrix, ref.matrix, atol=MATRIX_ROUNDING)
    assert fast.psnr == fast.scores[6] and abs(fast.margin - ref.margin) < 0.01


def test_exposure_weights_are_a_centred_box_on_the_sub_frames():
    from rb2v.colormatch.blur import frame_weights, subframe_weights

    # the paper's plain average: inner frames k/sub, the two ends (k+1)/(2 sub)
    np.testing.assert_allclose(frame_weights(7, 19), [2 / 19] + [3 / 19] * 5 + [2 / 19])
    assert np.array_equal(frame_weights(7, 19, 6.0), frame_weights(7, 19)) and np.array_equal(
        frame_weights(7, 19, 9.0), frame_weights(7, 19)
    )
    for span in (0.0, 0.5, 2.0, 3.3, 5.9):
        v, w = subframe_weights(7, 19, span), frame_weights(7, 19, span)
        assert abs(v.sum() - 1) < 1e-12 and abs(w.sum() - 1) < 1e-12
        np.testing.assert_allclose(w, w[::-1], atol=1e-9)  # centred on the window
        # the box reaches (span/2 + one sub-frame of interpolation) from the centre, no further
        reach = np.abs(np.arange(7) - 3)
        assert w[reach > span / 2 + 1].max(initial=0) == 0
    np.testing.assert_allclose(frame_weights(7, 19, 0.0), [0, 0, 0, 1, 0, 0, 0], atol=1e-6)  # an instant: x[p+3]
    np.testing.assert_allclose(frame_weights(7, 19, 2.0), [0, 0, 0.25, 0.5, 0.25, 0, 0], atol=1e-12)
    with pytest.raises(Rb2vError, match="span"):
        subframe_weights(7, 19, -1.0)


def test_a_short_exposure_is_found_and_scored_with_its_span():
    """A blurry frame that integrated only the middle 2 steps of its window: scored with the
    paper's average over all 7 frames it fits worse (and may pick another start); with its span
    the fit is as good as for a full-window exposure."""
    rng = np.random.default_rng(11)
    seq = panning("coffee", 96, 20, step=(4.1, 2.3))
    M = random_matrix(rng)
    y = blurry(seq, 8, M, rng, noise=0.004, span=2.0)
    short = search(y, seq, span=2.0)
    full = search(y, seq)
    assert short.start == 8
    assert short.psnr > full.psnr + 6
    y_full = blurry(seq, 8, M, np.random.default_rng(11), noise=0.004)  # the same frame, a full-window exposure
    assert short.psnr > search(y_full, seq).psnr - 2.0  # 33.2 vs 34.6 dB (a fifth of the pixels clip)
    assert np.abs(CORNERS @ (short.matrix - M).T).max() < 0.03


def test_linear_light_refinement_places_a_start_a_third_of_a_step_off():
    """A blur integrated in linear light (as a sensor does) over a window starting a third of a step
    after candidate p: the refinement keeps p (the nearer start) and returns p's sRGB score and matrix."""
    from rb2v.colormatch.search import refine_in_linear_light
    from rb2v.colorspace import linear_to_srgb, srgb_to_linear

    fine = panning("coffee", 160, 3 * 20, step=(4.3 / 3, 2.9 / 3))  # three instants per step of seq
    seq = fine[::3]
    rng = np.random.default_rng(5)
    M = random_matrix(rng)
    srgb_starts = []
    for p in (4, 6, 7, 9, 10):
        exposure = fine[3 * p + 1 : 3 * p + 1 + 19]  # the window of p, a third of a step later
        y = linear_to_srgb(srgb_to_linear(exposure.astype(np.float64)).mean(axis=0))
        y = np.clip(y @ M[:, :3].T + M[:, 3] + rng.normal(0, 0.003, y.shape), 0, 1).astype(np.float32)
        first = search(y, seq, candidates=range(2, 13))
        srgb_starts.append(first.start - p)
        refined = refine_in_linear_light(y, seq, first)
        assert refined.start == p, (p, first.start, refined.start)
        at = search(y, seq, candidates=[p])
        assert refined.psnr == first.scores[p] and np.allclose(refined.matrix, at.matrix)
        assert refined.margin == first.scores[p] - max(v for q, v in first.scores.items() if abs(q - p) >= 2)
    assert srgb_starts.count(1) >= 3, srgb_starts  # measured 5 of 5: the sRGB average alone picks p + 1


def test_a_clock_breaks_the_near_tie_that_misplaced_sub_frames_decide_wrongly():
    """The sequence's odd frames (the interpolated ones of a rig's x) two thirds of a step late, as sub-frames
    on decelerating motion are: with the exposure two thirds of a step after p, the linear-light scores
    alone pick p (measured 5 of 5). A clock at the true start, as a prior, picks p + 1 for every
    p; a clock at the tie (p + 0.5) leaves the choice to the scores, and weight 0 is no clock."""
    from rb2v.colormatch.search import refine_in_linear_light
    from rb2v.colorspace import linear_to_srgb, srgb_to_linear

    fine = panning("coffee", 160, 3 * 20, step=(4.3 / 3, 2.9 / 3))  # three instants per step of seq
    seq = fine[::3].copy()
    seq[1::2] = fine[5::6][: len(seq[1::2])]
    rng = np.random.default_rng(5)
    M = random_matrix(rng)
    wrong = 0
    for p in (4, 6, 7, 9, 10):
        exposure = fine[3 * p + 2 : 3 * p + 2 + 19]
        y = linear_to_srgb(srgb_to_linear(exposure.astype(np.float64)).mean(axis=0))
        y = np.clip(y @ M[:, :3].T + M[:, 3] + rng.normal(0, 0.003, y.shape), 0, 1).astype(np.float32)
        first = search(y, seq, candidates=range(2, 13))
        alone = refine_in_linear_light(y, seq, first)
        wrong += alone.start != p + 1
        placed = refine_in_linear_light(y, seq, first, clock=p + 2 / 3, clock_db=8.0)
        assert placed.start == p + 1 and placed.clock_moved == (alone.start != p + 1)  # told: the summary counts it
        at_tie = refine_in_linear_light(y, seq, first, clock=p + 0.5, clock_db=8.0)
        assert at_tie.start == alone.start and not at_tie.clock_moved and not alone.clock_moved
        assert refine_in_linear_light(y, seq, first, clock=p + 2 / 3).start == alone.start
    assert wrong >= 3


def test_fast_search_equals_the_reference_on_simulated_rig_data():
    take = simulated_take(size=96, frames=20, start=7, seed=3)
    for space in ("srgb", "linear"):
        fast = search(take.blur, take.seq, space=space, prune=False)
        ref = reference_search(take.blur, take.seq, space=space)
        assert fast.start == ref.start == take.start
        assert max(abs(fast.scores[p] - ref.scores[p]) for p in ref.scores) < 0.01
        check_pruned(take.blur, take.seq, ref, space=space)


@pytest.mark.parametrize("seed", range(3))
def test_recovers_the_start_and_matrix_of_simulated_blur(seed):
    # physically simulated: radiance integrated over the exposure, gamma, colour matrix, noise
    take = simulated_take(size=128, frames=22, start=5 + 3 * seed, seed=seed)
    lin = search(take.blur, take.seq, space="linear")
    assert lin.start == take.start and lin.margin > 5
    assert np.abs(CORNERS @ (lin.matrix - take.matrix).T).max() < 0.04
    plain = search(take.blur, take.seq)  # the paper's sRGB average: same start, a worse model
    assert plain.start == take.start and plain.psnr < lin.psnr - 3


def test_recovers_a_known_start_and_matrix():
    rng = np.random.default_rng(11)
    seq = panning("coffee", 96, 24)
    M = np.array([[0.9, 0.05, 0.0, 0.03], [0.02, 0.92, 0.03, 0.01], [0.0, 0.04, 0.88, 0.04]])  # nothing clips
    y = blurry(seq, 13, M, rng, noise=0.003)
    res = search(y, seq, prune=False)
    assert res.start == 13 and res.margin > 5
    assert np.abs(CORNERS @ (res.matrix - M).T).max() < 0.005
    assert abs(res.psnr - (-10 * np.log10(0.003**2))) < 1.0  # the noise floor
    # a subset of candidates, in two separate runs, gives the same scores
    sub = search(y, seq, candidates=np.array([0, 1, 13, 12, 1]), prune=False)
    assert sorted(sub.scores) == [0, 1, 12, 13] and sub.start == 13
    for p in sub.scores:
        assert abs(sub.scores[p] - res.scores[p]) < SCORE_ROUNDING_DB
    # a margin is a difference of two scores, each within the float32 rounding of the other run's
    assert sub.margin == pytest.approx(res.psnr - max(res.scores[0], res.scores[1]), abs=2 * SCORE_ROUNDING_DB)


def test_margins_are_small_without_motion_or_texture():
    rng = np.random.default_rng(5)
    still = np.repeat(panning("astronaut", 64, 1), 20, axis=0)  # 14 candidates: enough to prune
    still = np.clip(still + rng.normal(0, 0.004, still.shape), 0, 1).astype(np.float32)
    flat = np.clip(0.45 + rng.normal(0, 0.004, still.shape), 0, 1).astype(np.float32)
    for seq in (still, flat):
        y = blurry(seq, 4, random_matrix(rng), rng)
        res = search(y, seq)
        assert res.margin < 0.1 and not res.bounds  # every candidate could decide: all scored
        assert max(res.scores.values()) - min(res.scores.values()) < 0.2
    moving = panning("astronaut", 64, 14)
    assert search(blurry(moving, 4, random_matrix(rng), rng), moving).margin > 3


def test_torch_backend_matches_numpy():
    import torch

    from rb2v.colormatch.arrays import NumpyArrays, TorchArrays
    from rb2v.colormatch.search import _score_runs

    rng = np.random.default_rng(2)
    seq = panning("chelsea", 64, 14)
    y = blurry(seq, 3, random_matrix(rng), rng)
    for space in ("srgb", "linear"):
        args = (y, seq, [0, 2, 3, 4, 7], 7, 19, load_interpolator("linear"), space, True)
        s_np, m_np = _score_runs(*args, NumpyArrays())
        s_t, m_t = _score_runs(*args, TorchArrays(torch.device("cpu")))
        for p in s_np:
            assert abs(s_np[p] - s_t[p]) < SCORE_ROUNDING_DB
            np.testing.assert_allclose(m_np[p], m_t[p], atol=MATRIX_ROUNDING)
    if torch.cuda.is_available():
        gpu, cpu = search(y, seq, device="cuda"), search(y, seq)
        assert gpu.start == cpu.start and abs(gpu.psnr - cpu.psnr) < SCORE_ROUNDING_DB
    else:
        with pytest.raises(Rb2vError, match="CUDA"):
            search(y, seq, device="cuda")


def test_search_rejects_bad_input():
    seq = panning("astronaut", 32, 10)
    y = seq[3]
    bad_seq = seq.copy()
    bad_seq[5, 1, 1, 0] = np.nan
    cases = [
        (dict(blur=y, seq=seq, candidates=[0, 4]), "out of range"),
        (dict(blur=y, seq=seq, candidates=[]), "no candidate"),
        (dict(blur=y, seq=seq[:5]), "fewer than the window"),
        (dict(blur=y[:16], seq=seq), "differ in size"),
        (dict(blur=y, seq=seq, sub=20), "multiple"),
        (dict(blur=y, seq=seq, space="xyz"), "space"),
        (dict(blur=y, seq=seq, interpolator="nope"), "unknown interpolator"),
        (dict(blur=y, seq=bad_seq), "NaN or inf"),
        (dict(blur=y, seq=seq[..., 0]), "RGB"),
    ]
    for kw, words in cases:
        with pytest.raises(Rb2vError, match=words):
            search(**kw)
    res = search(y, seq, candidates=[1])
    assert res.margin == float("inf")
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.start = 2


def test_benchmark_command_runs():
    out = CliRunner().invoke(bench_main, ["--size", "48", "--candidates", "8", "--frames", "1"])
    assert out.exit_code == 0, out.output
    assert "same argmax 1/1" in out.output and "speed-up" in out.output
    assert "every unscored candidate under its bound 1/1" in out.output
    assert "every score within 0.01 dB of the reference's 1/1" in out.output
    assert "both sides limited to 1 thread(s)" in out.output


@pytest.mark.parametrize("seed", range(3))
def test_coarse_to_fine_keeps_the_argmax_and_the_margin(seed):
    """Coarse-to-fine is allowed only where it never changes the answer: checked on simulated takes and real photos."""
    take = simulated_take(size=256, frames=30, start=8 + 4 * seed, seed=seed)
    rng = np.random.default_rng(seed)
    seq = panning(("astronaut", "coffee", "chelsea")[seed], 128, 24)
    cases = [(take.blur, take.seq), (blurry(seq, 9, random_matrix(rng), rng), seq)]
    for blur, frames in cases:
        exact = search(blur, frames, prune=False)
        for k in (4, 8):
            c2f = search(blur, frames, coarse=k)
            assert c2f.start == exact.start and c2f.psnr == pytest.approx(exact.psnr, abs=SCORE_ROUNDING_DB)
            assert c2f.margin == pytest.approx(exact.margin, abs=0.01)
            np.testing.assert_allclose(c2f.matrix, exact.matrix, atol=MATRIX_ROUNDING)
            assert sorted(c2f.scores) == sorted(exact.scores)


# ---- the default search from frame-pair moments (rb2v.colormatch.gram) ------------------


@pytest.mark.parametrize("n,sub,start", [(7, 19, 9), (5, 13, 4), (3, 5, 11)])
def test_moment_search_equals_the_reference_with_clipping(n, sub, start):
    """Known start, real photo, a bright exposure that clips: same argmax, scores within 0.01 dB."""
    rng = np.random.default_rng(n)
    seq = np.clip(panning("coffee", 96, 20) * 1.35, 0, 1).astype(np.float32)  # highlights clip in the frames
    M = np.array([[0.95, 0.03, 0.0, 0.03], [0.02, 0.93, 0.03, 0.02], [0.0, 0.04, 0.9, 0.05]])
    y = synthesize_blur(seq[start : start + n], sub)
    y = np.clip(y @ M[:, :3].T + M[:, 3] + rng.normal(0, 0.005, y.shape), 0, 1).astype(np.float32)
    from rb2v.colormatch.matrix import clipped_mask

    # clipped: in the blurry frame, in some frame of most pixels, in the synthetic blur of the true start
    assert clipped_mask(y).mean() > 0.003 and clipped_mask(seq).any(axis=0).mean() > 0.5
    assert clipped_mask(synthesize_blur(seq[start : start + n], sub)).mean() > 0.005
    fast = search(y, seq, n=n, sub=sub, prune=False)
    ref = reference_search(y, seq, n=n, sub=sub)
    assert fast.start == ref.start == start
    assert max(abs(fast.scores[p] - ref.scores[p]) for p in ref.scores) < 0.01
    np.testing.assert_allclose(fast.matrix, ref.matrix, atol=MATRIX_ROUNDING)
    assert abs(fast.margin - ref.margin) < 0.01
    check_pruned(y, seq, ref, n=n, sub=sub)


def test_default_search_uses_the_moments_and_any_candidates(monkeypatch):
    """The default call never builds a synthetic blur; sparse candidates score as in a full search."""
    import importlib

    search_module = importlib.import_module("rb2v.colormatch.search")  # the package exports search()

    def forbidden(*args, **kwargs):
        raise AssertionError("per-candidate synthetic blur in the default search")

    monkeypatch.setattr(search_module, "_Run", forbidden)
    take = simulated_take(size=64, frames=30, start=11, seed=4)
    full = search(take.blur, take.seq, prune=False)
    assert full.start == 11
    sparse = search(take.blur, take.seq, candidates=[23, 0, 11, 10, 2], prune=False)  # three separate runs
    assert sparse.start == 11 and sorted(sparse.scores) == [0, 2, 10, 11, 23]
    for p in sparse.scores:
        assert abs(sparse.scores[p] - full.scores[p]) < SCORE_ROUNDING_DB
    ref = reference_search(take.blur, take.seq, candidates=[23, 0, 11, 10, 2])
    assert max(abs(sparse.scores[p] - ref.scores[p]) for p in ref.scores) < 0.01


# ---- pruning: candidates whose proven bound cannot decide the result go unscored (rb2v.colormatch.prune) ----


def _bounds(blur, seq):
    """Every start's bound: the coarse pass fits every pixel, so one bound serves either clipping rule."""
    from rb2v.colormatch.prune import bounds
    from rb2v.colormatch.search import moment_scorer

    return bounds(blur, seq, list(range(len(seq) - 6)), 7, moment_scorer(7, 19, True, None))


def test_the_bound_is_the_score_where_every_8x8_block_is_uniform():
    """Frames, blur and noise constant on 8x8 blocks: the full-size residual is the coarse one repeated, so
    each candidate's bound equals its score (a bound off by any factor or term fails here)."""
    import cv2

    rng = np.random.default_rng(3)
    small = 0.1 + 0.8 * panning("chelsea", 12, 16)
    seq = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_NEAREST) for f in small]).astype(np.float32)
    M = np.array([[0.9, 0.05, 0.0, 0.03], [0.02, 0.92, 0.03, 0.01], [0.0, 0.04, 0.88, 0.04]])
    noise = cv2.resize(rng.normal(0, 0.01, (12, 12, 3)), (96, 96), interpolation=cv2.INTER_NEAREST)
    y = (synthesize_blur(seq[5:12]) @ M[:, :3].T + M[:, 3] + noise).astype(np.float32)
    exact = search(y, seq, prune=False)
    bound = _bounds(y, seq)
    assert max(abs(bound[p] - exact.scores[p]) for p in exact.scores) < SCORE_ROUNDING_DB


@pytest.mark.parametrize("seed", range(4))
def test_every_score_lies_under_its_bound_on_any_size(seed):
    """Sizes that are not multiples of the block, real photos, highlights that clip (left out of the fit)."""
    rng = np.random.default_rng(seed)
    H, W = [(101, 83), (64, 64), (96, 120), (77, 130)][seed]
    seq = panning(("coffee", "astronaut", "chelsea", "rocket")[seed], max(H, W), 20)[:, :H, :W]
    if seed % 2:
        seq = np.clip(seq * 1.35, 0, 1).astype(np.float32)
    y = blurry(seq, 7, random_matrix(rng), rng)
    bound = _bounds(y, seq)
    for exclude_clipped in (True, False):
        exact = search(y, seq, prune=False, exclude_clipped=exclude_clipped)
        assert all(exact.scores[p] <= bound[p] for p in exact.scores)
        check_pruned(y, seq, exact, exclude_clipped=exclude_clipped)


def test_pruning_scores_few_candidates_where_the_start_stands_out():
    """A simulated take with 24 candidates: the winner, its neighbours and the margin's rivals get scored;
    the answer is the literal reference's."""
    take = simulated_take(size=256, frames=30, start=13, seed=7)
    ref = reference_search(take.blur, take.seq)
    res = check_pruned(take.blur, take.seq, ref)
    assert res.start == 13 and len(res.scores) <= 7 and {12, 13, 14} <= set(res.scores)
    # fewer than prune.MIN_CANDIDATES (the build's 9): every candidate scored, as pruning would not pay
    assert not search(take.blur, take.seq, candidates=range(9, 18)).bounds


def test_pixel_moments_sum_every_pixel_across_chunks():
    """The moments of pixels clipped in a synthetic blur (``matrix.gram``), over more pixels than one chunk,
    equal the direct sum."""
    from rb2v.colormatch.blur import frame_weights
    from rb2v.colormatch.matrix import _CHUNK, gram

    rng = np.random.default_rng(3)
    m = 2 * _CHUNK + 17
    win = rng.random((7, m, 3), dtype=np.float32)
    blur = rng.random((m, 3))
    fake = np.tensordot(frame_weights(7, 19), win.astype(np.float64), 1)  # (m, 3)
    z = np.hstack([fake, np.ones((m, 1)), blur])
    np.testing.assert_allclose(gram(fake, blur), z.T @ z, rtol=1e-12)
