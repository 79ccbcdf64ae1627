"""The golden fixtures' deterministic weight recipe (shared/fixtures/*/README.md, "Weight recipe")."""

from __future__ import annotations

import numpy as np
import torch


def recipe_state_dict(entries: list[dict], seed: int) -> dict[str, torch.Tensor]:
    """Weights for state-dict ``entries`` (official order, each with key and shape), drawn from PCG64(seed)."""
    rng = np.random.default_rng(seed)
    state = {}
    for e in entries:
        key, shape = e["key"], tuple(e["shape"])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        if key.endswith("running_var"):
            v = rng.uniform(0.5, 1.5, size=shape)
        elif key.endswith("running_mean"):
            v = rng.uniform(-0.1, 0.1, size=shape)
        elif len(shape) >= 2:
            b = 1 / np.sqrt(np.prod(shape[1:]))
            v = rng.uniform(-b, b, size=shape)
        elif key.endswith(".weight"):
            v = rng.uniform(0.5, 1.5, size=shape)
        else:
            v = rng.uniform(-0.1, 0.1, size=shape)
        state[key] = torch.from_numpy(np.asarray(v, dtype=np.float32))
    return state
