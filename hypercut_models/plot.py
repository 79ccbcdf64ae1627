"""The paper's Fig. 7 as a picture: t-SNE of the HyperCUT vectors of a split and of their reverses.

For every sequence, ``H(x_0, x_6)`` and ``H(x_6, x_0)`` (the (0, 6) pair and its reverse) are
embedded together in 2-D with scikit-learn's t-SNE and drawn coloured by the side of the
hyperplane each falls on (``h < 0``: negative, the canonical order); pairs are dots, reverses
crosses. A well-trained network gives two clouds, one per side, each holding one member of every
pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rb2v.errors import Rb2vError
from rb2v.fsutil import atomic_path
from rb2v.outputs import check_output

from .data import SequenceDataset, iterate, make_loader
from .losses import Hyperplane
from .network import HyperCUTNet


@torch.no_grad()
def pair_vectors(
    net: HyperCUTNet, dataset: SequenceDataset, device: torch.device, batch_size: int = 8, workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(H(x_0, x_6), H(x_6, x_0)) of every sample, each (S, out_dim)."""
    net = net.to(device).eval()
    if not dataset.uniform_size():
        batch_size = 1
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers, device=device)
    fwd, rev = [], []
    for frames, _ in iterate(loader):
        frames = frames.to(device)
        fwd.append(net(frames[:, 0], frames[:, 6]).float().cpu().numpy())
        rev.append(net(frames[:, 6], frames[:, 0]).float().cpu().numpy())
    return np.concatenate(fwd), np.concatenate(rev)


PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_plot_path(path: str | Path) -> Path:
    """The plot's file, by its suffix one of ``PLOT_SUFFIXES`` (refused before any work otherwise)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise Rb2vError(
            f"{path}: cannot draw a plot of type {path.suffix or '(none)'!r} (use {', '.join(PLOT_SUFFIXES)})"
        )
    check_output(path, "--plot")
    return path


def tsne_plot(fwd: np.ndarray, rev: np.ndarray, plane: Hyperplane, path: str | Path, seed: int = 0) -> Path:
    """Embed the pair and reverse vectors with t-SNE and save the scatter plot (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    vectors = np.concatenate([fwd, rev])
    if len(vectors) < 4:
        raise Rb2vError(f"t-SNE needs at least 2 sequences, got {len(fwd)}")
    with torch.no_grad():
        scores = plane(torch.from_numpy(vectors).float()).numpy()
    perplexity = float(min(30, (len(vectors) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
    n = len(fwd)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    for lo, hi, marker, what in ((0, n, "o", "pair (x_0, x_6)"), (n, 2 * n, "x", "reverse (x_6, x_0)")):
        for negative, colour, side in ((True, "tab:blue", "h < 0"), (False, "tab:red", "h >= 0")):
            sel = np.arange(lo, hi)[(scores[lo:hi] < 0) == negative]
            if len(sel):
                ax.scatter(xy[sel, 0], xy[sel, 1], s=14, marker=marker, c=colour, label=f"{what}, {side}")
    ax.set_title(f"HyperCUT vectors, t-SNE ({n} sequences and their reverses)")
    ax.legend(loc="best", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    path = check_plot_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower().lstrip("."), bbox_inches="tight")
    plt.close(fig)
    return path
