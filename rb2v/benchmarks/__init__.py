"""Benchmarks behind ``rb2v bench``: each module exposes a click command ``main``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # a clone of the repository: benchmarks read its data


def street_frames() -> list[Path]:
    """The frames of the real street video: ``../shared/data/img_seq`` beside the clone, else the
    repository's ``tests/fixtures/img_seq``; a one-line error from an installed wheel (neither exists)."""
    from ..errors import Rb2vError
    from ..io.images import image_files

    for folder in (ROOT / ".." / "shared" / "data" / "img_seq", ROOT / "tests" / "fixtures" / "img_seq"):
        files = image_files(folder) if folder.is_dir() else []
        if files:
            return files
    raise Rb2vError(
        f"{ROOT / 'tests' / 'fixtures' / 'img_seq'}: no frames of the real street video: this benchmark runs "
        "from a clone of the rb2v repository (or with ../shared/data beside it), not from an installed wheel"
    )
