"""The dataset manifest (Arrow schema ``rb2v.manifest/1``) and the official HyperCUT export.

One row per sample; paths are relative to the manifest's folder (the dataset folder).
``metadata.json`` mirrors the manifest in the format of the official HyperCUT trainer
(VinAIResearch/HyperCUT ``data/seq7_dataset.py``): it joins ``DATASET_ROOT / name / path``,
so ``name`` is the dataset folder's name and paths are relative to that folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import Rb2vError
from ..fsutil import atomic_path, write_json_atomic
from .names import (
    BLUR_NAME,
    FRAMES_PER_SEQ,
    MANIFEST_NAME,
    METADATA_NAME,
    SCHEMA_TAG,
    manifest_file,
    manifest_path,
)

FIELDS = [
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("category", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("take", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("blur_path", pa.string(), nullable=False),
    pa.field("sharp_paths", pa.list_(pa.string()), nullable=False),
    pa.field("blur_index", pa.int32(), nullable=False),
    pa.field("sharp_start", pa.int32(), nullable=False),
    pa.field("upsample_factor", pa.int8(), nullable=False),
    pa.field("color_matrix", pa.list_(pa.float32(), 12), nullable=False),
    pa.field("psnr", pa.float32(), nullable=False),
    pa.field("psnr_margin", pa.float32(), nullable=False),
    pa.field("interpolator", pa.string(), nullable=True),
    pa.field("matting", pa.string(), nullable=True),
    pa.field("background", pa.string(), nullable=True),
    pa.field("order", pa.string(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("sha256", pa.list_(pa.string()), nullable=False),
]
COLUMNS = [f.name for f in FIELDS]


IDENTITY_COLOUR = np.eye(3, 4, dtype=np.float32).reshape(12).tolist()


def sample_paths(base: str, frames: int = FRAMES_PER_SEQ) -> tuple[str, list[str]]:
    """A sample's files under ``base``: ``blur.png`` and ``frame001.png`` … in time order."""
    return f"{base}/{BLUR_NAME}", [f"{base}/frame{t:03d}.png" for t in range(1, frames + 1)]


def inside_dataset(rel: str) -> bool:
    """A manifest path that names a file inside the dataset's folder: relative, with no ``..``."""
    parts = PurePosixPath(rel).parts
    return bool(parts) and not PurePosixPath(rel).is_absolute() and ".." not in parts


def manifest_digests(df: pd.DataFrame) -> dict[str, str]:
    """The sha256 the manifest records for each file it names, by its path (a POSIX key)."""
    return {
        PurePosixPath(rel).as_posix(): digest
        for row in df.itertuples(index=False)
        for rel, digest in zip((row.blur_path, *row.sharp_paths), row.sha256)
    }


def sample_row(
    *,
    sample_id: str,
    category: str,
    subject: str,
    take: str,
    blur_path: str,
    sharp_paths: list[str],
    blur_index: int,
    sharp_start: int,
    upsample_factor: int,
    width: int,
    height: int,
    sha256: list[str] | None = None,
    color_matrix: Iterable[float] = IDENTITY_COLOUR,
    psnr: float = float("nan"),
    psnr_margin: float = float("nan"),
    interpolator: str | None = None,
    matting: str | None = None,
    background: str | None = None,
    order: str = "ignore",
    split: str | None = None,
) -> dict:
    """One manifest row, every column named (the split is set when the dataset is assembled)."""
    if len(sharp_paths) != FRAMES_PER_SEQ:
        raise ValueError(f"{sample_id}: {len(sharp_paths)} sharp frames, the manifest holds {FRAMES_PER_SEQ}")
    row = {
        "sample_id": sample_id,
        "category": category,
        "subject": subject,
        "take": take,
        "blur_path": blur_path,
        "sharp_paths": list(sharp_paths),
        "blur_index": int(blur_index),
        "sharp_start": int(sharp_start),
        "upsample_factor": int(upsample_factor),
        "color_matrix": [float(v) for v in np.asarray(color_matrix, np.float32).reshape(12)],
        "psnr": float(psnr),
        "psnr_margin": float(psnr_margin),
        "interpolator": interpolator,
        "matting": matting,
        "background": background,
        "order": order,
        "width": int(width),
        "height": int(height),
        "sha256": list(sha256 or []),
    }
    if split is not None:
        row["split"] = split
    return row


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def manifest_schema(metadata: Mapping[str, Any] | None = None) -> pa.Schema:
    meta = {"schema": SCHEMA_TAG}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return pa.schema(FIELDS, metadata=meta)


def to_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Rows (dicts or a DataFrame with the manifest columns) -> an Arrow table of the exact schema."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=COLUMNS)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest rows lack columns {missing}")
    arrays = {}
    for f in FIELDS:
        col = df[f.name].tolist()
        if f.name == "color_matrix":
            col = [np.asarray(m, np.float32).reshape(12).tolist() for m in col]
        elif f.name in ("sharp_paths", "sha256"):
            col = [list(v) for v in col]
        elif f.nullable:
            col = [None if _missing(v) else v for v in col]
        arrays[f.name] = pa.array(col, type=f.type)
    return pa.Table.from_pydict(arrays, schema=manifest_schema(metadata))


def write_manifest(path: str | Path, rows, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the manifest atomically (sorted by sample_id so equal inputs give equal files)."""
    table = to_table(rows, metadata)
    table = table.sort_by([("sample_id", "ascending")])
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_manifest_table(path: str | Path) -> pa.Table:
    path = manifest_file(path)
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise Rb2vError(
            f"{path}: not a readable Parquet manifest ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    tag = (table.schema.metadata or {}).get(b"schema", b"").decode()
    if tag != SCHEMA_TAG:
        raise Rb2vError(f"{path}: not an rb2v manifest (schema tag {tag or 'missing'!r}, expected {SCHEMA_TAG!r})")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise Rb2vError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    return table


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest as a DataFrame (list columns as Python lists); checks the schema tag."""
    return manifest_frame(read_manifest_table(path), path)


def manifest_frame(table: pa.Table, path: str | Path) -> pd.DataFrame:
    """``read_manifest``'s DataFrame of a table already read from ``path``."""
    df = table.to_pandas()
    for c in ("sharp_paths", "sha256", "color_matrix"):
        df[c] = df[c].map(lambda v: [] if v is None else list(v))
    for f in FIELDS:
        if f.nullable:  # None, not NaN, for missing strings
            df[f.name] = pd.Series([None if _missing(v) else v for v in df[f.name]], dtype=object, index=df.index)
    df.attrs["metadata"] = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    df.attrs["path"] = str(manifest_path(path))
    return df


def manifest_metadata(path: str | Path) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (read_manifest_table(path).schema.metadata or {}).items()}


def metadata_json(df: pd.DataFrame, name: str) -> dict:
    """The official HyperCUT ``metadata.json`` content for a manifest."""
    data = []
    for row in df.sort_values("sample_id").itertuples(index=False):
        entry = {"id": row.sample_id, "order": row.order, "partition": row.split, "blur_path": row.blur_path}
        for t, p in enumerate(row.sharp_paths, start=1):
            entry[f"frame{t:03d}_path"] = p
        data.append(entry)
    return {"name": name, "frame_per_seq": FRAMES_PER_SEQ, "data": data}


def write_metadata_json(dataset_dir: str | Path, df: pd.DataFrame | None = None) -> Path:
    """(Re)write ``metadata.json`` beside the manifest, named after the dataset folder."""
    dataset_dir = Path(dataset_dir)
    if df is None:
        df = read_manifest(dataset_dir / MANIFEST_NAME)
    out = dataset_dir / METADATA_NAME
    write_json_atomic(out, metadata_json(df, dataset_dir.resolve().name))  # ".": the folder's own name
    return out


def update_manifest(path: str | Path, df: pd.DataFrame) -> Path:
    """Rewrite a manifest with changed rows, keeping its schema metadata."""
    meta = manifest_metadata(path)
    meta.pop("schema", None)
    return write_manifest(path, df, meta)
