"""Clean-room BackgroundMattingV2 (Lin et al., CVPR 2021) that loads the official checkpoints.

Written from the paper, the official repository's documented behaviour and torchvision's
published architectures; no code copied, no torchvision needed. Verified against golden
outputs of the official code (tests/fixtures/bgmv2).
"""

from .checkpoint import CheckpointInfo, describe, load_model, read_state_dict
from .model import BACKBONES, MattingBase, MattingRefine
from .refiner import REFINE_MODES

__all__ = [
    "BACKBONES",
    "REFINE_MODES",
    "CheckpointInfo",
    "MattingBase",
    "MattingRefine",
    "describe",
    "load_model",
    "read_state_dict",
]
