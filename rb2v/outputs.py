"""Where a command may write a file the user named (``--json``, ``--plot``, ``deblur --out``,
``interpolate OUT``): anywhere but over a dataset's or a training run's own files. An evaluation's
``--json`` given a dataset's ``metadata.json``, or ``deblur --out`` given a sample's folder, replaced
them with exit 0; the dataset then failed ``rb2v validate``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .errors import Rb2vError
from .manifest.names import MANIFEST_NAME, METADATA_NAME, SAMPLES_DIR

# the files rb2v writes beside a dataset's manifest (build, report, publish, fetch)
DATASET_FILES = frozenset(
    {
        MANIFEST_NAME,
        METADATA_NAME,
        "build.json",
        "rejects.parquet",
        "table1.csv",
        "report.html",
        "README.md",
        "SHA256SUMS",
    }
)
RUN_FILES = frozenset({"settings.json", "log.csv", "tensorboard"})  # what a run writes before its first last.pt
CHECKPOINT_NAME = "last.pt"


def _listed(manifest: Path) -> frozenset[str]:
    """The sample files a manifest names (empty if it cannot be read: then its samples/ folder counts)."""
    return _read_listed(str(manifest), manifest.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)  # deblur checks 7 names an image: the manifest is read once
def _read_listed(manifest: str, mtime_ns: int) -> frozenset[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(manifest, columns=["blur_path", "sharp_paths"])
    except Exception:
        return frozenset()
    listed = set(table.column("blur_path").to_pylist())
    for paths in table.column("sharp_paths").to_pylist():
        listed.update(paths or ())
    return frozenset(listed)


def owner_of(path: str | Path) -> str | None:
    """What ``path`` belongs to, said for an error (None: the user's to write)."""
    path = Path(path).resolve()
    if path.parent.joinpath(CHECKPOINT_NAME).is_file() and path.name in RUN_FILES | {CHECKPOINT_NAME}:
        return f"the training run {path.parent}"
    for folder in path.parents:
        manifest = folder / MANIFEST_NAME
        if not manifest.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        listed = _listed(manifest)
        if rel in DATASET_FILES or rel in listed or (not listed and rel.startswith(f"{SAMPLES_DIR}/")):
            return f"the dataset {folder}"
        return None
    return None


def check_output(path: str | Path, what: str = "") -> None:
    """Refuse, before any work, to write ``path`` over a dataset's or a run's own file."""
    owner = owner_of(path)
    if owner is not None:
        raise Rb2vError(f"{path}: {what + ' ' if what else ''}would replace a file of {owner}; write it elsewhere")
