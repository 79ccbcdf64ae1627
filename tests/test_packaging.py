"""The distribution's package list matches the tree (a package missing from it would be
missing from every wheel), and the bundled rigs/pipelines ship inside it."""

from __future__ import annotations

from pathlib import Path

from rb2v.config import read_toml

ROOT = Path(__file__).resolve().parent.parent


def test_every_source_package_ships_in_the_wheel():
    setup = read_toml(ROOT / "pyproject.toml")["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("rb2v", "hypercut_models")
        for p in (ROOT / top).rglob("__init__.py")
    }
    listed = set(setup["packages"])
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    data = {"rb2v.rigs": "rigs", "rb2v.pipelines": "pipelines"}
    assert listed - on_disk == set(data), f"listed but not on disk: {sorted(listed - on_disk - set(data))}"
    assert setup["package-dir"] == data
    for package, folder in data.items():
        assert list((ROOT / folder).glob("*.toml")) and setup["package-data"][package] == ["*.toml"]
