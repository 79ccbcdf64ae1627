"""Publishing built datasets to a mirror (a folder or an S3-compatible store), verifying and fetching them.

A published mirror holds the dataset objects, a dataset card ``README.md``, the manifest and,
written last, ``SHA256SUMS`` (GNU ``sha256sum`` format). A mirror whose ``SHA256SUMS`` exists is
complete; every object is committed under its final name only after its checksum matched.
"""

from .fetch import fetch
from .publish import publish
from .verify import verify

__all__ = ["publish", "verify", "fetch"]
