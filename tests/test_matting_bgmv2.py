"""BackgroundMattingV2 reimplementation against the official code's golden outputs.

Weights follow the fixture's recipe (tests/fixtures/bgmv2/README.md); the checkpoints are
written in the official formats and loaded through the same path a user's files take.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_weights import recipe_state_dict

from rb2v.errors import Rb2vError
from rb2v.matting import load_matter
from rb2v.vendor.bgmv2 import MattingBase, MattingRefine, load_model

FIXTURES = Path(__file__).parent / "fixtures" / "bgmv2"
TOL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
CASES = [("A", "128x192"), ("A", "96x160"), ("B", "128x192"), ("C", "128x192"), ("C", "96x160")]


@pytest.fixture(scope="module")
def cases():
    return np.load(FIXTURES / "cases.npz")


def spec(model_id: str) -> dict:
    return json.loads((FIXTURES / f"state_dict_spec_{model_id}.json").read_text())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Official-layout .pth files (flat state dicts) for the three fixture models."""
    root = tmp_path_factory.mktemp("bgmv2")
    paths = {}
    for model_id in "ABC":
        s = spec(model_id)
        path = root / f"{model_id}.pth"
        torch.save(recipe_state_dict(s["entries"], s["seed"]), path)
        paths[model_id] = path
    return paths


@pytest.mark.parametrize("model_id,size", CASES)
def test_golden_outputs(cases, checkpoints, model_id, size):
    s = spec(model_id)
    args = {k: v for k, v in s["constructor_args"].items() if k != "backbone"}
    model, info = load_model(checkpoints[model_id], **args)
    assert info.backbone == s["constructor_args"]["backbone"]
    assert isinstance(model, MattingRefine if s["model"] == "MattingRefine" else MattingBase)
    assert type(model) is (MattingRefine if s["model"] == "MattingRefine" else MattingBase)
    assert [k for k in model.state_dict()] == [e["key"] for e in s["entries"]]
    src = torch.from_numpy(cases[f"input_{size}__src"])
    bgr = torch.from_numpy(cases[f"input_{size}__bgr"])
    torch.set_num_threads(1)
    with torch.no_grad():
        out = model(src, bgr)
    prefix = f"{model_id}_{size}__"
    if s["model"] == "MattingRefine":
        names = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
        for name, tensor in zip(names, out):
            want = cases[prefix + name]
            got = tensor.numpy()
            assert got.shape == want.shape, name
            if name == "ref_sm":
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=name)
    else:
        pha, fgr, err, hid = (t.numpy() for t in out)
        for name, got in (("pha", pha), ("fgr", fgr), ("err", err)):
            np.testing.assert_allclose(got, cases[prefix + name], rtol=0, atol=TOL, err_msg=name)
        channels = cases[prefix + "hid_channels"]
        np.testing.assert_allclose(hid[:, channels], cases[prefix + "hid_sel"], rtol=0, atol=TOL)
        np.testing.assert_allclose(hid[:, :, ::4, ::4], cases[prefix + "hid_sub4"], rtol=0, atol=TOL)


class ExportWrapper(torch.nn.Module):
    """The layout of the official TorchScript export: the network as the only child ``model``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        return self.model(src, bgr)


def test_torchscript_float16_export_through_the_matter(cases, checkpoints, tmp_path):
    model, _ = load_model(checkpoints["A"], refine_sample_pixels=4000)
    src = torch.from_numpy(cases["input_128x192__src"])
    bgr = torch.from_numpy(cases["input_128x192__bgr"])
    wrapper = ExportWrapper(model).eval()
    # A float16 export: every floating tensor in half precision, counters stay int64.
    path = tmp_path / "torchscript_mobilenetv2_fp32.pth"
    traced = torch.jit.trace(wrapper, (src, bgr), check_trace=False)
    torch.jit.save(traced, path)
    keys = list(torch.jit.load(path).state_dict())
    assert len(keys) == 382 and keys[0] == "model.backbone.features.0.0.weight"
    matter = load_matter("bgmv2", checkpoint=path, device="cpu", refine_sample_pixels=4000)
    assert matter.info.format == "torchscript" and matter.info.backbone == "mobilenetv2"
    frame = cases["input_128x192__src"][0].transpose(1, 2, 0)
    plate = cases["input_128x192__bgr"][0].transpose(1, 2, 0)
    alpha, fg = matter(frame, background=plate)
    np.testing.assert_allclose(alpha, cases["A_128x192__pha"][0, 0], rtol=0, atol=TOL)
    np.testing.assert_allclose(fg, cases["A_128x192__fgr"][0].transpose(1, 2, 0), rtol=0, atol=TOL)

    half = tmp_path / "torchscript_mobilenetv2_fp16.pth"
    torch.jit.save(
        torch.jit.trace(ExportWrapper(model).half().eval(), (src.half(), bgr.half()), check_trace=False), half
    )
    m16 = load_matter("bgmv2", checkpoint=half, refine_sample_pixels=4000)
    a16, _ = m16(frame, background=plate)
    assert np.abs(a16 - alpha).max() < 0.01  # half-precision weights, float32 arithmetic


def test_matter_pads_odd_sizes_and_needs_a_plate(cases, checkpoints):
    matter = load_matter("bgmv2", checkpoint=checkpoints["C"])
    assert matter.info.kind == "base"
    frame = cases["input_96x160__src"][0].transpose(1, 2, 0)[:94, :157]
    plate = cases["input_96x160__bgr"][0].transpose(1, 2, 0)[:94, :157]
    alpha, fg = matter(frame, background=plate)
    assert alpha.shape == (94, 157) and fg.shape == (94, 157, 3)
    with pytest.raises(Rb2vError, match="background plate"):
        matter(frame)
    with pytest.raises(Rb2vError, match="differ in size"):
        matter(frame, background=plate[:90])


def test_checkpoint_of_another_model_is_refused(tmp_path):
    other = tmp_path / "resnet_classifier.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, other)
    with pytest.raises(Rb2vError, match="not a BackgroundMattingV2 checkpoint"):
        load_matter("bgmv2", checkpoint=other)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(Rb2vError, match="not a readable BackgroundMattingV2 checkpoint"):
        load_matter("bgmv2", checkpoint=broken)
    truncated = tmp_path / "truncated.pth"
    s = spec("C")
    state = recipe_state_dict(s["entries"], s["seed"])
    state.pop("decoder.conv4.bias")
    torch.save(state, truncated)
    with pytest.raises(Rb2vError, match="does not match BackgroundMattingV2 base/mobilenetv2"):
        load_matter("bgmv2", checkpoint=truncated)
    with pytest.raises(Rb2vError, match="checkpoint not found"):
        load_matter("bgmv2", checkpoint=tmp_path / "missing.pth")


def test_matter_batches_equal_single_frames_and_the_golden(cases, checkpoints):
    """A batch of 3 (two network calls at batch_size 2): each frame as matted alone, the golden too."""
    matter = load_matter("bgmv2", checkpoint=checkpoints["A"], batch_size=2, refine_sample_pixels=4000)
    frame = cases["input_128x192__src"][0].transpose(1, 2, 0)
    plate = cases["input_128x192__bgr"][0].transpose(1, 2, 0)
    frames = np.stack([frame, frame[:, ::-1], frame])
    alphas, fgs = matter.batch(frames, plate)
    assert alphas.shape == (3, 128, 192) and fgs.shape == (3, 128, 192, 3)
    for i in range(3):
        alpha, fg = matter(frames[i], background=plate)
        np.testing.assert_allclose(alphas[i], alpha, rtol=0, atol=TOL)
        np.testing.assert_allclose(fgs[i], fg, rtol=0, atol=TOL)
    np.testing.assert_allclose(alphas[2], cases["A_128x192__pha"][0, 0], rtol=0, atol=TOL)
    assert np.abs(alphas[1] - alphas[0][:, ::-1]).max() > 10 * TOL  # the mirrored frame is its own


def test_precision_and_batch_size_are_checked(checkpoints):
    with pytest.raises(Rb2vError, match="float16 needs a CUDA device"):
        load_matter("bgmv2", checkpoint=checkpoints["C"], device="cpu", precision="float16")
    with pytest.raises(Rb2vError, match="unknown precision 'half'"):
        load_matter("bgmv2", checkpoint=checkpoints["C"], device="cpu", precision="half")
    with pytest.raises(Rb2vError, match="batch_size must be >= 1"):
        load_matter("bgmv2", checkpoint=checkpoints["C"], batch_size=0)
