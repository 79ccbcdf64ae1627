"""The dataset card (``README.md``) of a published dataset, in Hugging Face Hub form.

A YAML header (configs with their data files, dataset_info with features and splits, license)
then the counts table, the terms of use and the citation. The YAML is written by hand from
JSON scalars (valid YAML) so the package needs no YAML library and the card is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from ..manifest import FIELDS, FRAMES_PER_SEQ
from .parquet_export import IMAGE_FIELDS, IMAGE_TYPE, VALUE_DTYPES, Shard

LICENSE_NAME = "rb2v-terms-of-use"

TERMS = """\
This dataset was built with rb2v following the construction of the RB2V dataset (HyperCUT, CVPR 2023),
and is shared under the same spirit of use:

1. Use it for non-commercial research and education only.
2. Do not try to identify the people who appear in it, and do not use it to build systems that
   identify or track people. Remove any sample on request of a person who appears in it.
3. Redistribute it only unchanged, with this card (terms of use and citation) and its `SHA256SUMS`.
4. Cite the paper below in work that uses the dataset.
5. The data come as they are, without warranty of any kind.
"""

CITATION = """\
@inproceedings{pham2023hypercut,
  title     = {HyperCUT: Video Sequence from a Single Blurry Image using Unsupervised Ordering},
  author    = {Pham, Bang-Dang and Tran, Phong and Tran, Anh and Pham, Cuong and Nguyen, Rang and Hoai, Minh},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}
"""


def _q(value) -> str:
    """A YAML scalar (JSON strings and numbers are valid YAML)."""
    return json.dumps(value)


def yaml_feature(name: str, t: pa.DataType, indent: str) -> list[str]:
    """One feature in the Hub's dataset_info YAML form."""
    if t == IMAGE_TYPE:
        return [f"{indent}- name: {_q(name)}", f"{indent}  dtype: image"]
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        inner = "image" if t.value_type == IMAGE_TYPE else VALUE_DTYPES[t.value_type]
        return [f"{indent}- name: {_q(name)}", f"{indent}  sequence: {inner}"]
    return [f"{indent}- name: {_q(name)}", f"{indent}  dtype: {VALUE_DTYPES[t]}"]


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def counts_table(df: pd.DataFrame) -> str:
    lines = [
        "| category | train samples | test samples | train subjects | test subjects | frames per sample |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for category, rows in df.groupby("category", sort=True):
        by = {s: rows[rows["split"] == s] for s in ("train", "test")}
        lines.append(
            f"| {category} | {len(by['train'])} | {len(by['test'])} | {by['train']['subject'].nunique()} "
            f"| {by['test']['subject'].nunique()} | 1 blurry + {FRAMES_PER_SEQ} sharp |"
        )
    return "\n".join(lines)


def dataset_card(
    name: str, df: pd.DataFrame, fmt: str, shards: Iterable[Shard] = (), settings_hash: str | None = None
) -> str:
    """The card's text for a dataset (manifest rows ``df``) published in ``fmt`` ("files" or "parquet")."""
    shards = list(shards)
    y = [
        "---",
        f"pretty_name: {_q('RB2V-style blur2vid dataset: ' + name)}",
        "license: other",
        f"license_name: {LICENSE_NAME}",
        "license_link: README.md",
        "task_categories:",
        "- image-to-video",
        "tags:",
        "- deblurring",
        "- blur2vid",
        "- rb2v",
        "- hypercut",
        "size_categories:",
        f"- {_size_category(len(df))}",
        "configs:",
    ]
    info = ["dataset_info:"]
    if fmt == "parquet":
        fields = [(f.name, f.type) for f in list(FIELDS) + IMAGE_FIELDS]
        for category in sorted({s.category for s in shards}):
            mine = [s for s in shards if s.category == category]
            y += [f"- config_name: {_q(category)}", "  data_files:"]
            info += [f"- config_name: {_q(category)}", "  features:"]
            for name_, t in fields:
                info += yaml_feature(name_, t, "  ")
            info.append("  splits:")
            for split in sorted({s.split for s in mine}):
                y += [f"  - split: {_q(split)}", f"    path: {_q(f'data/{category}/{split}-*')}"]
                part = [s for s in mine if s.split == split]
                info += [
                    f"  - name: {_q(split)}",
                    f"    num_bytes: {sum(s.num_bytes for s in part)}",
                    f"    num_examples: {sum(len(s.rows) for s in part)}",
                ]
    else:  # files: the PNG tree as built; the Hub's loadable table is the manifest (both splits, column `split`)
        y += ['- config_name: "manifest"', "  data_files:", '  - split: "manifest"', '    path: "manifest.parquet"']
        info += ['- config_name: "manifest"', "  features:"]
        for f in FIELDS:
            info += yaml_feature(f.name, f.type, "  ")
        info += ["  splits:", '  - name: "manifest"', f"    num_examples: {len(df)}"]
    header = "\n".join(y + info + ["---"])

    if fmt == "parquet":
        layout = (
            "Parquet shards `data/<category>/<split>-NNNNN-of-NNNNN.parquet`, one row per sample: every manifest "
            "column plus the images as PNG bytes (`blur`; `sharp`, the 7 frames in time order), in the "
            '`datasets` Image layout. Load with `datasets.load_dataset("parquet", data_files=...)` or from the Hub.'
        )
    else:
        layout = (
            "The dataset folder as built: PNG files, `manifest.parquet` (schema `rb2v.manifest/1`, one row per "
            "sample, paths relative to the folder) and `metadata.json` (the official HyperCUT format)."
        )
    body = [
        f"# {name}",
        "",
        "Real image-to-video deblurring (blur2vid) samples: one blurry frame and the 7 sharp frames of its "
        "exposure, built by rb2v from a beam-splitter camera rig as the RB2V dataset of HyperCUT (CVPR 2023).",
        "",
        "## Counts",
        "",
        counts_table(df),
        "",
        "## Layout",
        "",
        layout,
        "",
        "`manifest.parquet` is the full manifest; `SHA256SUMS` lists every file with its sha256 and is written last: "
        "a mirror that has it is complete (`rb2v verify URL`, or `sha256sum -c SHA256SUMS` in a local copy).",
        "",
    ]
    if settings_hash:
        body += [f"Build settings hash: `{settings_hash}`.", ""]
    body += ["## Terms of use", "", TERMS, "## Citation", "", "```bibtex", CITATION.rstrip(), "```", ""]
    return header + "\n\n" + "\n".join(body)
