"""The CUDA paths, run only where a GPU is: the vendored models' goldens through their public
adapters at each precision, batches equal to single calls, and blur2vid / HyperCUT training,
evaluation, ordering and deblurring on the GPU. Each test prints what it measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_weights import recipe_state_dict

from rb2v.cli import main as rb2v_main
from rb2v.interpolation import load_interpolator
from rb2v.matting import load_matter

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning"),
]
FIXTURES = Path(__file__).parent / "fixtures"
PRETRAINED = FIXTURES / "hypercut" / "pretrained.pt"
CDFI_TOL, BGMV2_TOL = 1e-4, 1e-5  # the fixtures' tolerances (fixtures/*/README.md)
# the faster precisions' distance from the goldens: measured on an H200 (2026-11-30) at most 2.8e-4
# (tf32) and 6.5e-4 (float16), over the goldens' own tolerances; allowed here with a 3x margin
LOOSE_TOL = {"tf32": 1e-3, "float16": 2e-3}


@pytest.fixture(scope="module")
def cdfi_checkpoints(tmp_path_factory):
    spec = json.loads((FIXTURES / "cdfi" / "state_dict_spec.json").read_text())["entries"]
    root = tmp_path_factory.mktemp("cdfi")
    paths = {}
    for seed in (20231121, 7):
        paths[seed] = root / f"{seed}.pth"
        torch.save({"state_dict": recipe_state_dict(spec, seed)}, paths[seed])
    return paths


def _hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[0].transpose(1, 2, 0))


@pytest.mark.parametrize("precision", ["float32", "tf32", "float16"])
def test_cdfi_golden_through_the_adapter(cdfi_checkpoints, precision):
    cases = np.load(FIXTURES / "cdfi" / "cases.npz")
    worst = 0.0
    for case in ("rw_64x96", "u2_67x101", "rw_128x128", "rw_64x96_seed7"):
        interp = load_interpolator(
            "cdfi", checkpoint=cdfi_checkpoints[int(cases[f"{case}__seed"])], device="cuda", precision=precision
        )
        out = interp(_hwc(cases[f"{case}__frame0"]), _hwc(cases[f"{case}__frame1"]), 0.5)
        worst = max(worst, float(np.abs(out - np.clip(_hwc(cases[f"{case}__out"]), 0, 1)).max()))
    print(f"MEASURED cdfi cuda {precision}: max |out - golden| {worst:.3g}")
    assert worst <= (CDFI_TOL if precision == "float32" else LOOSE_TOL[precision])


def test_cdfi_batches_equal_single_pairs_on_cuda(cdfi_checkpoints):
    cases = np.load(FIXTURES / "cdfi" / "cases.npz")
    a, b = _hwc(cases["rw_64x96__frame0"]), _hwc(cases["rw_64x96__frame1"])
    interp = load_interpolator("cdfi", checkpoint=cdfi_checkpoints[20231121], device="cuda", batch_size=3)
    A, B = np.stack([a, b, a, b]), np.stack([b, a, b, b])
    together = interp.batch(A, B, 0.5)
    apart = np.stack([interp(x, y, 0.5) for x, y in zip(A, B)])
    print(f"MEASURED cdfi cuda batch vs single: {np.abs(together - apart).max():.3g}")
    assert np.abs(together - apart).max() <= 1e-5


@pytest.mark.parametrize("precision", ["float32", "tf32", "float16"])
def test_bgmv2_golden_through_the_adapter_in_batches(tmp_path, precision):
    """Each golden frame is matted in a batch of 3 beside a mirrored copy of itself."""
    cases = np.load(FIXTURES / "bgmv2" / "cases.npz")
    worst = 0.0
    for model_id, size in (("A", "128x192"), ("A", "96x160"), ("B", "128x192"), ("C", "128x192"), ("C", "96x160")):
        spec = json.loads((FIXTURES / "bgmv2" / f"state_dict_spec_{model_id}.json").read_text())
        path = tmp_path / f"{model_id}.pth"
        if not path.exists():
            torch.save(recipe_state_dict(spec["entries"], spec["seed"]), path)
        args = {k: v for k, v in spec["constructor_args"].items() if k != "backbone"}
        matter = load_matter("bgmv2", checkpoint=path, device="cuda", precision=precision, batch_size=2, **args)
        src = _hwc(cases[f"input_{size}__src"])
        alphas, fgs = matter.batch(np.stack([src, src[:, ::-1], src]), _hwc(cases[f"input_{size}__bgr"]))
        pha, fgr = cases[f"{model_id}_{size}__pha"][0, 0], _hwc(cases[f"{model_id}_{size}__fgr"])
        for i in (0, 2):
            worst = max(worst, float(np.abs(alphas[i] - pha).max()), float(np.abs(fgs[i] - fgr).max()))
    print(f"MEASURED bgmv2 cuda {precision}: max |out - golden| {worst:.3g}")
    assert worst <= (BGMV2_TOL if precision == "float32" else LOOSE_TOL[precision])


@pytest.fixture(scope="module")
def ordered(ordered_dataset) -> Path:
    return ordered_dataset(48, "cuda")


def test_hypercut_trains_and_evaluates_on_cuda(ordered, tmp_path):
    run = tmp_path / "hc"
    args = ["train-hypercut", "--manifest", str(ordered), "--out", str(run), "--epochs", "2", "--crop", "40"]
    assert rb2v_main([*args, "--batch-size", "2", "--workers", "0", "--device", "cuda"]) == 0
    assert (run / "last.pt").is_file()
    out_json = tmp_path / "hc.json"
    args = ["eval-hypercut", "--manifest", str(ordered), "--checkpoint", str(run), "--json", str(out_json)]
    assert rb2v_main([*args, "--device", "cuda"]) == 0
    assert 0.0 <= json.loads(out_json.read_text())["hit"] <= 1.0


def test_blur2vid_trains_resumes_evaluates_and_deblurs_on_cuda(ordered, tmp_path, monkeypatch):
    import hypercut_models.blur2vid.train as train_module
    from hypercut_models.blur2vid.checkpoint import load_checkpoint

    common = dict(
        manifest=str(ordered), loss="hypercut", hypercut=str(PRETRAINED), alpha=0.2, epochs=2, crop=36, batch_size=2
    )
    common.update(lr=1e-3, workers=0, device="cuda")
    full = train_module.train(train_module.Blur2VidSettings(out=str(tmp_path / "full"), **common))
    real_save = train_module.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(train_module.Blur2VidSettings(out=str(tmp_path / "crashed"), **common))
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = train_module.train(
        train_module.Blur2VidSettings(manifest="unused", out=str(tmp_path / "crashed"), device="cuda"), resume=True
    )
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    worst = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"])
    print(f"MEASURED blur2vid cuda resume vs straight run: max weight difference {worst:.3g}")
    assert worst <= 1e-4  # cuDNN may pick other kernels after a restart; a wrong resume moves far more
    out_json = tmp_path / "b2v.json"
    args = ["eval-blur2vid", "--manifest", str(ordered), "--checkpoint", str(full), "--hypercut", str(PRETRAINED)]
    assert rb2v_main([*args, "--json", str(out_json), "--device", "cuda"]) == 0
    result = json.loads(out_json.read_text())
    assert len(result["ppsnr"]) == 7 and "con@3" in result
    photo = next(Path(ordered).parent.rglob("blur.png"))
    out = tmp_path / "deblurred"
    assert rb2v_main(["deblur", str(photo), "--checkpoint", str(full), "--out", str(out), "--device", "cuda"]) == 0
    assert len(list(out.rglob("frame00*.png"))) == 7
