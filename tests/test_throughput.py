"""Throughput work (issue 16) that must not change results: anchored REDS sub-frames, reduced-scale flow, floors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from rb2v.colormatch import synthesize_blur
from rb2v.dataset.reds import synthesize_sample
from rb2v.dataset.settings import load_pipeline
from rb2v.dataset.stage import N_FRAMES
from rb2v.errors import Rb2vError
from rb2v.interpolation import Interpolator, LinearInterpolator
from rb2v.interpolation.flow import FlowInterpolator, warp_backward
from rb2v.io.images import bundled_photo, read_image


class Counting(Interpolator):
    """Linear blend that records the requests it is given (by identity) and every (pair, t)."""

    name = "counting"

    def __init__(self, real):
        self.real_ids = {id(f) for f in real}
        self.calls = []

    def many(self, requests, threads=1):
        for a, b, t in requests:
            assert id(a) in self.real_ids and id(b) in self.real_ids, "interpolated from an interpolated frame"
            self.calls.append((id(a), id(b), round(t, 9)))
        return super().many(requests, threads)

    def _batch(self, A, B, t):
        return ((1.0 - t) * A + t * B).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_reds_sub_frames_come_from_real_pairs_once_and_match_the_blur(k):
    rng = np.random.default_rng(k)
    real = [rng.random((12, 10, 3), dtype=np.float32) for _ in range((N_FRAMES - 1) // k + 1)]
    settings = load_pipeline("reds")
    counting = Counting(real)
    tools = type("Tools", (), {"upsampler": counting, "subframes": counting})()
    frames, blur = synthesize_sample(real, k, settings, tools)
    window = np.stack(frames)
    # every instant is interpolated once, from the real pair around it: 19 sub-frames over (7-1)/k pairs
    instants = (N_FRAMES - 1) * 3 + 1
    assert len(counting.calls) == len(set(counting.calls)) == instants - len(real)
    # with linear blends, anchoring changes nothing: the paper's definition on the 7 frames gives the same blur
    assert window.shape == (N_FRAMES, 12, 10, 3)
    np.testing.assert_allclose(window[::k], np.stack(real), atol=0)
    np.testing.assert_allclose(blur, synthesize_blur(window, 19, LinearInterpolator()), atol=2e-6)


def test_reduced_scale_flow_recovers_a_known_shift_and_checks_its_scale():
    photo = bundled_photo("astronaut")[100:260, 120:280].astype(np.float32)
    shift = np.zeros(photo.shape[:2] + (2,), np.float32)
    shift[..., 0], shift[..., 1] = 3.0, -2.0
    b = warp_backward(photo, -shift)  # b(x) = a(x - shift): the content moves by +shift
    truth = warp_backward(photo, -0.5 * shift)
    inner = (slice(16, -16), slice(16, -16))
    for scale in (1.0, 0.5):
        out = FlowInterpolator(scale=scale)(photo, b, 0.5)
        err = np.abs(out[inner] - truth[inner]).mean()
        assert err < 0.01, (scale, err)
    with pytest.raises(Rb2vError, match="scale"):
        FlowInterpolator(scale=0)


def test_synth_reds_benchmark_prints_its_floor(tmp_path):
    from rb2v.benchmarks.synth_reds import main
    from rb2v.executor import available_cores

    args = ["--width", "64", "--height", "48", "--frames", "12", "--sequences", "2", "--interpolator", "linear"]
    out = CliRunner().invoke(main, [*args, "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "the floor (target <= 2x)" in out.output and "2 sequence(s) of 12 frames" in out.output
    assert "-> 6 samples" in out.output  # 3 per sequence
    assert f"I/O floor on {available_cores()} thread(s)" in out.output
    # the second sequence is the first one mirrored, not a copy
    first, second = (read_image(tmp_path / "input" / f"street00{s}" / "00000.png") for s in (0, 1))
    np.testing.assert_array_equal(second, first[:, ::-1])
    assert not np.array_equal(second, first)

    # the floor's work does not depend on its threads: every sample image encoded once, the same bytes
    from rb2v.benchmarks.floor import io_floor

    inputs = sorted((tmp_path / "input").glob("street*/*.png"))
    dataset = tmp_path / "out" / "datasets" / "reds"
    one, two = (io_floor(inputs, dataset, 1, threads=t) for t in (1, 2))
    assert (one.inputs, one.outputs, one.threads, two.threads) == (2 * 12, 6 * 8, 1, 2)
    assert one.output_bytes == two.output_bytes > 0
