"""The dataset as Parquet shards in the Hugging Face Hub layout.

``data/<category>/<split>-00000-of-000NN.parquet``: one row per sample with every manifest column
plus the images as bytes in the HF ``Image`` storage layout (struct {bytes, path}): ``blur`` and
``sharp`` (the 7 frames in time order). The HF feature description is stored in the Arrow schema
metadata (key ``huggingface``) as ``datasets`` writes it, so ``load_dataset("parquet", ...)`` decodes
the images. Shards are deterministic: the same dataset gives byte-identical files (resumable publish).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..manifest import FIELDS
from .checksums import mismatch_error

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
IMAGE_FIELDS = [pa.field("blur", IMAGE_TYPE), pa.field("sharp", pa.list_(IMAGE_TYPE))]
VALUE_DTYPES = {
    pa.string(): "string",
    pa.int8(): "int8",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.bool_(): "bool",
}
ROWS_PER_GROUP = 100  # small row groups let the Hub's viewer page through image rows


@dataclass
class Shard:
    key: str  # data/<category>/<split>-00000-of-000NN.parquet
    category: str
    split: str
    rows: pd.DataFrame
    num_bytes: int = 0  # image bytes it holds


def hf_feature(t: pa.DataType) -> dict:
    """The ``datasets`` feature dict of an Arrow type (as stored in Parquet schema metadata)."""
    if t == IMAGE_TYPE:
        return {"_type": "Image"}
    if pa.types.is_fixed_size_list(t):
        return {"feature": hf_feature(t.value_type), "length": t.list_size, "_type": "Sequence"}
    if pa.types.is_list(t):
        return {"feature": hf_feature(t.value_type), "_type": "Sequence"}
    return {"dtype": VALUE_DTYPES[t], "_type": "Value"}


def shard_schema() -> pa.Schema:
    fields = list(FIELDS) + IMAGE_FIELDS
    features = {f.name: hf_feature(f.type) for f in fields}
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    return pa.schema(fields, metadata=meta)


def plan_shards(dataset_dir: Path, df: pd.DataFrame, shard_bytes: int) -> list[Shard]:
    """Split each (category, split) into shards of at most ``shard_bytes`` image bytes (at least one row each)."""
    shards: list[Shard] = []
    for (category, split), rows in df.sort_values("sample_id").groupby(["category", "split"], sort=True):
        groups: list[tuple[list[int], int]] = []
        current: list[int] = []
        size = 0
        for i, row in enumerate(rows.itertuples(index=False)):
            row_bytes = sum((dataset_dir / p).stat().st_size for p in [row.blur_path, *row.sharp_paths])
            if current and size + row_bytes > shard_bytes:
                groups.append((current, size))
                current, size = [], 0
            current.append(i)
            size += row_bytes
        groups.append((current, size))
        n = len(groups)
        for k, (idx, nbytes) in enumerate(groups):
            key = f"data/{category}/{split}-{k:05d}-of-{n:05d}.parquet"
            shards.append(Shard(key, category, split, rows.iloc[idx], nbytes))
    return shards


def _image(dataset_dir: Path, rel: str, sha256: str) -> dict:
    """An image as the Hub stores it, refused when its bytes are not those the manifest records."""
    data = (dataset_dir / rel).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise mismatch_error(dataset_dir / rel)
    return {"bytes": data, "path": rel}


def write_shard(dataset_dir: Path, shard: Shard, out: Path, schema: pa.Schema) -> None:
    """Write one shard, a row group at a time so memory stays at ~ROWS_PER_GROUP samples."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(out, schema, compression="snappy") as writer:
        for start in range(0, len(shard.rows), ROWS_PER_GROUP):
            chunk = shard.rows.iloc[start : start + ROWS_PER_GROUP]
            columns = {f.name: chunk[f.name].tolist() for f in FIELDS}
            columns["color_matrix"] = [[float(v) for v in m] for m in columns["color_matrix"]]
            digests = chunk["sha256"].tolist()  # the blur's, then the sharp frames'
            columns["blur"] = [_image(dataset_dir, p, d[0]) for p, d in zip(chunk["blur_path"], digests)]
            columns["sharp"] = [
                [_image(dataset_dir, p, h) for p, h in zip(ps, d[1:])] for ps, d in zip(chunk["sharp_paths"], digests)
            ]
            writer.write_table(pa.Table.from_pydict(columns, schema=schema), row_group_size=ROWS_PER_GROUP)


def is_shard_key(key: str) -> bool:
    """A Parquet shard of this layout (``data/<category>/<split>-00000-of-000NN.parquet``)."""
    parts = key.split("/")
    return len(parts) == 3 and parts[0] == "data" and parts[2].endswith(".parquet")


def shard_images(path: Path):
    """``(manifest path, bytes, sha256 the manifest records)`` of every image in a shard, a row group at
    a time (memory stays at ~ROWS_PER_GROUP samples)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_GROUP, columns=["blur", "sharp", "sha256"]):
        for blur, sharp, digests in zip(*(batch.column(c).to_pylist() for c in ("blur", "sharp", "sha256"))):
            for image, digest in zip([blur, *sharp], digests):
                yield image["path"], image["bytes"], digest
