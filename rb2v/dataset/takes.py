"""Aligned takes as the build stage reads them (the alignment contract's on-disk format)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import Rb2vError

REQUIRED = (
    "schema",
    "blur_fps",
    "sharp_fps",
    "flip_sharp",
    "homography",
    "crop",
    "time_offset_s",
    "clock_ratio",
    "sync_method",
)


@dataclass(frozen=True)
class AlignedTake:
    category: str
    subject: str
    take: str
    folder: Path
    alignment: dict
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


def load_aligned_take(folder: Path, category: str) -> AlignedTake:
    path = folder / "alignment.json"
    try:
        raw = path.read_bytes()
        alignment = json.loads(raw)
    except FileNotFoundError:
        raise Rb2vError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Rb2vError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(alignment, dict):
        raise Rb2vError(f"{path}: not an alignment (expected a JSON object)")
    missing = [k for k in REQUIRED if k not in alignment]
    if missing:
        raise Rb2vError(f"{path}: missing field(s) {', '.join(missing)}")
    if alignment["schema"] != "rb2v.alignment/1":
        raise Rb2vError(f"{path}: unknown schema {alignment['schema']!r}")
    blur, sharp = _count_frames(folder / "blur"), _count_frames(folder / "sharp")
    if blur == 0 or sharp < 4:
        raise Rb2vError(f"{folder}: aligned take has {blur} blur and {sharp} sharp frames")
    ratio = alignment["sharp_fps"] / alignment["blur_fps"]
    if not 3.5 < ratio < 4.5:
        raise Rb2vError(f"{path}: sharp/blur fps ratio {ratio:.3f} is not about 4")
    fingerprint = hashlib.sha256(raw + f"{blur}/{sharp}".encode()).hexdigest()[:16]
    return AlignedTake(category, folder.parent.name, folder.name, folder, alignment, blur, sharp, fingerprint)


def find_aligned_takes(out: Path, category: str) -> tuple[list[AlignedTake], list[tuple[str, str]]]:
    """All aligned takes of ``category`` under ``OUT/aligned``; broken ones come back as (take, error)."""
    root = Path(out) / "aligned" / category
    folders = sorted(p.parent for p in root.glob("*/*/alignment.json")) if root.is_dir() else []
    if not folders:
        raise Rb2vError(f"{root}: no aligned takes for category '{category}' (run `rb2v align RAW {out}` first)")
    takes, broken = [], []
    for folder in folders:
        try:
            takes.append(load_aligned_take(folder, category))
        except Rb2vError as e:
            broken.append((f"{category}/{folder.parent.name}/{folder.name}", str(e)))
    return takes, broken
