"""HyperCUT training, checkpoints, resume, evaluation, order labels and bad input, on a tiny
dataset made from real images (scikit-image photos with smooth camera motion, and frames of a
real street video in tests/fixtures/hypercut/street)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hypercut_models.checkpoint import export_weights, hyperplane_state, load_checkpoint, load_model, save_checkpoint
from hypercut_models.data import SequenceDataset
from hypercut_models.evaluate import evaluate, score_dataset, write_orders
from hypercut_models.losses import Hyperplane, pair_scores
from hypercut_models.network import HyperCUTNet
from hypercut_models.plot import pair_vectors
from hypercut_models.synthetic import make_dataset
from hypercut_models.train import TrainSettings, train
from rb2v.cli import main as rb2v_main
from rb2v.errors import Rb2vError
from rb2v.io.images import read_image
from rb2v.manifest import read_manifest, update_manifest, write_manifest

FIXTURES = Path(__file__).parent / "fixtures" / "hypercut"
STREET = FIXTURES / "street"
# network + hyperplane (float16) of the CPU accuracy run described in fixtures/hypercut/README.md
PRETRAINED = FIXTURES / "pretrained.pt"
TINY = dict(crop=40, batch_size=2, workers=0, device="cpu", lr=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """4 photo subjects (train, 4 samples each) + 1 photo (4) and the street video (3 crops x 1
    sample) for test, 64x64."""
    out = tmp_path_factory.mktemp("hypercut_data")
    return make_dataset(
        out,
        photos=("astronaut", "coffee", "rocket", "brick", "chelsea"),
        test_subjects=("chelsea", "street"),
        video_dirs=(STREET,),
        takes=1,
        samples=4,
        size=64,
        seed=1,
    )


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two photo subjects, two 48x48 train sequences each: for the checkpoint/resume mechanics."""
    out = tmp_path_factory.mktemp("hypercut_tiny")
    return make_dataset(out, photos=("astronaut", "coffee"), takes=1, samples=2, size=48, seed=2)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A short fine-tuning run from the pretrained weights (training from scratch leaves the
    scores at L_h's saddle for a hundred steps or more, too long for a unit test)."""
    out = tmp_path_factory.mktemp("hypercut_run") / "run"
    return train(
        TrainSettings(
            manifest=str(dataset),
            out=str(out),
            epochs=TRAIN_EPOCHS,
            crop=48,
            batch_size=4,
            lr=1e-4,
            workers=0,
            device="cpu",
            init=str(PRETRAINED),
        )
    )


TRAIN_EPOCHS = 2


def test_still_camera_take_keeps_the_scene_and_moves_objects():
    """render_static_take: the scene does not move (phase correlation of the first and last frame
    under 0.3 px), objects cross it, and away from them the frames differ by the sensor noise only."""
    from hypercut_models.learnability import global_shift
    from hypercut_models.synthetic import load_photo, render_static_take

    rng = np.random.default_rng(5)
    frames = render_static_take(load_photo("astronaut"), [load_photo("rocket")], 7, 96, rng, (3.0, 3.0))
    assert frames.shape == (7, 96, 96, 3) and frames.min() >= 0 and frames.max() <= 1
    grey = frames.mean(axis=3)
    assert np.hypot(*global_shift(grey[0], grey[-1])) < 0.3
    change = np.abs(frames - frames[0]).max(axis=(0, 3))  # over the take
    moved = change > 0.1
    assert 0.02 < moved.mean() < 0.6  # objects of 12-40 px crossing 18 px
    still = change < 0.04
    assert still.mean() > 0.4 and np.std((frames[-1] - frames[0])[still]) < 0.01  # noise: 0.005 per frame


def test_dataset_is_real_conformant_and_split_by_subject(dataset):
    df = read_manifest(dataset)
    assert set(df.groupby("subject")["split"].nunique()) == {1}
    assert set(df[df.split == "test"].subject) == {"chelsea", "street"}
    assert (df.psnr_margin > 3).all()  # the right window is clearly the best, as Algorithm 1 needs
    ds = SequenceDataset(dataset, "train", crop=40, flips=True, seed=5)
    frames, index = ds[0]
    assert frames.shape == (7, 3, 40, 40) and frames.dtype == torch.float32
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert torch.equal(ds[0][0], frames)  # the crop is a function of (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], frames)  # ... and a new epoch draws another crop
    # consecutive frames differ (there is motion), the blurry frame is their mean (8-bit rounding)
    assert float((frames[0] - frames[6]).abs().mean()) > 0.02
    row = df.iloc[0]
    sharp = np.stack([read_image(dataset.parent / p) for p in row.sharp_paths])
    blur = read_image(dataset.parent / row.blur_path)
    assert np.abs(blur - sharp.mean(axis=0)).max() <= 0.5 / 255 + 1e-6
    assert np.abs(blur - sharp[0]).max() > 10 / 255  # and it is not simply a sharp frame


def test_training_separates_a_pair_from_its_reverse(trained, dataset):
    net, plane, ckpt = load_model(trained)
    assert ckpt["epoch"] == TRAIN_EPOCHS and ckpt["settings"]["init"] == str(PRETRAINED)
    data = SequenceDataset(dataset, None)
    fwd, rev = score_dataset(net, plane, data, torch.device("cpu"), workers=0)
    hit = np.mean(np.sign(fwd) != np.sign(rev))
    assert hit >= 0.8, f"pair/reverse separated for only {hit:.0%} of the pairs"
    # an untrained network does not: the pair and its reverse land on the same side
    torch.manual_seed(0)
    fresh_fwd, fresh_rev = score_dataset(HyperCUTNet(), Hyperplane(128, 0), data, torch.device("cpu"), workers=0)
    assert np.mean(np.sign(fresh_fwd) != np.sign(fresh_rev)) < 0.2


def test_checkpoint_round_trip(trained, tmp_path):
    """What is saved is what is loaded: a network and hyperplane made here score exactly alike
    after a round trip through save_checkpoint/load_model, while another initialisation does not."""
    torch.manual_seed(3)
    net, plane = HyperCUTNet().eval(), Hyperplane(128, seed=7)
    path = save_checkpoint(
        tmp_path / "made.pt",
        {"model": net.state_dict(), "net": {"out_dim": 128}, "hyperplane": hyperplane_state(plane), "epoch": 0},
    )
    loaded, loaded_plane, ckpt = load_model(path.parent / "made.pt")
    x = torch.rand(2, 7, 3, 40, 40)
    with torch.no_grad():
        expected = pair_scores(net, plane, x)[0]
        assert torch.equal(pair_scores(loaded, loaded_plane, x)[0], expected)
        other = pair_scores(HyperCUTNet().eval(), Hyperplane(128, seed=8), x)[0]
    assert not torch.allclose(other, expected)
    # the hyperplane is reproducible from its seed alone
    assert torch.equal(Hyperplane(128, seed=7).weight, loaded_plane.weight) and loaded_plane.seed == 7

    # the trained run: its settings and the seed-0 hyperplane are in the file, and a run folder loads too
    ckpt = load_checkpoint(trained)
    assert {"model", "hyperplane", "optimizer", "epoch", "settings", "rng", "history"} <= set(ckpt)
    assert ckpt["settings"]["crop"] == 48 and len(ckpt["history"]) == TRAIN_EPOCHS
    _, run_plane, _ = load_model(trained.parent)
    assert torch.equal(run_plane.weight, Hyperplane(128, seed=0).weight)

    # the float16 export is smaller, keeps no optimiser state and scores like the full checkpoint
    small = export_weights(trained, tmp_path / "small.pt")
    assert small.stat().st_size < 0.7 * Path(trained).stat().st_size
    assert "optimizer" not in load_checkpoint(small)
    full_net, full_plane, _ = load_model(trained)
    half_net, half_plane, _ = load_model(small)
    with torch.no_grad():
        a, b = pair_scores(full_net, full_plane, x)[0], pair_scores(half_net, half_plane, x)[0]
    torch.testing.assert_close(b, a, rtol=0.02, atol=0.02 * float(a.abs().max()))


def test_resume_continues_exactly(tiny_dataset, tmp_path, monkeypatch):
    dataset = tiny_dataset
    full = train(TrainSettings(manifest=str(dataset), out=str(tmp_path / "full"), epochs=3, **TINY))

    # the same run, killed right after the checkpoint of epoch 1
    import hypercut_models.train as train_module

    real_save = train_module.save_checkpoint

    def save_then_crash(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    crashed = TrainSettings(manifest=str(dataset), out=str(tmp_path / "crashed"), epochs=3, **TINY)
    with pytest.raises(KeyboardInterrupt):
        train(crashed)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "crashed" / "last.pt")["epoch"] == 1
    with pytest.raises(Rb2vError, match="--resume"):
        train(crashed)
    resumed = train(
        TrainSettings(manifest="ignored: the run's own", out=str(tmp_path / "crashed"), workers=0, device="cpu"),
        resume=True,
    )
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert b["epoch"] == 3
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    log = pd.read_csv(Path(resumed).parent / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3]


def test_train_command(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "cli run"  # a space in the path
    args = [
        "train-hypercut",
        "--manifest",
        str(tiny_dataset.parent),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--crop",
        "40",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    assert rb2v_main(args) == 0
    assert {"last.pt", "log.csv", "settings.json"} <= {p.name for p in out.iterdir()}
    assert capsys.readouterr().out.strip() == str(out / "last.pt")
    assert rb2v_main(args + ["--resume"]) == 0  # already at --epochs: nothing to do
    assert load_checkpoint(out)["epoch"] == 1
    assert rb2v_main(args[:-2] + ["--device", "bogus"]) == 2

    # the last epoch on whole 48x48 frames (the evaluation scale), the first on 40x40 crops
    final = tmp_path / "final"
    head, tail = args[:4], args[7:]  # around "<out> --epochs 1"
    assert rb2v_main([*head, str(final), "--epochs", "2", "--final-epochs", "1", *tail]) == 0
    settings = json.loads((final / "settings.json").read_text())
    assert (settings["crop_used"], settings["final_crop_used"], settings["final_epochs"]) == (40, 48, 1)
    assert load_checkpoint(final)["epoch"] == 2
    assert settings["precision"] == "cuda-only"  # float32 on the CPU unless asked (hypercut_models/README.md)

    # --precision reaches the run; an unknown one is a usage error
    asked = tmp_path / "bf16"
    assert rb2v_main([*head, str(asked), "--epochs", "1", "--precision", "auto", *tail]) == 0
    assert json.loads((asked / "settings.json").read_text())["precision"] == "auto"
    assert load_checkpoint(asked)["settings"]["precision"] == "auto"
    assert rb2v_main([*head, str(tmp_path / "bad16"), "--epochs", "1", "--precision", "half", *tail]) == 2
    capsys.readouterr()
    assert rb2v_main([*head, str(tmp_path / "bad"), "--epochs", "1", "--final-epochs", "2", *tail]) == 2
    assert "--final-epochs 2 must be between 0 and --epochs (1)" in capsys.readouterr().err

    # the direction prior: its term is logged (0 without it, > 0 on these moving sequences)
    prior = tmp_path / "prior"
    assert rb2v_main([*head, str(prior), "--epochs", "1", "--direction-weight", "5", *tail]) == 0
    assert json.loads((prior / "settings.json").read_text())["direction_weight"] == 5.0
    assert load_checkpoint(prior)["history"][-1]["direction_loss"] > 0
    assert load_checkpoint(out)["history"][-1]["direction_loss"] == 0


def test_eval_and_order_commands(trained, dataset, tmp_path, capsys):
    out_json = tmp_path / "eval.json"
    assert (
        rb2v_main(
            [
                "eval-hypercut",
                "--manifest",
                str(dataset),
                "--checkpoint",
                str(trained),
                "--json",
                str(out_json),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    result = json.loads(out_json.read_text())
    n_test = int((read_manifest(dataset)["split"] == "test").sum())  # 4 chelsea + 3 street
    assert n_test == 7 and result["sequences"] == n_test and result["pairs"] == 3 * n_test
    # the same figures, counted here from the scores of the test split with the rules of the paper
    net, plane, _ = load_model(trained)
    test = SequenceDataset(dataset, "test")
    fwd, rev = score_dataset(net, plane, test, torch.device("cpu"), workers=0)
    separated = (fwd >= 0) != (rev >= 0)  # side: negative below 0, positive from 0
    same = [(fwd[s, a] >= 0) == (fwd[s, b] >= 0) for s in range(n_test) for a, b in ((0, 1), (0, 2), (1, 2))]
    all_same = [len({bool(v >= 0) for v in fwd[s]}) == 1 for s in range(n_test)]
    assert result["hit_count"] == int(separated.sum()) and result["hit"] == pytest.approx(separated.mean())
    assert result["con@2_count"] == sum(same) and result["con@3_count"] == sum(all_same)
    assert result["hit_06"] == pytest.approx(separated[:, 0].mean())
    assert result["hit"] >= 0.8  # the short fine-tuning separates most held-out pairs
    out = capsys.readouterr().out
    assert f"{result['con@3_count']}/{n_test} sequences" in out

    # --plot: the t-SNE map of the (x_0, x_6) vectors; those vectors give the scores above
    plot = tmp_path / "tsne.png"
    args = ["eval-hypercut", "--manifest", str(dataset), "--checkpoint", str(trained), "--workers", "0"]
    assert rb2v_main([*args, "--plot", str(plot)]) == 0
    assert read_image(plot).shape[0] > 100
    svg = tmp_path / "tsne.svg"  # the file's type is its suffix's (a PNG was written under any name)
    assert rb2v_main([*args, "--plot", str(svg)]) == 0 and svg.read_text().lstrip().startswith("<?xml")
    capsys.readouterr()
    assert rb2v_main([*args, "--plot", str(tmp_path / "tsne.xyz")]) == 2
    assert "cannot draw a plot of type '.xyz'" in capsys.readouterr().err and not (tmp_path / "tsne.xyz").exists()
    vf, vr = pair_vectors(net, test, torch.device("cpu"))
    assert vf.shape == (n_test, 128)
    with torch.no_grad():
        np.testing.assert_allclose(plane(torch.from_numpy(vf)).numpy(), fwd[:, 0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(plane(torch.from_numpy(vr)).numpy(), rev[:, 0], rtol=1e-4, atol=1e-4)

    # while a build holds the dataset, order is refused at once (it failed on images the build was redoing)
    from rb2v.fsutil import exclusive

    with exclusive(dataset.parent, "build"):
        assert rb2v_main(["order", "--manifest", str(dataset), "--checkpoint", str(trained), "--workers", "0"]) == 2
    assert "is writing it; wait for it to end (order refused meanwhile)" in capsys.readouterr().err
    assert rb2v_main(["order", "--manifest", str(dataset), "--checkpoint", str(trained), "--workers", "0"]) == 0
    df = read_manifest(dataset)
    net, plane, _ = load_model(trained)
    fwd, _ = score_dataset(net, plane, SequenceDataset(dataset, None), torch.device("cpu"), workers=0)
    ds_ids = SequenceDataset(dataset, None).rows["sample_id"].tolist()
    expected = {s: ("ignore" if f < 0 else "reverse") for s, f in zip(ds_ids, fwd[:, 0])}
    assert df.set_index("sample_id")["order"].to_dict() == expected
    meta = json.loads((dataset.parent / "metadata.json").read_text())
    assert {d["id"]: d["order"] for d in meta["data"]} == expected

    # the convention: after reversing the "reverse" sequences, (x_0, x_6) of every sequence whose
    # pair and reverse the model separates lies on the negative side ("ignore")
    flipped = df.copy()
    flipped["sharp_paths"] = [p[::-1] if o == "reverse" else p for p, o in zip(df.sharp_paths, df.order)]
    update_manifest(dataset, flipped)
    write_orders(dataset, trained, workers=0)
    fwd2, rev2 = score_dataset(net, plane, SequenceDataset(dataset, None), torch.device("cpu"), workers=0)
    separated = np.sign(fwd2[:, 0]) != np.sign(rev2[:, 0])
    assert (fwd2[separated, 0] < 0).all()
    relabelled = read_manifest(dataset).set_index("sample_id")["order"]
    assert (relabelled[np.array(ds_ids)[separated]] == "ignore").all()
    update_manifest(dataset, df)  # leave the shared fixture as it was


def test_bad_input_gives_clear_errors(dataset, tmp_path, capsys):
    empty = tmp_path / "empty" / "manifest.parquet"
    write_manifest(empty, [])
    with pytest.raises(Rb2vError, match="no 'train' samples"):
        SequenceDataset(empty, "train")
    assert rb2v_main(["train-hypercut", "--manifest", str(empty), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rb2v: error:") and "no 'train' samples" in err and "\n" not in err

    # a manifest whose images are gone
    df = read_manifest(dataset)
    broken = tmp_path / "broken" / "manifest.parquet"
    write_manifest(broken, df)
    with pytest.raises(Rb2vError, match=r"not found \(\d+ missing"):
        SequenceDataset(broken, "train")

    # checkpoints of something else
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(Rb2vError, match="not a HyperCUT checkpoint"):
        load_model(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(Rb2vError, match="not a readable HyperCUT checkpoint"):
        load_model(junk)
    truncated = tmp_path / "truncated.pt"  # an interrupted copy: torch's first sentence, not its advice
    truncated.write_bytes(other.read_bytes()[:200])
    with pytest.raises(Rb2vError, match=r"truncated.pt: not a readable HyperCUT checkpoint \(RuntimeError: [^.]*\)$"):
        load_model(truncated)
    assert rb2v_main(["eval-hypercut", "--manifest", str(dataset), "--checkpoint", str(other)]) == 2
    assert "not a HyperCUT checkpoint" in capsys.readouterr().err
    with pytest.raises(Rb2vError, match="checkpoint not found"):
        evaluate(dataset, tmp_path / "nowhere.pt")
    with pytest.raises(Rb2vError, match="crop 200 is larger"):
        SequenceDataset(dataset, "train", crop=200)
    # a crop of 0 was taken for "no crop", then an internal error
    with pytest.raises(Rb2vError, match=r"^--crop 0: too small for HyperCUT \(sides of at least"):
        SequenceDataset(dataset, "train", crop=0)
    with pytest.raises(Rb2vError, match=r"^--crop 32: too small"):  # the manifest was blamed
        SequenceDataset(dataset, "train", crop=32)
    # NaN weights trained a NaN loss with exit 0; a negative seed was an internal error after settings.json
    for option, value, message in [
        ("--same-weight", "nan", "--same-weight nan: must be a finite number"),
        ("--clip-grad", "nan", "--clip-grad nan: must be a finite number"),
        ("--direction-weight", "-1", "--direction-weight -1: must be >= 0"),
        ("--seed", "-1", "--seed -1: must be between 0 and 2**63 - 1"),
    ]:
        args = ["train-hypercut", "--manifest", str(dataset), "--out", str(tmp_path / "n"), option, value]
        assert rb2v_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rb2v: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "n").exists()


def test_a_diverged_run_stops(tiny_dataset, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(Rb2vError, match=r"r: the loss became (nan|inf) in epoch \d+: the run diverged"):
        train(
            TrainSettings(manifest=str(tiny_dataset), out=str(out), epochs=6, **{**TINY, "lr": 1e6, "clip_grad": 0.0})
        )
    if (out / "last.pt").exists():
        kept = load_checkpoint(out / "last.pt")
        assert all(np.isfinite(r["loss"]) for r in kept["history"])


def test_final_crop_without_final_epochs_is_said(dataset, tmp_path, capsys):
    args = ["train-hypercut", "--manifest", str(dataset), "--out", str(tmp_path / "n"), "--final-crop", "40"]
    assert rb2v_main([*args, "--epochs", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "note: --final-crop is not used without --final-epochs N (the epochs trained on it)",
        "rb2v: error: --epochs 0: must be at least 1",
    ]


def test_a_new_run_refuses_a_folder_of_other_files(tiny_dataset, tmp_path):
    """--out on a folder of the user's files overwrote its settings.json and log.csv (only last.pt was checked)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "settings.json").write_text('{"my": 1}')
    (mine / "log.csv").write_text("a\n")
    with pytest.raises(Rb2vError, match=r"mine: holds files that are not a run's \(e.g. settings.json\)"):
        train(TrainSettings(manifest=str(tiny_dataset), out=str(mine), epochs=1, **TINY))
    assert (mine / "settings.json").read_text() == '{"my": 1}'
    (mine / "notes.txt").write_text("x")
    (mine / "settings.json").unlink()
    with pytest.raises(Rb2vError, match=r"e.g. notes.txt"):
        train(TrainSettings(manifest=str(tiny_dataset), out=str(mine), epochs=1, **TINY))
    # a run killed while saving its first last.pt left the atomic write's partial file, which blocked
    # every new run in that folder ("holds files that are not a run's (e.g. .last.x1y2z3w4.partial.pt)")
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".last.x1y2z3w4.partial.pt").write_bytes(b"half a checkpoint")
    (killed / "settings.json").write_text(json.dumps({"manifest": "m", "out": str(killed), "seed": 0}))
    train(TrainSettings(manifest=str(tiny_dataset), out=str(killed), epochs=1, **TINY))
    left = sorted(p.name for p in killed.iterdir() if p.name != "tensorboard")
    assert left == ["last.pt", "log.csv", "settings.json"]


def test_resume_says_it_ignores_init(tiny_dataset, tmp_path, capsys):
    """--init with --resume was ignored in silence (the other run settings are named)."""
    out = tmp_path / "r"
    args = ["train-hypercut", "--manifest", str(tiny_dataset), "--out", str(out), "--epochs", "1", "--crop", "40"]
    assert rb2v_main([*args, "--batch-size", "2", "--workers", "0", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert rb2v_main([*args, "--resume", "--init", str(out / "last.pt")]) == 0
    assert "ignoring --crop, --init" in capsys.readouterr().err


def test_a_run_too_short_to_label_is_said(tiny_dataset, tmp_path, capsys):
    """One epoch of a few steps stays inside the 200 over which the escape term fades: its labels came out
    all "ignore" (hit 0 %), which a first smoke run took for a broken tool."""
    train(TrainSettings(manifest=str(tiny_dataset), out=str(tmp_path / "r"), epochs=1, **TINY))
    err = capsys.readouterr().err
    assert "steps in all, fewer than the 200 over which the start-up escape term fades" in err
