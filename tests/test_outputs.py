"""Outputs the user names never replace a dataset's or a training run's own files (rb2v.outputs)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rb2v.dataset.reds import synth_reds_dataset
from rb2v.dataset.settings import load_pipeline
from rb2v.errors import Rb2vError
from rb2v.io.images import write_image
from rb2v.manifest import read_manifest, validate_manifest
from rb2v.outputs import check_output, owner_of


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    moving = np.random.default_rng(0).random((40, 60, 3), dtype=np.float32)
    for i in range(8):
        write_image(root / "frames" / "seq" / f"{i:03d}.png", np.roll(moving, 2 * i, axis=1))
    folder = synth_reds_dataset(root / "frames", root / "out", 120, load_pipeline("reds"), report=False)
    run = root / "runs" / "hc"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"checkpoint")
    (run / "settings.json").write_text("{}")
    return folder, run


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_datasets_and_a_runs_own_files_are_refused_others_are_not(dataset, tmp_path):
    folder, run = dataset
    row = read_manifest(folder / "manifest.parquet").iloc[0]
    for own in ("manifest.parquet", "metadata.json", "report.html", "SHA256SUMS", row.blur_path, row.sharp_paths[3]):
        assert owner_of(folder / own) == f"the dataset {folder.resolve()}", own
    for own in ("settings.json", "log.csv", "last.pt"):
        assert owner_of(run / own) == f"the training run {run.resolve()}", own
    # the user's own files beside them, and anything elsewhere, stay theirs to write
    for free in (folder / "eval.json", folder / "samples" / "mine.png", run / "eval.json", tmp_path / "metadata.json"):
        assert owner_of(free) is None, free
    with pytest.raises(Rb2vError, match=r"metadata.json: --json would replace a file of the dataset .*; write it"):
        check_output(folder / "metadata.json", "--json")
    # a manifest that cannot be read: its samples/ folder stands for the files it would list
    broken = tmp_path / "broken"
    (broken / "samples" / "a").mkdir(parents=True)
    (broken / "manifest.parquet").write_text("not parquet")
    assert owner_of(broken / "samples" / "a" / "blur.png") is not None and owner_of(broken / "x.json") is None


@pytest.mark.parametrize(
    "args",
    [
        # each replaced the file with exit 0; the dataset then failed validate
        ["eval-hypercut", "--manifest", "{ds}", "--checkpoint", "{run}", "--json", "{ds}/metadata.json"],
        ["eval-hypercut", "--manifest", "{ds}", "--checkpoint", "{run}", "--plot", "{blur}"],
        ["eval-blur2vid", "--manifest", "{ds}", "--checkpoint", "{run}", "--json", "{run}/settings.json"],
        ["interpolate", "{blur}", "{sharp0}", "{sharp3}"],
    ],
)
def test_commands_refuse_to_write_over_them_before_any_work(dataset, rb2v_here, args):
    folder, run = dataset
    row = read_manifest(folder / "manifest.parquet").iloc[0]
    names = {"ds": folder, "run": run, "blur": folder / row.blur_path}
    names.update(sharp0=folder / row.sharp_paths[0], sharp3=folder / row.sharp_paths[3])
    before = {p: _digest(p) for p in [*folder.rglob("*.*"), *run.iterdir()] if p.is_file()}
    out = rb2v_here(*(a.format(**names) for a in args))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "would replace a file of the" in lines[0], out.stderr
    assert {p: _digest(p) for p in before} == before
    assert validate_manifest(folder) == []


def test_deblur_refuses_a_samples_folder_as_out(dataset, tmp_path):
    folder, _ = dataset
    row = read_manifest(folder / "manifest.parquet").iloc[0]
    sample = (folder / row.blur_path).parent
    photo = tmp_path / f"{sample.name}.png"  # deblur writes OUT/<stem>/frame001.png ...: the sample's own frames
    photo.write_bytes((folder / row.blur_path).read_bytes())
    from hypercut_models.blur2vid.deblur import deblur

    with pytest.raises(Rb2vError, match=r"frame001.png: deblur --out would replace a file of the dataset"):
        deblur([photo], "no-checkpoint-needed.pt", sample.parent)
