"""The manifest contract's names and sizes and where its file lies, apart from its schema: a command checks
its options against them without importing pyarrow and pandas (``rb2v.manifest`` loads the rest on first
use)."""

from __future__ import annotations

from pathlib import Path

from ..errors import Rb2vError

SCHEMA_TAG = "rb2v.manifest/1"
MANIFEST_NAME = "manifest.parquet"
METADATA_NAME = "metadata.json"
FRAMES_PER_SEQ = 7
SAMPLES_DIR = "samples"  # the dataset folder's sub-folder of sample folders
BLUR_NAME = "blur.png"  # in each sample folder, beside frame001.png …
ORDERS = ("ignore", "reverse")
# schema metadata key: where the ``order`` column's labels came from (``rb2v order`` writes it; absent:
# never computed, every label the default "ignore")
ORDER_KEY = "hypercut_order"
SPLITS = ("train", "test")


def manifest_path(path: str | Path) -> Path:
    """A manifest given as its file or as its dataset's folder: the file."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def manifest_file(path: str | Path) -> Path:
    """``manifest_path``, which must be there."""
    path = manifest_path(path)
    if not path.exists():
        raise Rb2vError(f"{path}: manifest not found")
    return path
