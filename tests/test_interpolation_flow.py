"""The "flow" interpolator on real photographs moved by known sub-pixel motions, on a real
Middlebury scene, the shared input checks, streaming upsampling, the CLI and the benchmark."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data as skdata

from rb2v.cli import main as rb2v_main
from rb2v.errors import Rb2vError
from rb2v.interpolation import load_interpolator, upsample_sequence
from rb2v.io.images import read_image, write_image

SIZE = 160  # test frames are SIZE x SIZE crops
MARGIN = 24  # border excluded from the scores (content entering the frame is unknowable)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x[MARGIN:-MARGIN, MARGIN:-MARGIN], y[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return float(10 * np.log10(1.0 / np.mean((x.astype(np.float64) - y) ** 2)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real colour photograph, lightly smoothed so sub-pixel resampling is well defined."""
    img = skdata.astronaut()[40:360, 100:420].astype(np.float32) / 255.0
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def moved(photo: np.ndarray, dx: float, dy: float, angle: float) -> np.ndarray:
    """``photo`` rotated by ``angle`` degrees about the crop centre and shifted by (dx, dy), cropped."""
    h, w = photo.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    out = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (h - SIZE) // 2, (w - SIZE) // 2
    return np.ascontiguousarray(out[y0 : y0 + SIZE, x0 : x0 + SIZE])


@pytest.fixture(scope="module")
def flow():
    return load_interpolator("flow")


@pytest.mark.parametrize(
    "dx, dy, angle, t", [(5.3, -3.7, 0.0, 0.5), (5.3, -3.7, 0.0, 1 / 3), (0.0, 0.0, 8.0, 0.5), (2.5, 1.0, 6.0, 0.5)]
)
def test_known_motion_of_a_real_photo(photo, flow, dx, dy, angle, t):
    a = moved(photo, 0, 0, 0)
    b = moved(photo, dx, dy, angle)
    exact = moved(photo, t * dx, t * dy, t * angle)
    out = flow(a, b, t)
    assert out.dtype == np.float32 and out.shape == a.shape
    lin = psnr((1 - t) * a + t * b, exact)
    got = psnr(out, exact)
    # measured: flow 46-56 dB, linear blend 22.6-23.7 dB
    assert lin < 25.0
    assert got > 42.0


def test_real_middlebury_scene_beats_linear_blend(fixtures_dir, flow):
    root = fixtures_dir / "middlebury"
    a = read_image(root / "input/Venus/frame10.png")
    b = read_image(root / "input/Venus/frame11.png")
    gt = read_image(root / "gt/Venus/frame10i11.png")
    mse = lambda x: float(np.mean((np.rint(x * 255) / 255 - gt) ** 2))  # noqa: E731
    p_flow = 10 * np.log10(1 / mse(flow(a, b, 0.5)))
    p_lin = 10 * np.log10(1 / mse(0.5 * (a + b)))
    # measured: flow 35.5 dB, linear 25.1 dB, ffmpeg minterpolate 31.5 dB
    assert p_flow > 34.5 and p_flow > p_lin + 8.0


def test_ends_return_the_inputs(photo, flow):
    a, b = moved(photo, 0, 0, 0), moved(photo, 2.5, 1.0, 0)
    assert np.array_equal(flow(a, b, 0.0), a)
    assert np.array_equal(flow(a, b, 1.0), b)
    out = flow.batch(np.stack([a, a]), np.stack([b, b]), [0.0, 1.0])
    assert np.array_equal(out[0], a) and np.array_equal(out[1], b)


@pytest.mark.parametrize("name", ["flow", "linear"])
def test_many_times_of_several_pairs_on_threads_equal_one_call_each(photo, name):
    """``many`` shares each pair's flow between its times and spreads them over threads; the frames
    are those of one call each, bit for bit, whatever the thread count (a fresh interpolator each)."""
    frames = [moved(photo, 2.1 * i, -0.7 * i, 1.5 * i) for i in range(3)]
    requests = [(frames[i], frames[i + 1], t) for i in (0, 1) for t in (0.0, 1 / 6, 0.5, 5 / 6, 1.0)]
    requests.append((frames[0], frames[1], 1 / 3))  # a pair's time after another pair's: order kept
    single = [load_interpolator(name)(a, b, t) for a, b, t in requests]
    for threads in (1, 2, 3):
        made = load_interpolator(name).many(requests, threads=threads)
        assert len(made) == len(requests)
        for got, want in zip(made, single):
            assert np.array_equal(got, want)
    with pytest.raises(Rb2vError, match=r"\[0, 1\]"):
        load_interpolator(name).many([(frames[0], frames[1], -0.1)])
    with pytest.raises(Rb2vError, match="differ in shape"):
        load_interpolator(name).many([(frames[0], frames[1][:-1], 0.5)], threads=2)


@pytest.mark.parametrize("name", ["flow", "linear"])
def test_bad_inputs_give_clear_errors(photo, name):
    interp = load_interpolator(name)
    a = moved(photo, 0, 0, 0)
    with pytest.raises(Rb2vError, match="differ in shape"):
        interp(a, a[:-1], 0.5)
    bad = a.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(Rb2vError, match="NaN"):
        interp(a, bad, 0.5)
    with pytest.raises(Rb2vError, match="float32"):
        interp(a.astype(np.float64), a.astype(np.float64), 0.5)
    with pytest.raises(Rb2vError, match="float32"):
        interp((a * 255).astype(np.uint8), (a * 255).astype(np.uint8), 0.5)
    with pytest.raises(Rb2vError, match=r"\[0, 1\]"):
        interp(a, a, 1.5)
    with pytest.raises(Rb2vError, match="unknown interpolator"):
        load_interpolator("dain")


def test_upsample_sequence_streams_real_and_interpolated_frames(photo):
    frames = [moved(photo, 1.5 * i, 0.5 * i, 0) for i in range(4)]
    out = list(upsample_sequence(iter(frames), factor=2, interpolator="flow", batch=2))
    assert len(out) == 7
    for i, f in enumerate(frames):
        assert np.array_equal(out[2 * i], f)
    for i in range(3):
        exact = moved(photo, 1.5 * i + 0.75, 0.5 * i + 0.25, 0)
        assert psnr(out[2 * i + 1], exact) > 36.0


def test_cli_writes_the_interpolated_frame(tmp_path, photo, flow, capsys):
    a, b = moved(photo, 0, 0, 0), moved(photo, 3.0, -2.0, 0)
    write_image(tmp_path / "a b.png", a)
    write_image(tmp_path / "b.png", b)
    out = tmp_path / "out dir" / "mid.png"
    out.parent.mkdir()
    assert rb2v_main(["interpolate", str(tmp_path / "a b.png"), str(tmp_path / "b.png"), str(out), "--t", "0.5"]) == 0
    written = read_image(out)
    expect = flow(read_image(tmp_path / "a b.png"), read_image(tmp_path / "b.png"), 0.5)
    assert np.abs(written - expect).max() <= 1 / 255 + 1e-6
    write_image(tmp_path / "small.png", a[:100])
    assert rb2v_main(["interpolate", str(tmp_path / "a b.png"), str(tmp_path / "small.png"), str(out)]) == 2
    assert "differs" in capsys.readouterr().err
    # each was an internal error: NaN passed the range check, a folder as OUT, frames too small for DIS
    write_image(tmp_path / "tiny.png", a[:8, :8])
    a_path, b_path, tiny = tmp_path / "a b.png", tmp_path / "b.png", tmp_path / "tiny.png"
    cases = [
        ([a_path, b_path, out, "--t", "nan"], "interpolation time t must lie in [0, 1], got nan"),
        ([a_path, b_path, tmp_path], f"{tmp_path}: is a folder, not an image file's name"),
        ([tiny, tiny, out], "tiny.png: 8x8 is too small for optical flow"),
        ([a_path, b_path, out, "--device", "cuda"], "--device is for --method cdfi, not flow"),  # was ignored
        ([a_path, b_path, a_path], "a b.png: is an input image"),  # A was overwritten with exit 0
    ]
    for args, message in cases:
        assert rb2v_main(["interpolate", *map(str, args)]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("rb2v: error:") and message in err and "\n" not in err, err
    assert (
        rb2v_main(
            [
                "interpolate",
                str(tmp_path / "a b.png"),
                str(tmp_path / "b.png"),
                str(out),
                "--method",
                "cdfi",
                "--checkpoint",
                str(tmp_path / "none.pth"),
            ]
        )
        == 2
    )


def test_benchmark_prints_the_table(fixtures_dir):
    from rb2v.benchmarks.interpolation import main

    res = CliRunner().invoke(
        main, [str(fixtures_dir / "middlebury"), "--methods", "linear,flow,minterpolate", "--speed-repeats", "1"]
    )
    assert res.exit_code == 0, res.output
    venus = next(line for line in res.output.splitlines() if line.startswith("Venus"))
    psnrs = [float(x) for x in venus.split()[1::3]]
    assert psnrs[1] > psnrs[2] > psnrs[0]  # flow > minterpolate > linear on this scene
    assert "frames/s" in res.output and "MEAN" in res.output


def test_upsampled_window_asks_for_its_missing_frames_at_once(photo):
    """A build's candidate window: its interpolated frames come from one ``many`` call (a network
    interpolator sees them as batches), equal bit for bit to frames made one at a time."""
    from rb2v.dataset.sequence import UpsampledSequence

    sharp = [moved(photo, 1.7 * i, 0.4 * i, 0.5 * i) for i in range(6)]
    interp = load_interpolator("flow")
    calls = []
    real_many = interp.many

    def spy(requests, threads=1):
        calls.append(len(requests))
        return real_many(requests, threads)

    interp.many = spy
    x = UpsampledSequence(lambda i: sharp[i], len(sharp), interp, factor=4)
    window = x.window(2, 15)
    assert calls == [10]  # x[2..14]: 13 frames, 3 of them sharp
    one_by_one = UpsampledSequence(lambda i: sharp[i], len(sharp), load_interpolator("flow"), factor=4)
    for j in range(2, 15):
        assert np.array_equal(window[j - 2], one_by_one[j])
        assert x.index_of(window[j - 2]) == j
    x.window(4, 19)
    assert calls == [10, 3]  # only x[15], x[17], x[18] are new
