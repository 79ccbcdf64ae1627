"""The paper's ordering metrics (Table 3), defined exactly.

Input: for S sequences, ``forward[s, p]`` = h(H(x_k, x_{N-1-k})) and ``reverse[s, p]`` =
h(H(x_{N-1-k}, x_k)) for the three symmetric pairs p = (0,6), (1,5), (2,4). A score's *side* is
negative when < 0 and positive when >= 0 (a score of exactly 0 counts as positive, the same rule
``rb2v order`` uses).

* hit   = fraction of the 3·S pairs whose pair and reverse fall on opposite sides.
* con@2 = fraction of the 3·S pairs of pairs {(0,6),(1,5)}, {(0,6),(2,4)}, {(1,5),(2,4)} of one
          sequence whose forward scores are on the same side.
* con@3 = fraction of the S sequences whose three forward scores are all on the same side.

The official tester counts hit and con@2 on the (0,6) pair / the ((0,6),(1,5)) couple only; those
figures are reported too, as ``hit_06`` and ``con@2_06_15``.
"""

from __future__ import annotations

import numpy as np

PAIR_NAMES = ("0-6", "1-5", "2-4")


def sides(scores: np.ndarray) -> np.ndarray:
    """+1 for scores >= 0, -1 below (never 0)."""
    return np.where(np.asarray(scores) >= 0, 1, -1)


def ordering_metrics(forward: np.ndarray, reverse: np.ndarray) -> dict:
    forward, reverse = np.asarray(forward, np.float64), np.asarray(reverse, np.float64)
    if forward.ndim != 2 or forward.shape != reverse.shape or forward.shape[1] != 3 or len(forward) == 0:
        raise ValueError(f"expected two equal (S, 3) score arrays with S > 0, got {forward.shape} and {reverse.shape}")
    s_fwd, s_rev = sides(forward), sides(reverse)
    hits = s_fwd != s_rev  # (S, 3)
    couples = [(0, 1), (0, 2), (1, 2)]
    same = np.stack([s_fwd[:, a] == s_fwd[:, b] for a, b in couples], axis=1)  # (S, 3)
    all_same = (s_fwd == s_fwd[:, :1]).all(axis=1)
    n = len(forward)
    return {
        "hit": float(hits.mean()),
        "con@2": float(same.mean()),
        "con@3": float(all_same.mean()),
        "sequences": int(n),
        "pairs": int(hits.size),
        "hit_count": int(hits.sum()),
        "con@2_count": int(same.sum()),
        "con@3_count": int(all_same.sum()),
        "hit_per_pair": {name: float(hits[:, i].mean()) for i, name in enumerate(PAIR_NAMES)},
        "hit_06": float(hits[:, 0].mean()),
        "con@2_06_15": float(same[:, 0].mean()),
        "negative_side": float((s_fwd[:, 0] < 0).mean()),
    }
