"""``rb2v deblur``'s inputs and outputs, checked before any work.

Nothing here imports torch or the network (seconds): ``rb2v deblur`` checks with it first and tells a
mistake at once; ``deblur`` makes the same checks for a caller of the library.
"""

from __future__ import annotations

from pathlib import Path

from rb2v.errors import Rb2vError
from rb2v.io.images import image_files
from rb2v.manifest import FRAMES_PER_SEQ as FRAMES  # a sample's 7 frames, as network.FRAMES (torch)
from rb2v.outputs import check_output
from rb2v.progress import say

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
MIN_TILE = 16  # twice the base network's total stride (8): a smaller tile is mostly padding


def check_tiling(tile: int, overlap: int) -> None:
    if tile < MIN_TILE:  # --tile 0 was blamed on --overlap, --tile 1 ran one network call per pixel
        raise Rb2vError(f"--tile {tile}: must be at least {MIN_TILE}")
    if overlap < 0:  # tiles further apart than their side would leave bands no tile covers
        raise Rb2vError(f"--overlap {overlap}: must be >= 0")
    if overlap >= tile:
        raise Rb2vError(f"--overlap {overlap} must be smaller than --tile {tile}")


def list_inputs(inputs: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise Rb2vError(f"{item}: no images (PNG, JPEG, BMP, TIFF, WebP) in this folder")
            files += found
            skipped = sorted(p.name + ("/" if p.is_dir() else "") for p in item.iterdir() if p not in found)
            if skipped:  # not images, or sub-folders (not searched): said rather than left out unsaid
                say(f"note: {item}: {len(skipped)} item(s) left out, not images or sub-folders (e.g. {skipped[0]})")
        elif item.exists():
            files.append(item)
        else:
            raise Rb2vError(f"{item}: input not found")
    seen: dict[str, Path] = {}
    for f in files:  # each input gets DIR/<name>/: two inputs of one name would overwrite each other
        if f.stem in seen and seen[f.stem].resolve() != f.resolve():
            raise Rb2vError(f"{f}: same name as {seen[f.stem]}, both would be written to <out>/{f.stem}/")
        seen[f.stem] = f
    return list({f.resolve(): f for f in files}.values())


def prepare(inputs: list[str | Path], out: str | Path, *, video: str | None, tile: int, overlap: int) -> list[Path]:
    """The images to deblur, once the tiling, the inputs and the outputs are checked."""
    check_tiling(tile, overlap)  # before any work: it would fail every image alike
    files = list_inputs(inputs)
    out = Path(out)
    for path in files:  # before any work: a sample's folder of a dataset as --out replaced its frames
        folder = out / path.stem
        names = [f"frame{k:03d}.png" for k in range(1, FRAMES + 1)] + ([f"{folder.name}.{video}"] if video else [])
        for name in names:
            check_output(folder / name, "deblur --out")
    return files
