"""Rig and pipeline settings: typed, validated, errors name the key and the file."""

from __future__ import annotations

import pytest

from rb2v.dataset.settings import load_pipeline
from rb2v.errors import Rb2vError
from rb2v.settings import load_rig


def test_bundled_rig_describes_the_rb2v_rig():
    rig = load_rig()
    assert (rig.blur.fps, rig.sharp.fps) == (25.0, 100.0)
    assert rig.flip_sharp == "horizontal"
    assert (rig.crop.width, rig.crop.height) == (448, 448)
    assert (rig.sequence.frames, rig.sequence.upsample_factor, rig.sequence.synth_subframes) == (7, 2, 19)


@pytest.mark.parametrize("category", ["street", "face", "hand", "reds"])
def test_bundled_pipelines_load(category):
    p = load_pipeline(category)
    assert p.category == category
    assert (p.matting.method != "none") == (category in ("face", "hand"))


def write_rig(tmp_path, extra: str):
    src = load_rig.__globals__["REPO_ROOT"] / "rigs" / "gopro-hero8-beamsplitter.toml"
    path = tmp_path / "rig.toml"
    path.write_text(src.read_text() + extra)
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
    src = load_rig.__globals__["REPO_ROOT"] / "rigs" / "gopro-hero8-beamsplitter.toml"
    bad_ratio.write_text(src.read_text().replace("fps = 100.0", "fps = 60.0"))
    with pytest.raises(Rb2vError, match="fps ratio"):
        load_rig(bad_ratio)
    broken = tmp_path / "b.toml"
    broken.write_text("category = \n")
    with pytest.raises(Rb2vError, match=r"b\.toml: not valid TOML"):
        load_pipeline(broken)
    with pytest.raises(Rb2vError, match="no such pipeline"):
        load_pipeline("underwater")


def test_overrides_take_precedence_and_change_the_hash():
    base = load_pipeline("hand")
    changed = load_pipeline("hand", {"search.radius": 6, "matting.method": None})
    assert changed.search.radius == 6 and changed.matting.method == base.matting.method
    assert changed.hash != base.hash and load_pipeline("hand").hash == base.hash
