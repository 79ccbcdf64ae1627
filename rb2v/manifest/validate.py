"""``rb2v validate``: check a manifest against its contract and the files it names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from ..io.images import PNG_SIGNATURE
from .names import FRAMES_PER_SEQ, ORDERS, SPLITS, manifest_path
from .schema import (
    COLUMNS,
    FIELDS,
    inside_dataset,
    manifest_frame,
    read_manifest_table,
)

# x is the sharp stream upsampled k times: 2 for a rig build, 1-3 for synth-reds (240 / fps)
UPSAMPLE_FACTORS = (1, 2, 3)


def validate_manifest(path: str | Path, check_files: bool = True) -> list[str]:
    """Every problem found, one line each (empty list: valid)."""
    return check_manifest(path, check_files)[0]


def check_manifest(path: str | Path, check_files: bool = True) -> tuple[list[str], pd.DataFrame | None]:
    """``validate_manifest``'s problems and the manifest it read (once): where there are no problems, the frame
    ``read_manifest`` gives; with problems, the rows as checked (their columns cast to the contract's types), or
    None where they do not convert."""
    path = manifest_path(path)
    table = read_manifest_table(path)  # schema tag and columns: a one-line error if wrong
    root = path.parent
    problems: list[str] = []
    if not table.num_rows:
        problems.append(f"{path}: manifest has no rows")
    # the contract's Arrow types: a manifest written by other tools may hold int64 or float64 columns
    for field in FIELDS:
        actual = table.schema.field(field.name).type
        if actual != field.type:
            problems.append(f"{path}: column {field.name} is {actual}, expected {field.type}")
    if problems and table.num_rows:
        try:  # the rows are still checked where their values read as the contract's types
            table = table.select(COLUMNS).cast(pa.schema([f.with_nullable(True) for f in FIELDS]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return [*problems, f"{path}: rows not checked: their columns do not convert to the contract's types"], None
    manifest = df = manifest_frame(table, path)
    nulls = pd.Series(False, index=df.index)
    for field in FIELDS:
        if not field.nullable and table.column(field.name).null_count:
            missing = table.column(field.name).is_null().to_numpy(zero_copy_only=False)
            problems.append(f"{path}: column {field.name} is empty in {int(missing.sum())} row(s)")
            nulls |= missing
    df = df[~nulls]  # the rows above are named once, not checked field by field
    dup = df["sample_id"][df["sample_id"].duplicated()]
    problems += [f"{path}: duplicate sample_id {s}" for s in dup.unique()]
    if (df["sample_id"].str.strip() == "").any():
        problems.append(f"{path}: an empty sample_id")
    # one file named by two rows (or twice in one): a sample's frames would be another's
    files = pd.Series([rel for r in df.itertuples(index=False) for rel in (r.blur_path, *r.sharp_paths)])
    problems += [f"{path}: file {rel} is listed more than once" for rel in files[files.duplicated()].unique()]
    # a row with another split is reported by itself, not as a subject in both train and test
    crossing = df[df["split"].isin(SPLITS)].groupby("subject")["split"].nunique()
    problems += [f"{path}: subject {s} is in both train and test" for s in crossing[crossing > 1].index]
    for r in df.itertuples(index=False):
        where = f"{path}: {r.sample_id}"
        if r.split not in SPLITS:
            problems.append(f"{where}: split {r.split!r} is not train/test")
        if r.order not in ORDERS:
            problems.append(f"{where}: order {r.order!r} is not ignore/reverse")
        if len(r.sharp_paths) != FRAMES_PER_SEQ:
            problems.append(f"{where}: {len(r.sharp_paths)} sharp frames, expected {FRAMES_PER_SEQ}")
        if len(r.sha256) != 1 + len(r.sharp_paths):
            problems.append(f"{where}: {len(r.sha256)} checksums for {1 + len(r.sharp_paths)} files")
        if not r.take.startswith(f"{r.category}/{r.subject}/"):
            problems.append(f"{where}: take {r.take!r} is not <category>/<subject>/<take>")
        if np.isnan(r.psnr):  # NaN is the contract's for psnr_margin only (no search)
            problems.append(f"{where}: psnr is NaN")
        if not np.all(np.isfinite(r.color_matrix)):
            problems.append(f"{where}: colour matrix is not finite")
        if not (r.width > 0 and r.height > 0):
            problems.append(f"{where}: frame size {r.width}x{r.height} is not positive")
        if r.upsample_factor not in UPSAMPLE_FACTORS:
            problems.append(f"{where}: upsample_factor {r.upsample_factor} is not one of 1, 2, 3")
        if r.sharp_start < 0 or r.blur_index < 0:
            problems.append(f"{where}: sharp_start {r.sharp_start} or blur_index {r.blur_index} is negative")
        # paths are relative to the manifest's folder: a mirror or a moved dataset must hold every file
        outside = [rel for rel in [r.blur_path, *r.sharp_paths] if not inside_dataset(rel) or "\\" in rel]
        problems += [f"{where}: path {rel} is not relative to the manifest's folder" for rel in outside]
        if outside:
            continue
        if not check_files:
            continue
        for rel, digest in zip([r.blur_path, *r.sharp_paths], r.sha256):
            f = root / rel
            if not f.is_file():
                problems.append(f"{where}: missing file {rel}")
                continue
            data = f.read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                problems.append(f"{where}: checksum mismatch for {rel}")
                continue
            if not data.startswith(PNG_SIGNATURE):  # the contract's files are PNG: a lossy JPEG decoded too
                problems.append(f"{where}: {rel} is not PNG data")
                continue
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                problems.append(f"{where}: {rel} is not a readable image")
            elif img.shape[:2] != (r.height, r.width) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                problems.append(f"{where}: {rel} is {img.shape} {img.dtype}, expected ({r.height}, {r.width}, 3) uint8")
    return problems, manifest
