"""``rb2v align``: pair, synchronise and geometrically align the two cameras of each take.

Stage function: ``align_take(take, out_folder, options)``; a whole capture tree:
``run_align(raw, out, options, executor)``. Outputs follow the alignment contract (``rb2v.alignment``).
"""

from .discover import Take, TakeError, discover, pair_streams
from .stage import AlignOptions, align_take, run_align

__all__ = ["AlignOptions", "Take", "TakeError", "align_take", "discover", "pair_streams", "run_align"]
