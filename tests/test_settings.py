"""Rig and pipeline settings: typed, validated, errors name the key and the file."""

from __future__ import annotations

import pytest

from rb2v.dataset.settings import load_pipeline
from rb2v.dataset.stage import StageTools
from rb2v.errors import Rb2vError
from rb2v.settings import DEFAULT_RIG, _find, bundled, load_rig


def test_rigs_and_pipelines_are_found_from_any_folder_and_a_local_one_shadows_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a checkout: the bundled files are found next to the package
    assert sorted(bundled("rigs")) == ["gopro-hero8-beamsplitter"]
    assert {"street", "face", "hand", "reds"} <= set(bundled("pipelines"))
    assert load_rig().sharp.fps == 100.0
    (tmp_path / "rigs").mkdir()
    (tmp_path / "rigs" / "gopro-hero8-beamsplitter.toml").write_text(
        bundled_rig_text().replace("fps = 25.0", "fps = 30.0").replace("fps = 100.0", "fps = 120.0")
    )
    assert load_rig().blur.fps == 30.0  # ./rigs wins over the bundled definition


def test_a_folder_named_like_the_category_is_not_taken_for_its_pipeline(tmp_path, monkeypatch):
    """``rb2v build --category hand`` run beside a folder ``hand/`` read that folder as the pipeline file
    ("hand: cannot read: Is a directory"); a name is a path only when it is a file or ends in .toml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hand").mkdir()
    (tmp_path / "gopro-hero8-beamsplitter").mkdir()
    assert _find("pipelines", "hand").name == "hand.toml"
    assert load_pipeline("hand").category == "hand"
    assert load_rig("gopro-hero8-beamsplitter").blur.fps == 25.0


def test_the_build_takes_window_and_factor_from_the_rigs_sequence_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rigs").mkdir()
    (tmp_path / "rigs" / "wide.toml").write_text(bundled_rig_text().replace("frames = 7", "frames = 10"))
    # refused as the pipeline is read, naming its file (they were found only when a build began)
    with pytest.raises(Rb2vError, match=r"pipelines/street\.toml: rig wide: sequence\.frames = 10.*holds 7"):
        load_pipeline("street", {"rig": "wide", "upsample.interpolator": "linear"})
    with pytest.raises(
        Rb2vError, match=r"pipelines/street\.toml: search\.subframes = 13, but rig .* from 19 sub-frames"
    ):
        load_pipeline("street", {"search.subframes": 13, "upsample.interpolator": "linear"})
    tools = StageTools.create(load_pipeline("street", {"upsample.interpolator": "linear"}))
    assert (tools.sequence.frames, tools.sequence.upsample_factor) == (7, 2)


@pytest.mark.parametrize("category", ["street", "face", "hand", "reds"])
def test_bundled_pipelines_load(category):
    p = load_pipeline(category)
    assert p.category == category
    assert (p.matting.method != "none") == (category in ("face", "hand"))


def bundled_rig_text() -> str:
    return _find("rigs", DEFAULT_RIG).read_text()


def write_rig(tmp_path, extra: str):
    path = tmp_path / "rig.toml"
    path.write_text(bundled_rig_text() + extra)
    return path


def test_unknown_key_is_named_with_its_file(tmp_path):
    path = write_rig(tmp_path, "\n[crop2]\nwidth = 1\n")
    with pytest.raises(Rb2vError, match=r"rig\.toml: unknown key 'crop2'"):
        load_rig(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('category = "hand"\n[search]\nradius = "four"\n')
    with pytest.raises(Rb2vError, match=r"p\.toml: key 'search\.radius' must be an integer"):
        load_pipeline(path)
    path.write_text('category = "hand"\n[matting]\nmethod = "magic"\n')
    with pytest.raises(Rb2vError, match=r"key 'matting\.method' must be one of"):
        load_pipeline(path)


def test_invalid_values_and_broken_toml(tmp_path):
    bad_ratio = tmp_path / "r.toml"
    bad_ratio.write_text(bundled_rig_text().replace("fps = 100.0", "fps = 60.0"))
    with pytest.raises(Rb2vError, match="fps ratio"):
        load_rig(bad_ratio)
    broken = tmp_path / "b.toml"
    broken.write_text("category = \n")
    with pytest.raises(Rb2vError, match=r"b\.toml: not valid TOML"):
        load_pipeline(broken)
    with pytest.raises(Rb2vError, match="no such pipeline"):
        load_pipeline("underwater")
    with pytest.raises(Rb2vError, match=r"lens\.intrinsics_sharp must be \[fx, fy, cx, cy\]"):
        load_rig(overrides={"lens.intrinsics_sharp": [500.0, 500.0, 320.0]})
    with pytest.raises(Rb2vError, match=r"lens\.intrinsics_blur must be .* fx, fy > 0, got \[0\.0"):
        load_rig(overrides={"lens.intrinsics_blur": [0.0, 500.0, 320.0, 270.0]})
    with pytest.raises(Rb2vError, match=r"qc: shift_grid must be 1 to 4 \(tiles per side\), got 0"):
        load_pipeline("street", {"qc.shift_grid": 0})
    assert load_pipeline("street").qc.shift_grid == 2 and load_pipeline("hand").qc.shift_grid == 1
    with pytest.raises(Rb2vError, match=r"qc: max_clock_steps must be at least 1 .*, got 0\.5"):
        load_pipeline("hand", {"qc.max_clock_steps": 0.5})
    assert load_pipeline("face", {"qc.max_clock_steps": float("inf")}).qc.max_clock_steps == float("inf")
    with pytest.raises(Rb2vError, match=r"qc: move_min_frames must be 0 \(no check\) or more, got -1"):
        load_pipeline("face", {"qc.move_min_frames": -1})
    assert load_pipeline("hand").qc.move_min_frames == 5
    with pytest.raises(
        Rb2vError, match=r"qc: lone_shift_factor must be at least 1 \(1: no sample kept alone\), got 0.5"
    ):
        load_pipeline("street", {"qc.lone_shift_factor": 0.5})
    # accepted before: a PNG level beyond zlib's, NaN thresholds that reject every sample, a negative search
    # window (an internal error in sync), a negative tolerance (blamed on a correct frame-rate ratio)
    for category, key, value, message in [
        ("street", "output.png_compression", 15, r"output: png_compression must be a zlib level 0-9, got 15"),
        ("hand", "qc.min_psnr", float("nan"), r"key 'qc\.min_psnr' must be a number, got nan"),
        # a 5 s build took 280 s; the devices were refused without the file or the key ('cuda-1': an internal error)
        ("street", "search.radius", 1000, r"search: radius must be 1 to 64 \(upsampled steps\), got 1000"),
        ("hand", "search.clock_prior_db", -8.0, r"search: clock_prior_db must be a number >= 0 .*, got -8\.0"),
        ("street", "upsample.device", "gpu", r"upsample: unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
        ("hand", "matting.device", "cuda-1", r"matting: unknown device 'cuda-1'"),
        ("face", "search.device", "tpu", r"search: unknown device 'tpu'"),
    ]:
        with pytest.raises(Rb2vError, match=r"pipelines/" + category + r"\.toml: " + message):
            load_pipeline(category, {key: value})
    for key, value, message in [
        ("align.max_offset_s", -1.0, r"align\.max_offset_s must be positive \(s\), got -1\.0"),
        ("align.fps_ratio_tolerance", -1.0, r"align\.fps_ratio_tolerance must be in \[0, 1\), got -1\.0"),
        ("align.min_inliers", -5, r"align\.min_inliers must be at least 4, got -5"),
        ("align.png_compression", 12, r"align\.png_compression must be a zlib level 0-9, got 12"),
        # reported per take, after takes.parquet was written
        ("align.sync_methods", [], r"align\.sync_methods: no method \(use one or more of timecode, audio, visual\)"),
        # internal errors in simulate-rig or in each take's alignment (a NaN rate, an infinite search window,
        # a distortion model OpenCV does not have), or every take failing alike (no frame pairs to match)
        ("blur.fps", float("nan"), r"key 'blur\.fps' must be a number, got nan"),
        ("sharp.fps", float("inf"), r"camera fps, width and height must be positive, got inf fps"),
        ("align.max_offset_s", float("inf"), r"align\.max_offset_s must be positive \(s\), got inf"),
        ("align.homography_frames", 0, r"align\.homography_frames must be at least 1, got 0"),
        ("lens.dist", [0.1] * 15, r"lens\.dist holds 15 coefficients, more than OpenCV's 14"),
        ("align.sync_methods", ["audio", "gps"], r"align\.sync_methods: unknown method\(s\) 'gps'"),
    ]:
        with pytest.raises(Rb2vError, match=message):
            load_rig(overrides={key: value})


def test_overrides_take_precedence_and_change_the_hash():
    base = load_pipeline("hand")
    changed = load_pipeline("hand", {"search.radius": 6, "matting.method": None})
    assert changed.search.radius == 6 and changed.matting.method == base.matting.method
    assert changed.hash != base.hash and load_pipeline("hand").hash == base.hash


def test_model_options_a_build_does_not_use_are_said(capsys):
    """--backgrounds on a street build, a CDFI checkpoint with the flow interpolator: taken in silence before."""
    from rb2v.dataset.settings import note_unused_options

    note_unused_options(
        load_pipeline("street"), {"--cdfi-checkpoint": "c.pth", "--backgrounds": "photos", "--bgmv2-checkpoint": None}
    )
    assert capsys.readouterr().err.splitlines() == [
        "note: --cdfi-checkpoint is not used: the interpolator is flow",
        "note: --backgrounds is not used: this build has no matting",
    ]
    note_unused_options(load_pipeline("hand"), {"--backgrounds": "photos", "--bgmv2-checkpoint": "b.pth"})
    assert capsys.readouterr().err.splitlines() == ["note: --bgmv2-checkpoint is not used: matting is chroma"]


@pytest.mark.parametrize("category", ["street", "face", "hand", "reds"])
def test_unused_model_settings_leave_a_units_key_as_it_was(category):
    """A unit's key ignores the settings of models the build does not use, and with the bundled settings it is
    the key of every setting but the split (as before that rule): finished units of earlier builds stay done."""
    from dataclasses import asdict

    from rb2v.config import settings_hash
    from rb2v.dataset.stage import unit_key

    settings = load_pipeline(category)
    every = {k: v for k, v in asdict(settings).items() if k != "split"}
    assert unit_key(["take"], settings) == settings_hash({"inputs": ["take"], "settings": every})
    unused = {"upsample.cdfi_checkpoint": "c.pth", "upsample.device": "cpu", "matting.bgmv2_checkpoint": "b.pth"}
    if settings.matting.method == "none":
        unused["matting.backgrounds"] = "photos"
    assert unit_key(["take"], load_pipeline(category, unused)) == unit_key(["take"], settings)
    assert unit_key(["take"], load_pipeline(category, {"search.radius": 5})) != unit_key(["take"], settings)
