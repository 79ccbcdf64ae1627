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


def scratch_folder(given: str | Path | None, prefix: str, keep: bool = False) -> Path:
    """A benchmark's working folder: ``given`` as it is, or a new temporary one that is removed when the
    command ends, and with ``keep`` only when it fails or is stopped (a stopped ``bench build`` left 1 GB
    in the temporary folder, a failed one an empty folder)."""
    import shutil
    import sys
    import tempfile

    import click

    if given:
        return Path(given)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # called as the command's context closes: on an error, while it is in flight

        def remove() -> None:
            if not keep or sys.exc_info()[0] is not None:
                shutil.rmtree(folder, ignore_errors=True)

        ctx.call_on_close(remove)
    return folder


def int_list(text: str, option: str, low: int = 0) -> list[int]:
    """A comma list of integers >= ``low`` from the command line, or a one-line error naming the option."""
    from ..errors import Rb2vError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise Rb2vError(f"{option} {text!r}: expected a comma list of integers") from None
    if not values or min(values) < low:
        raise Rb2vError(f"{option} {text!r}: expected integers of at least {low}")
    return values
