"""Train/test split by subject: deterministic, disjoint, close to the requested test share."""

from __future__ import annotations

import hashlib

import pandas as pd


def split_subjects(counts: dict[str, int], test_fraction: float, seed: int = 0) -> dict[str, str]:
    """Assign each subject to "train" or "test".

    Subjects are visited in an order fixed by a hash of (seed, subject); a subject goes to
    test when that brings the test share of samples closer to ``test_fraction``. With two or
    more subjects and a positive fraction, both splits get at least one subject.
    """
    order = sorted(counts, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    total = sum(counts.values()) or 1
    test: set[str] = set()
    test_n = 0
    for s in order:
        if len(test) + 1 >= len(order):
            break  # keep at least one training subject
        before = abs(test_n / total - test_fraction)
        after = abs((test_n + counts[s]) / total - test_fraction)
        if after < before or (not test and test_fraction > 0 and len(order) >= 2):
            test.add(s)
            test_n += counts[s]
    return {s: ("test" if s in test else "train") for s in counts}


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table-1-style counts: samples (and subjects, takes) per category and split."""
    rows = []
    for category, g in df.groupby("category"):
        row = {"category": category}
        for split in ("train", "test"):
            part = g[g["split"] == split]
            row[f"{split}_samples"] = len(part)
            row[f"{split}_subjects"] = part["subject"].nunique()
            row[f"{split}_takes"] = part["take"].nunique()
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=[
            "category",
            "train_samples",
            "test_samples",
            "train_subjects",
            "test_subjects",
            "train_takes",
            "test_takes",
        ],
    )


def format_table1(t: pd.DataFrame) -> str:
    lines = [f"{'category':<10} {'train':>8} {'test':>8}   subjects (train/test)   takes (train/test)"]
    for r in t.itertuples(index=False):
        lines.append(
            f"{r.category:<10} {r.train_samples:>8} {r.test_samples:>8}   "
            f"{r.train_subjects:>8} / {r.test_subjects:<8}      {r.train_takes:>5} / {r.test_takes:<5}"
        )
    return "\n".join(lines)
