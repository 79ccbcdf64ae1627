"""The vendored CDFI reproduces the official network's golden outputs; the adapter loads
the official checkpoint layout, bisects for dyadic t and refuses what it cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_weights import recipe_state_dict

from rb2v.errors import Rb2vError
from rb2v.interpolation import load_interpolator
from rb2v.interpolation.cdfi import dyadic_steps
from rb2v.vendor.cdfi import CDFIAdaCoF, adacof

CASES = ("rw_64x96", "u2_67x101", "rw_128x128", "rw_64x96_seed7")


@pytest.fixture(scope="module")
def cdfi_dir(fixtures_dir):
    return fixtures_dir / "cdfi"


@pytest.fixture(scope="module")
def spec(cdfi_dir):
    return json.loads((cdfi_dir / "state_dict_spec.json").read_text())["entries"]


@pytest.fixture(scope="module")
def cases(cdfi_dir):
    return dict(np.load(cdfi_dir / "cases.npz"))


@pytest.fixture(scope="module")
def weights(spec):
    return {seed: recipe_state_dict(spec, seed) for seed in (20231121, 7)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, weights):
    """A checkpoint file in the official layout: {'epoch', 'state_dict'}."""
    path = tmp_path_factory.mktemp("cdfi") / "CDFI_adacof.pth"
    torch.save({"epoch": 7, "state_dict": weights[20231121]}, path)
    return path


def test_adacof_op_matches_cuda_kernel_golden(cdfi_dir):
    # large offsets, negative fractions, -0.0, halves and out-of-image taps (clamping)
    d = np.load(cdfi_dir / "adacof_op.npz")
    for case in ("op_f11_d2", "op_f5_d1_b2"):
        g = {k: torch.from_numpy(d[f"{case}__{k}"]) for k in ("input", "weight", "offset_i", "offset_j", "out")}
        out = adacof(g["input"], g["weight"], g["offset_i"], g["offset_j"], int(d[f"{case}__dilation"]))
        assert out.shape == g["out"].shape
        assert (out - g["out"]).abs().max().item() < 1e-5, case


def test_adacof_truncates_negative_offsets_toward_zero():
    # offset -0.3 extrapolates 1.3*v[+0] - 0.3*v[+1] (the kernel's quirk), not 0.7*v[0] + 0.3*v[-1]
    img = torch.arange(5.0).view(1, 1, 1, 5) ** 2  # 0 1 4 9 16
    w = torch.ones(1, 1, 1, 5)
    out = adacof(img, w, torch.zeros(1, 1, 1, 5), torch.full((1, 1, 1, 5), -0.3), 1)
    expect = 1.3 * img[..., [0, 1, 2, 3, 4]] - 0.3 * img[..., [1, 2, 3, 4, 4]]
    assert torch.allclose(out, expect, atol=1e-6)


def test_model_state_dict_matches_official_layout(spec):
    sd = CDFIAdaCoF().state_dict()
    assert [e["key"] for e in spec] == list(sd)
    assert all(list(sd[e["key"]].shape) == e["shape"] for e in spec)


@pytest.mark.parametrize("case", CASES)
def test_cdfi_reproduces_official_golden(case, cases, weights):
    model = CDFIAdaCoF().eval()
    model.load_state_dict(weights[int(cases[f"{case}__seed"])], strict=True)
    with torch.no_grad():
        out = model(torch.from_numpy(cases[f"{case}__frame0"]), torch.from_numpy(cases[f"{case}__frame1"]))
    golden = torch.from_numpy(cases[f"{case}__out"])
    assert out.shape == golden.shape
    assert (out - golden).abs().max().item() <= 1e-4


def _frames(cases, case, size=None):
    """The case's two frames as (H,W,3), optionally the top-left size x size crop (faster tests)."""
    to_hwc = lambda x: np.ascontiguousarray(x[0].transpose(1, 2, 0)[:size, :size])  # noqa: E731
    return to_hwc(cases[f"{case}__frame0"]), to_hwc(cases[f"{case}__frame1"])


def test_official_checkpoint_file_loads_and_gives_the_golden_output(checkpoint, cases):
    interp = load_interpolator("cdfi", checkpoint=checkpoint, device="cpu")
    for case in ("rw_64x96", "u2_67x101"):
        a, b = _frames(cases, case)
        out = interp(a, b, 0.5)
        golden = np.clip(cases[f"{case}__out"][0].transpose(1, 2, 0), 0, 1)  # the adapter clamps to [0,1]
        assert out.dtype == np.float32 and out.shape == a.shape
        assert np.abs(out - golden).max() <= 1e-4


def test_batches_ends_and_dyadic_bisection(checkpoint, cases):
    interp = load_interpolator("cdfi", checkpoint=checkpoint, device="cpu", batch_size=2)
    a, b = _frames(cases, "rw_64x96", 32)
    A, B = np.stack([a, b, a]), np.stack([b, a, a])
    mids = interp.batch(A, B, 0.5)  # two chunks: 2 + 1 pairs
    mid, mid_ba = interp(a, b, 0.5), interp(b, a, 0.5)
    assert np.abs(mids[0] - mid).max() < 1e-5 and np.abs(mids[1] - mid_ba).max() < 1e-5
    assert np.array_equal(interp(a, b, 0.0), a) and np.array_equal(interp(a, b, 1.0), b)
    quarters = interp.batch(np.stack([a, a]), np.stack([b, b]), [0.25, 0.75])
    halves = interp.batch(np.stack([a, mid]), np.stack([mid, b]), 0.5)
    assert np.abs(quarters - halves).max() < 1e-5
    assert dyadic_steps(0.375) == [0, 1] and dyadic_steps(0.5) == [] and dyadic_steps(1 / 3) is None


def test_non_dyadic_t_is_an_error_unless_flow_is_asked_for(checkpoint, cases):
    a, b = _frames(cases, "rw_64x96", 32)
    with pytest.raises(Rb2vError, match="k/2\\^m"):
        load_interpolator("cdfi", checkpoint=checkpoint, device="cpu")(a, b, 1 / 3)
    mixed = load_interpolator("cdfi", checkpoint=checkpoint, device="cpu", other_t="flow")
    flow = load_interpolator("flow")
    assert np.abs(mixed(a, b, 1 / 3) - flow(a, b, 1 / 3)).max() < 1e-6


def test_any_size_including_tiny(checkpoint):
    rng = np.random.default_rng(0)
    interp = load_interpolator("cdfi", checkpoint=checkpoint, device="cpu")
    for h, w in ((12, 40), (33, 17)):  # 12 cannot be reflect-padded to 32 by the official code
        a, b = rng.random((2, h, w, 3), dtype=np.float32)
        out = interp(a, b, 0.5)
        assert out.shape == (h, w, 3) and np.isfinite(out).all()


def test_bad_checkpoints_give_clear_errors(tmp_path, weights):
    with pytest.raises(Rb2vError, match="needs checkpoint"):
        load_interpolator("cdfi")
    with pytest.raises(Rb2vError, match="not found"):
        load_interpolator("cdfi", checkpoint=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(Rb2vError, match="not a readable"):
        load_interpolator("cdfi", checkpoint=junk)
    other = tmp_path / "other.pth"
    torch.save({"epoch": 1, "state_dict": torch.nn.Conv2d(3, 3, 3).state_dict()}, other)
    with pytest.raises(Rb2vError, match="not a CDFI_adacof"):
        load_interpolator("cdfi", checkpoint=other)
    wrong = dict(weights[7])
    wrong["get_kernel.moduleConv1.0.weight"] = torch.zeros(24, 6, 5, 5)
    torch.save({"state_dict": wrong}, tmp_path / "wrong.pth")
    with pytest.raises(Rb2vError, match="wrong shape"):
        load_interpolator("cdfi", checkpoint=tmp_path / "wrong.pth")


def test_precisions_other_than_float32_need_cuda(checkpoint):
    for precision in ("tf32", "float16"):
        with pytest.raises(Rb2vError, match=f"{precision} needs a CUDA device"):
            load_interpolator("cdfi", checkpoint=checkpoint, device="cpu", precision=precision)
    with pytest.raises(Rb2vError, match="unknown precision 'bf16'"):
        load_interpolator("cdfi", checkpoint=checkpoint, device="cpu", precision="bf16")


def test_models_benchmark_times_both_models_through_their_adapters(tmp_path):
    """``rb2v bench models`` on the CPU (CUDA lines only where a GPU is): one line per model and device,
    bad options refused in one line."""
    from click.testing import CliRunner

    from rb2v.benchmarks.models import main

    street = Path(__file__).parent / "fixtures" / "img_seq"
    out = CliRunner().invoke(main, [str(street), "--size", "64x48", "--batches", "1,2"])
    assert out.exit_code == 0, out.output
    assert "64x48 frames" in out.output
    for model in ("cdfi", "bgmv2"):
        assert f"\n{model} (seeded random weights)" in out.output
    assert out.output.count("cpu      float32     1") == 2
    bad = CliRunner().invoke(main, [str(street), "--size", "64by48"])
    assert bad.exit_code != 0 and "expected WxH" in str(bad.exception)
