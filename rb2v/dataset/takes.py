"""Aligned takes as the build stage reads them (the alignment contract's on-disk format)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..alignment import FILE_NAME, Alignment, read_alignment
from ..errors import Rb2vError
from ..settings import RigSettings


@dataclass(frozen=True)
class AlignedTake:
    category: str
    subject: str
    take: str
    folder: Path
    alignment: Alignment
    blur_count: int
    sharp_count: int
    fingerprint: str  # changes whenever the aligned take is rewritten

    @property
    def take_id(self) -> str:
        return f"{self.category}/{self.subject}/{self.take}"

    @property
    def key(self) -> str:
        """A file-name-safe id of the take."""
        return f"{self.subject}__{self.take}"

    def blur_path(self, k: int) -> Path:
        return self.folder / "blur" / f"{k:06d}.png"

    def sharp_path(self, i: int) -> Path:
        return self.folder / "sharp" / f"{i:06d}.png"


def _count_frames(folder: Path) -> int:
    """Frames numbered 000000.png … without gaps; a gap means the take is broken."""
    names = sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []
    for i, name in enumerate(names):
        if name != f"{i:06d}.png":
            raise Rb2vError(f"{folder}: frame {i:06d}.png is missing (found {name})")
    return len(names)


def load_aligned_take(folder: Path, category: str, rig: RigSettings) -> AlignedTake:
    path = folder / FILE_NAME
    alignment = read_alignment(path)
    blur, sharp = _count_frames(folder / "blur"), _count_frames(folder / "sharp")
    if blur == 0 or sharp < 4:
        raise Rb2vError(f"{folder}: aligned take has {blur} blur and {sharp} sharp frames")
    expected, tolerance = rig.align.fps_ratio, rig.align.fps_ratio * rig.align.fps_ratio_tolerance
    if abs(alignment.fps_ratio - expected) > tolerance:
        raise Rb2vError(
            f"{path}: sharp/blur fps ratio {alignment.fps_ratio:.3f} is not the rig {rig.name}'s {expected:g}"
        )
    fingerprint = hashlib.sha256(path.read_bytes() + f"{blur}/{sharp}".encode()).hexdigest()[:16]
    return AlignedTake(category, folder.parent.name, folder.name, folder, alignment, blur, sharp, fingerprint)


def aligned_take_folders(out: Path, category: str) -> list[Path]:
    """The folders of ``category``'s aligned takes under ``OUT/aligned``; none is an error."""
    root = Path(out) / "aligned" / category
    folders = sorted(p.parent for p in root.glob(f"*/*/{FILE_NAME}")) if root.is_dir() else []
    if not folders:
        raise Rb2vError(f"{root}: no aligned takes for category '{category}' (run `rb2v align RAW {out}` first)")
    return folders


def find_aligned_takes(out: Path, category: str, rig: RigSettings) -> tuple[list[AlignedTake], list[tuple[str, str]]]:
    """All aligned takes of ``category`` under ``OUT/aligned``; broken ones come back as (take, error)."""
    takes, broken = [], []
    for folder in aligned_take_folders(out, category):
        try:
            takes.append(load_aligned_take(folder, category, rig))
        except Rb2vError as e:
            broken.append((f"{category}/{folder.parent.name}/{folder.name}", str(e)))
    return takes, broken
