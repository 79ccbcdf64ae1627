"""Clean-room CDFI (`CDFI_adacof`, Ding et al., CVPR 2021) in plain PyTorch.

Written from the paper and from facts about the official code (module names and
shapes, padding, the AdaCoF kernel's semantics); it loads the official checkpoint
layout unchanged. ``adacof`` is the sampling op, ``model`` the network.
"""

from .adacof import adacof
from .model import CDFIAdaCoF

__all__ = ["CDFIAdaCoF", "adacof"]
