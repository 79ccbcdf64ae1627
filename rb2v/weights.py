"""The one ``torch.load``: weight files of tensors and plain containers (no pickled code)."""

from __future__ import annotations

from pathlib import Path

from .errors import Rb2vError


def load_weights(path: str | Path, kind: str, map_location="cpu"):
    """The object saved in ``path`` (``weights_only``: no code runs); a file torch cannot read so is one
    line naming it. Torch's own message for such a file suggests loading it unsafely: not repeated here."""
    import torch

    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as e:  # truncated files, pickles of arbitrary objects, images, text
        text = str(e)
        if text.startswith("Weights only load failed"):
            why = "not a file of tensors saved by PyTorch"
        else:
            # its first sentence: torch goes on with advice on how the file may have been damaged
            why = f"{type(e).__name__}: {text.splitlines()[0].split('. ')[0] if text else ''}"
        raise Rb2vError(f"{path}: not a readable {kind} checkpoint ({why})") from None
