"""blur2vid end to end: training (exact resume), the three commands, deblur of odd sizes and big
images, a synth-reds dataset, and one-line errors. Data: tiny sets made from real images."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from hypercut_models.blur2vid.checkpoint import load_checkpoint, save_checkpoint
from hypercut_models.blur2vid.deblur import deblur_array, tile_starts
from hypercut_models.blur2vid.evaluate import evaluate
from hypercut_models.blur2vid.metrics import frame_psnrs, pooled
from hypercut_models.blur2vid.network import make_network
from hypercut_models.blur2vid.train import Blur2VidSettings, train
from hypercut_models.synthetic import make_dataset, write_take
from rb2v.cli import main as rb2v_main
from rb2v.errors import Rb2vError
from rb2v.io.images import read_image, write_image
from rb2v.manifest import read_manifest, update_manifest, write_manifest

FIXTURES = Path(__file__).parent / "fixtures"
PRETRAINED = FIXTURES / "hypercut" / "pretrained.pt"
STREET = FIXTURES / "img_seq"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ordered(ordered_dataset) -> Path:
    """3 photos x 2 samples of 40x40 (chelsea held out), labelled by `rb2v order` with the bundled HyperCUT."""
    return ordered_dataset(40, "cpu")


TINY = dict(crop=36, batch_size=2, workers=0, device="cpu", lr=1e-3)


def test_exact_resume(ordered, tmp_path, monkeypatch):
    common = dict(
        manifest=str(ordered), loss="hypercut", hypercut=str(PRETRAINED), alpha=0.2, alpha_from=2, epochs=2, **TINY
    )
    full = train(Blur2VidSettings(out=str(tmp_path / "full"), **common))

    import hypercut_models.blur2vid.train as train_module

    real_save = train_module.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    crashed = Blur2VidSettings(out=str(tmp_path / "crashed"), **common)
    with pytest.raises(KeyboardInterrupt):
        train(crashed)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "crashed")["epoch"] == 1
    with pytest.raises(Rb2vError, match="--resume"):
        train(crashed)
    resumed = train(Blur2VidSettings(manifest="unused: the run's own", out=str(tmp_path / "crashed")), resume=True)
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert b["epoch"] == 2 and b["settings"]["loss"] == "hypercut"
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    # R_hyp (and its HyperCUT pass) only from epoch alpha_from = 2, also across the resume
    assert [r["hyp_loss"] > 0 for r in b["history"]] == [False, True]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert not torch.equal(a["model"]["tail.weight"], torch.zeros_like(a["model"]["tail.weight"]))  # it trained
    assert pd.read_csv(tmp_path / "crashed" / "log.csv")["epoch"].tolist() == [1, 2]


def test_short_training_beats_the_blurry_input_on_held_out_sequences(tmp_path):
    """40 sequences of a real street frame filmed by a camera panning right at 2 px per frame
    (40x40, the blurry frame the mean of the 7): 72 steps of the naive loss on 36 of them must beat
    the floor on the 4 others (other parts of the frame), which a fresh network scores exactly."""
    photo = cv2.resize(read_image(STREET / "00000.jpg"), None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    rows, size, speed, length = [], 40, 2, 11  # one sample per sequence
    for t in range(40):
        y = int(rng.integers(0, photo.shape[0] - size))
        x = int(rng.integers(0, photo.shape[1] - size - speed * length))
        stream = np.stack([photo[y : y + size, x + speed * i : x + speed * i + size] for i in range(length)])
        rows += write_take(tmp_path, "test" if t >= 36 else "train", f"pan{t}", "take00", stream, 1)
    manifest = write_manifest(tmp_path / "manifest.parquet", rows)
    settings = Blur2VidSettings(
        manifest=str(manifest), out=str(tmp_path / "run"), epochs=8, crop=40, batch_size=4, workers=0, device="cpu"
    )
    fresh = evaluate(manifest, None, net=make_network("small"), device="cpu", ssim=False)
    # the floor, to within the flows' small initial weights
    np.testing.assert_allclose(fresh["ppsnr"], fresh["baseline_ppsnr"], atol=0.05)
    result = evaluate(manifest, train(settings), device="cpu", ssim=False)
    assert result["samples"] == 4
    gain = np.array(result["ppsnr"]) - np.array(result["baseline_ppsnr"])
    note = f"pPSNR gain over the blurry input: {np.round(gain, 2)} dB"
    # measured: +2.77 / +2.35 dB on x0 / x6 (+2.87 / +2.40 without the global context, about +2.5
    # before the path head and the flow term)
    assert gain[[0, 6]].min() > 1.0 and gain.mean() > 0.5, note


def test_train_eval_deblur_commands(ordered, tmp_path, capsys):
    run = tmp_path / "run dir"  # a space in the path
    args = ["train-blur2vid", "--manifest", str(ordered), "--out", str(run), "--loss", "hypercut"]
    args += ["--hypercut", str(PRETRAINED), "--epochs", "1", "--crop", "36", "--batch-size", "2", "--device", "cpu"]
    assert rb2v_main(args) == 0
    assert capsys.readouterr().out.strip() == str(run / "last.pt")
    settings = json.loads((run / "settings.json").read_text())
    assert settings["loss"] == "hypercut" and settings["crop_used"] == 36
    assert settings["order_labels"]["checkpoint"] == str(PRETRAINED)  # which HyperCUT made the labels
    assert list(pd.read_csv(run / "log.csv")["epoch"]) == [1]

    out_json = tmp_path / "eval.json"
    args = ["eval-blur2vid", "--manifest", str(ordered), "--checkpoint", str(run), "--hypercut", str(PRETRAINED)]
    assert rb2v_main([*args, "--json", str(out_json), "--device", "cpu"]) == 0
    result = json.loads(out_json.read_text())
    for key in ("ppsnr", "psnr_forward", "baseline_ppsnr"):
        assert len(result[key]) == 7, key
    assert result["ppsnr_mean"] == pytest.approx(np.mean(result["ppsnr"]))
    assert np.mean(result["ppsnr"]) >= np.mean(result["psnr_forward"]) - 1e-9  # the better direction per sample
    assert 0 < result["pssim_mean"] <= 1 and {"hit", "con@3"} <= set(result)
    # the floor, computed here from the files: every frame = the stored blurry input
    df = read_manifest(ordered)
    test = df[df.split == "test"]
    floors = [
        frame_psnrs(np.repeat(read_image(ordered.parent / r.blur_path)[None], 7, 0), sharp)
        for r in test.itertuples()
        for sharp in [np.stack([read_image(ordered.parent / p) for p in r.sharp_paths])]
    ]
    np.testing.assert_allclose(result["baseline_ppsnr"], np.mean(floors, axis=0))
    assert result["samples"] == len(test) == 2

    # deblur: an odd-sized photo (37x53) and a folder, frames of the input's size, a GIF and an MP4
    photo = read_image(STREET / "00000.jpg")
    odd = tmp_path / "in put" / "odd photo.png"
    write_image(odd, cv2.resize(photo, (53, 37), interpolation=cv2.INTER_AREA))
    out = tmp_path / "frames"
    base = ["deblur", str(odd), "--checkpoint", str(run), "--out", str(out), "--device", "cpu"]
    assert rb2v_main([*base, "--video", "gif", "--tile", "24", "--overlap", "8"]) == 0
    frames = sorted((out / "odd photo").glob("frame*.png"))
    assert [f.name for f in frames] == [f"frame{k:03d}.png" for k in range(1, 8)]
    assert {read_image(f).shape for f in frames} == {(37, 53, 3)}
    assert (out / "odd photo" / "odd photo.gif").stat().st_size > 0
    # a folder: every image OpenCV reads (a BMP too), not the hidden files a Mac copies beside them
    write_image(odd.parent / "bmp photo.bmp", cv2.resize(photo, (40, 32), interpolation=cv2.INTER_AREA))
    (odd.parent / "._odd photo.png").write_bytes(b"\x00\x05\x16\x07 not an image")
    assert (
        rb2v_main(["deblur", str(odd.parent), "--video", "--checkpoint", str(run), "--out", str(tmp_path / "v")]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["bmp photo", "odd photo"]
    assert (tmp_path / "v" / "odd photo" / "odd photo.mp4").stat().st_size > 0
    assert read_image(tmp_path / "v" / "bmp photo" / "frame004.png").shape == (32, 40, 3)


def test_tiles_cover_the_image_and_blend_exactly(tmp_path):
    assert tile_starts(100, 40, 8) == [0, 32, 60] and tile_starts(30, 40, 8) == [0]
    for length, tile, overlap in ((100, 40, 8), (97, 24, 8), (513, 512, 32)):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    # with its last conv zeroed the network predicts the blurry input itself: blending overlapping
    # tiles must give it back
    net = make_network("small").eval()
    torch.nn.init.zeros_(net.tail.weight)
    image = read_image(STREET / "00001.jpg")[:45, :71]
    tiled = deblur_array(net, image, torch.device("cpu"), tile=20, overlap=6)
    assert tiled.shape == (7, 45, 71, 3)
    np.testing.assert_allclose(tiled, np.repeat(image[None], 7, 0), atol=1e-5)


def test_synth_reds_dataset_end_to_end(tmp_path):
    """synth-reds over 120 fps videos made from a real street frame -> order -> train -> eval."""
    photo = cv2.resize(read_image(STREET / "00002.jpg"), (171, 96), interpolation=cv2.INTER_AREA)
    for v, (y, dx) in enumerate(((10, 3), (40, -3), (20, 4))):
        for i in range(12):  # 3 samples of 4 source frames each
            x = 60 + dx * i
            write_image(tmp_path / "videos" / f"pan{v}" / f"{i:05d}.png", photo[y : y + 40, x : x + 40])
    assert rb2v_main(["synth-reds", "--fps", "120", "--input", str(tmp_path / "videos"), "--out", str(tmp_path / "o"),
                      "--no-report"]) == 0  # fmt: skip
    manifest = tmp_path / "o" / "datasets" / "reds" / "manifest.parquet"
    df = read_manifest(manifest)
    df["split"] = np.where(df["subject"] == "pan2", "test", "train")  # one video held out
    write_manifest(manifest, df)
    assert rb2v_main(["order", "--manifest", str(manifest), "--checkpoint", str(PRETRAINED), "--workers", "0"]) == 0
    run = tmp_path / "run"
    assert rb2v_main(["train-blur2vid", "--manifest", str(manifest), "--out", str(run), "--loss", "hypercut",
                      "--hypercut", str(PRETRAINED), "--epochs", "1", "--batch-size", "3"]) == 0  # fmt: skip
    result = evaluate(manifest, run, device="cpu")
    assert result["samples"] == 3 and all(np.isfinite(result["ppsnr"]))
    assert list(result["by_subject"]) == ["pan2"] and result["by_subject"]["pan2"]["samples"] == 3
    # two videos in the test split: each one's figures are those of evaluating it alone, and pooled
    # (as the blur2vid bench pools the panning videos) they are the split's
    df = read_manifest(manifest)
    df["split"] = np.where(df["subject"] == "pan0", "train", "test")
    update_manifest(manifest, df)
    both = evaluate(manifest, run, device="cpu")
    assert sorted(both["by_subject"]) == ["pan1", "pan2"] and both["samples"] == 6
    alone = both["by_subject"]["pan2"]
    for key in ("ppsnr", "baseline_ppsnr"):
        np.testing.assert_allclose(alone[key], result[key], atol=1e-3)
        np.testing.assert_allclose(pooled(both["by_subject"], ["pan1", "pan2"])[key], both[key], atol=1e-9)
    assert alone["pssim_mean"] == pytest.approx(result["pssim_mean"], abs=1e-4)
    assert abs(np.mean(both["by_subject"]["pan1"]["ppsnr"]) - np.mean(alone["ppsnr"])) > 1e-3  # not one figure twice


def test_bad_input_gives_one_line_errors(ordered, tmp_path, capsys):
    def error_of(args) -> str:
        capsys.readouterr()
        assert rb2v_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rb2v: error:") and "\n" not in err, err
        return err

    ckpt = tmp_path / "b2v.pt"
    save_checkpoint(ckpt, {"model": make_network("small").state_dict(), "net": make_network("small").config()})
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert "not a readable image" in error_of(["deblur", str(bad), "--checkpoint", str(ckpt), "--out", str(tmp_path)])
    assert "input not found" in error_of(["deblur", str(tmp_path / "nope.png"), "--checkpoint", str(ckpt),
                                          "--out", str(tmp_path)])  # fmt: skip
    good = tmp_path / "good.png"
    write_image(good, read_image(STREET / "00000.jpg")[:40, :40])
    (tmp_path / "other").mkdir()
    write_image(tmp_path / "other" / "good.jpg", read_image(good))
    # a folder's entries that are not images, and its sub-folders, are said to be left out (they were silently)
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    write_image(tmp_path / "folder" / "a.png", read_image(good))
    (tmp_path / "folder" / "notes.txt").write_text("x")
    capsys.readouterr()
    assert (
        rb2v_main(["deblur", str(tmp_path / "folder"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "fo")]) == 0
    )
    assert f"note: {tmp_path / 'folder'}: 2 item(s) left out, not images or sub-folders (e.g. notes.txt)" in (
        capsys.readouterr().err
    )
    err = error_of(["deblur", str(good), str(tmp_path / "other"), "--checkpoint", str(ckpt), "--out", str(tmp_path)])
    assert "same name as" in err and "good.png" in err  # both would be written to OUT/good/
    # the wrong kind of checkpoint, both ways round
    err = error_of(["deblur", str(good), "--checkpoint", str(PRETRAINED), "--out", str(tmp_path / "o")])
    assert "not a blur2vid checkpoint" in err and "rb2v.hypercut/1" in err
    err = error_of(["eval-blur2vid", "--manifest", str(ordered), "--checkpoint", str(ckpt), "--hypercut", str(ckpt)])
    assert "not a HyperCUT checkpoint" in err
    err = error_of(["deblur", str(good), "--checkpoint", str(good), "--out", str(tmp_path / "o")])  # a photo
    assert "not a file of tensors saved by PyTorch" in err and "weights_only" not in err
    # non-finite weights deblurred into garbage and evaluated to NaN with exit 0; a network of another
    # shape printed PyTorch's list of every mismatched tensor, without the file's name
    state = make_network("small").state_dict()
    first = next(iter(state))
    nan_ckpt, wide = tmp_path / "nan.pt", tmp_path / "wide.pt"
    save_checkpoint(
        nan_ckpt, {"model": {**state, first: state[first] * float("nan")}, "net": make_network("small").config()}
    )
    save_checkpoint(wide, {"model": state, "net": make_network("base").config()})
    for args in (["deblur", str(good), "--out", str(tmp_path / "o")], ["eval-blur2vid", "--manifest", str(ordered)]):
        err = error_of([*args, "--checkpoint", str(nan_ckpt)])
        assert f"{nan_ckpt}: non-finite weights in model.{first} (1 of " in err and not (tmp_path / "o").exists()
        err = error_of([*args, "--checkpoint", str(wide)])
        assert err.startswith(f"rb2v: error: {wide}: does not hold a blur2vid network (RuntimeError: ")
        assert err.endswith("more))") and len(err) < 400 + len(str(wide))
    hypercut = torch.load(PRETRAINED, weights_only=True)
    hypercut["hyperplane"] = {**hypercut["hyperplane"], "bias": hypercut["hyperplane"]["bias"] * float("inf")}
    torch.save(hypercut, tmp_path / "hc_inf.pt")
    err = error_of(["eval-hypercut", "--manifest", str(ordered), "--checkpoint", str(tmp_path / "hc_inf.pt")])
    assert "hc_inf.pt: non-finite weights in hyperplane.bias" in err
    # hypercut training needs computed labels and a HyperCUT checkpoint
    unlabelled = make_dataset(tmp_path / "raw", photos=("astronaut", "coffee"), takes=1, samples=1, size=40)
    train_args = ["train-blur2vid", "--manifest", str(unlabelled), "--out", str(tmp_path / "r"), "--loss", "hypercut"]
    assert "never computed" in error_of([*train_args, "--hypercut", str(PRETRAINED)])
    assert "needs --hypercut" in error_of(train_args)
    assert "nothing to resume" in error_of([*train_args[:4], str(tmp_path / "none"), "--resume"])
    assert "must be >= 0" in error_of([*train_args[:4], str(tmp_path / "f"), "--flow-weight", "-1"])
    assert "the first epoch is 1" in error_of([*train_args, "--alpha-from", "0"])
    never = [*train_args, "--hypercut", str(PRETRAINED), "--alpha", "0.2", "--alpha-from", "3", "--epochs", "2"]
    assert "R_hyp would never be used" in error_of(never)
    # numbers out of range, refused before any work (--epochs 0 trained the default 30 epochs, the others
    # were internal errors)
    for option, value, message in [
        ("--epochs", "0", "--epochs 0: must be at least 1"),
        ("--batch-size", "0", "--batch-size 0: must be at least 1"),
        ("--lr", "-1", "--lr -1: must be positive"),
        ("--workers", "-1", "--workers -1: must be at least 0"),
        ("--alpha", "-0.5", "--alpha -0.5: must be >= 0"),
        # NaN passed every comparison (NaN weights trained a NaN loss with exit 0), -1 was an internal error
        ("--alpha", "nan", "--alpha nan: must be a finite number"),
        ("--flow-weight", "nan", "--flow-weight nan: must be a finite number"),
        ("--lr", "inf", "--lr inf: must be a finite number"),
        ("--seed", "-1", "--seed -1: must be between 0 and 2**63 - 1"),
        # the flow term's DIS needs 12 px (an internal OpenCV error)
        ("--crop", "11", "--crop 11: the flow term estimates the true frames' flows (DIS), which needs sides >= 12"),
    ]:
        loss = ["--loss", "hypercut"] if option.startswith("--alpha") else []  # else a note: not used
        assert message in error_of([*train_args[:4], str(tmp_path / "n"), *loss, option, value])
    assert not (tmp_path / "n").exists()
    # options of the hypercut loss given to another loss are said, not taken in silence
    capsys.readouterr()
    assert rb2v_main([*train_args[:4], str(tmp_path / "n"), "--alpha", "0.2", "--hypercut", str(PRETRAINED),
                      "--epochs", "0"]) == 2  # fmt: skip
    assert capsys.readouterr().err.splitlines()[0] == (
        "note: --hypercut, --alpha not used: they apply to --loss hypercut, not naive"
    )
    # ... and settings.json says what the run used (it recorded alpha 0.2 and the checkpoint of a naive run)
    naive = tmp_path / "naive"
    assert rb2v_main([*train_args[:4], str(naive), "--alpha", "0.2", "--hypercut", str(PRETRAINED),
                      "--epochs", "1", "--crop", "32", "--flow-weight", "0"]) == 0  # fmt: skip
    recorded = json.loads((naive / "settings.json").read_text())
    assert recorded["loss"] == "naive" and recorded["hypercut"] is None and recorded["alpha"] == 0
    # frames too small for the HyperCUT that scores the predictions' order (an internal error)
    tiny = make_dataset(tmp_path / "tiny", photos=("astronaut", "coffee"), takes=1, samples=1, size=24)
    err = error_of(["eval-blur2vid", "--manifest", str(tiny), "--checkpoint", str(ckpt), "--hypercut", str(PRETRAINED),
                    "--split", "train"])  # fmt: skip
    assert "frames of side 24 are too small for --hypercut (HyperCUT needs 33 px)" in err
    # tiles further apart than their side left black bands between them
    err = error_of(["deblur", str(good), "--checkpoint", str(ckpt), "--out", str(tmp_path / "t"),
                    "--tile", "16", "--overlap", "-2"])  # fmt: skip
    assert "--overlap -2: must be >= 0" in err and not (tmp_path / "t").exists()
    # --tile 0 was blamed on --overlap, --tile 1 ran the network once per pixel
    for tile in ("0", "1"):
        err = error_of(["deblur", str(good), "--checkpoint", str(ckpt), "--out", str(tmp_path / "t"), "--tile", tile])
        assert f"--tile {tile}: must be at least 16" in err and not (tmp_path / "t").exists()
    hypercut_args = ["train-hypercut", "--manifest", str(unlabelled), "--out", str(tmp_path / "h")]
    assert "--batch-size 0: must be at least 1" in error_of([*hypercut_args, "--batch-size", "0"])


def test_bench_control_copy(ordered, tmp_path):
    """The blur2vid bench's control copy of a dataset (its samples read through links): the classical
    labels put every sequence, as the loader serves it, on the negative side of its own measured shift."""
    import rb2v.benchmarks.blur2vid as bench
    from hypercut_models.blur2vid.data import BlurSequenceDataset
    from rb2v.benchmarks.hypercut import phase_correlation_scores

    control = bench.classical_control(ordered, tmp_path / "classical")
    assert bench.CLASSICAL in read_manifest(control).attrs["metadata"]["hypercut_order"]
    served = BlurSequenceDataset(control, None, ordered=True)
    for i in range(len(served)):
        frames = served[i][1].numpy().transpose(0, 2, 3, 1)
        assert phase_correlation_scores(frames)[0][0] < 0
    assert set(read_manifest(control)["order"]) == {"ignore", "reverse"}  # both ways are served


def test_bench_by_source_table_pools_each_source_by_its_samples():
    """The blur2vid bench's per-source table: border frames (x0+x6)/2 of each test source, its crops
    pooled by sample count, for the floor and each model."""
    from rb2v.benchmarks.blur2vid import by_source_table

    def entry(samples, border, floor):
        return {"samples": samples, "ppsnr": [border, 0, 0, 0, 0, 0, border + 2],
                "baseline_ppsnr": [floor] * 7}  # fmt: skip

    naive = {"street-0": entry(1, 30.0, 31.0), "street-1": entry(3, 34.0, 35.0), "pan-0": entry(2, 20.0, 19.0)}
    hyper = {"street-0": entry(1, 29.0, 31.0), "street-1": entry(3, 33.0, 35.0), "pan-0": entry(2, 22.0, 19.0)}
    lines = by_source_table({"naive": {"by_subject": naive}, "hypercut": {"by_subject": hyper}}).splitlines()
    cells = {line.split()[0]: [float(v) for v in line.split()[-2:]] for line in lines[2:5]}
    assert lines[1].split()[-2:] == ["street", "pan"]
    assert cells["blurry"] == [34.0, 19.0]  # (31 + 3 * 35) / 4
    assert cells["naive"] == [34.0, 21.0]  # border (x0 + x6) / 2 = x0 + 1, pooled (31 + 3 * 35) / 4
    assert cells["hypercut"] == [33.0, 23.0]
    assert lines[-1] == "(test samples per source: street 4, pan 2)"
    assert not any(line.startswith("motion") for line in lines)  # runs scored without motion figures

    # with the motion figures: the ground truth's and each model's, pooled by sample count
    for by, predicted in ((naive, 0.5), (hyper, 2.0)):
        for subject, r in by.items():
            truth = 8.0 if subject.startswith("pan") else 0.4 * int(subject[-1])
            r.update(motion_true_px=truth, motion_predicted_px=predicted * (1 + int(subject[-1])))
    lines = by_source_table({"naive": {"by_subject": naive}, "hypercut": {"by_subject": hyper}}).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("motion x0 -> x6"))
    assert lines[at].split()[-2:] == ["street", "pan"]
    cells = {line.split()[0]: [float(v) for v in line.split()[-2:]] for line in lines[at + 1 : at + 4]}
    assert cells["ground"] == [0.3, 8.0]  # (0 + 3 * 0.4) / 4
    assert cells["naive"] == [0.88, 0.5]  # (0.5 + 3 * 1.0) / 4
    assert cells["hypercut"] == [3.5, 2.0]


def test_a_diverged_run_stops_and_keeps_its_last_good_epoch(ordered, tmp_path):
    """A loss that turns NaN or inf stops the run before its backward pass (which filled the weights with
    NaN, saved them with exit 0, and at --lr 100 crashed the process in the backward pass)."""
    out = tmp_path / "r"
    with pytest.raises(Rb2vError, match=r"r: the loss became (nan|inf) in epoch 1: .*\(no epoch was saved\)"):
        train(Blur2VidSettings(manifest=str(ordered), out=str(out), epochs=3, **{**TINY, "lr": 100.0}))
    assert not (out / "last.pt").exists()
    # a good first epoch, then the same run's learning rate raised so that its second epoch diverges
    train(Blur2VidSettings(manifest=str(ordered), out=str(out), epochs=1, **TINY))
    state = load_checkpoint(out)
    state["settings"]["lr"] = 100.0
    save_checkpoint(out / "last.pt", state)
    with pytest.raises(Rb2vError, match=r"in epoch 2: the run diverged, and was stopped \(last.pt keeps epoch 1\)"):
        train(Blur2VidSettings(manifest=str(ordered), out=str(out), epochs=3), resume=True)
    kept = load_checkpoint(out)
    assert kept["epoch"] == 1 and all(np.isfinite(r["loss"]) for r in kept["history"])
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_resume_refuses_another_manifest(ordered, tmp_path, capsys):
    out = tmp_path / "r"
    train(Blur2VidSettings(manifest=str(ordered), out=str(out), epochs=1, **TINY))
    copy = tmp_path / "copy"
    shutil.copytree(ordered.parent, copy)
    with pytest.raises(Rb2vError, match="the run in .* trains on .*, and --resume continues on its own data"):
        train(Blur2VidSettings(manifest=str(copy), out=str(out), epochs=2), resume=True)
    # the run's own manifest, named by its folder, resumes
    assert (
        load_checkpoint(train(Blur2VidSettings(manifest=str(ordered.parent), out=str(out), epochs=2), resume=True))[
            "epoch"
        ]
        == 2
    )
    # a dataset rebuilt at the run's own path with other samples was trained on in silence
    rebuilt = tmp_path / "copy_run"
    train(Blur2VidSettings(manifest=str(copy), out=str(rebuilt), epochs=1, **TINY))
    df = read_manifest(copy / ordered.name)
    write_manifest(copy / ordered.name, df[df["sample_id"] != df[df["split"] == "train"]["sample_id"].iloc[0]],
                   df.attrs["metadata"])  # fmt: skip
    with pytest.raises(Rb2vError, match=r"its training samples changed since the run began \((\d+) sequences then"):
        train(Blur2VidSettings(manifest=str(copy), out=str(rebuilt), epochs=2), resume=True)
