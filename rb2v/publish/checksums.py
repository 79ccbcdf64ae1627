"""File digests (sha256, plus the S3 ETag forms) and the ``SHA256SUMS`` list format."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import Rb2vError

SUMS_NAME = "SHA256SUMS"
READ_CHUNK = 1 << 20
# s3fs uploads a file in one PUT below 2 parts, else as a multipart upload of parts this large;
# we pass it explicitly so the ETag the server computes can be predicted.
MULTIPART_CHUNK = 50 * 2**20


def mismatch_error(path: str | Path, count: int = 1) -> Rb2vError:
    """The error for a dataset file (the first of ``count``) whose bytes are not those its manifest records."""
    many = f" ({count} file(s))" if count > 1 else ""
    return Rb2vError(
        f"{path}: its bytes differ from the sha256 in the manifest{many}: changed after the build "
        "(rb2v validate lists every such file)"
    )


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    etags: frozenset[str] = frozenset()  # the ETags an S3 server may report for these bytes


def multipart_etag(part_md5s: list[bytes]) -> str:
    return hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"


def digest_file(path: str | Path, with_etags: bool = False) -> FileDigest:
    """sha256 of a file, and when asked the ETags S3 gives it (one PUT: md5; multipart: md5 of part md5s)."""
    sha = hashlib.sha256()
    whole = hashlib.md5() if with_etags else None
    parts: list[bytes] = []
    part = hashlib.md5() if with_etags else None
    in_part = size = 0
    with open(path, "rb") as f:
        while block := f.read(READ_CHUNK):
            sha.update(block)
            size += len(block)
            if whole is not None:
                whole.update(block)
                while block:  # a part may end inside a block when the sizes do not divide
                    take = block[: MULTIPART_CHUNK - in_part]
                    part.update(take)
                    in_part += len(take)
                    block = block[len(take) :]
                    if in_part == MULTIPART_CHUNK:
                        parts.append(part.digest())
                        part, in_part = hashlib.md5(), 0
    etags: set[str] = set()
    if whole is not None:
        etags.add(whole.hexdigest())
        if in_part:
            parts.append(part.digest())
        if size >= 2 * MULTIPART_CHUNK:
            etags.add(multipart_etag(parts))
    return FileDigest(size, sha.hexdigest(), frozenset(etags))


def format_sums(sums: dict[str, str]) -> str:
    """``<sha256>  <path>`` lines sorted by path, as ``sha256sum`` writes (so ``sha256sum -c`` reads it)."""
    return "".join(f"{sums[key]}  {key}\n" for key in sorted(sums))


def parse_sums(text: str, where: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, key = line.partition("  ")
        if not sep:  # binary-mode marker: "<sha256> *<path>"
            digest, sep, key = line.partition(" *")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not key:
            raise Rb2vError(f"{where}: line {n} is not '<sha256>  <path>'")
        if key.endswith("/") or key.startswith("./"):  # a folder, or a second spelling of a path
            raise Rb2vError(f"{where}: line {n} names {key!r}, not a file's path as rb2v writes it")
        if key in sums:  # the last line won: verify said OK where sha256sum -c fails
            raise Rb2vError(f"{where}: line {n} lists {key} a second time")
        sums[key] = digest
    return sums
