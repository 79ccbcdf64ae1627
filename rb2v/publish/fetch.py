"""``rb2v fetch``: download a published dataset, each file checked against ``SHA256SUMS``.

Files already in DIR with the right sha256 are kept (resume); each download goes to a temporary
name and is renamed into place only when its sha256 matches. A Parquet-format publication's images
are then unpacked to the paths its manifest names. DIR/SHA256SUMS is written last, so a fetched
folder that has it is complete."""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PartialFailure, Rb2vError
from ..fsutil import (
    atomic_path,
    clean_partials,
    exclusive_place,
    is_partial_name,
    sha256_file,
    write_bytes_atomic,
    write_text_atomic,
)
from ..manifest import MANIFEST_NAME, inside_dataset, manifest_digests, read_manifest
from ..progress import progress
from .checksums import SUMS_NAME, format_sums, parse_sums
from .mirror import ChecksumMismatch, Mirror, MirrorError, open_mirror, retrying
from .parallel import run_all
from .parquet_export import is_shard_key, shard_images
from .publish import IN_PROGRESS, is_rb2v_list

DEFAULT_JOBS = 8


@dataclass
class FetchReport:
    url: str
    dest: Path
    objects: int = 0
    downloaded: list[str] = field(default_factory=list)
    kept: int = 0
    unpacked: int = 0  # images written from Parquet shards to the manifest's paths
    unpacked_kept: int = 0  # ... already there with the right bytes


def _safe_key(key: str, where: str) -> str:
    if not inside_dataset(key):
        raise Rb2vError(f"{where}: refusing the unsafe path {key!r}")
    if key == IN_PROGRESS:  # fetch's own marker: downloaded, "verified", then deleted
        raise Rb2vError(f"{where}: lists {IN_PROGRESS}, the marker of an unfinished run, not a file of the dataset")
    return key


def unpack_shards(dest: Path, keys: list[str]) -> tuple[int, int]:
    """Write the images of a Parquet-format publication's shards to the paths its manifest names, so the
    fetched folder is a dataset like the one published (its manifest's files exist). Each image is
    checked against the sha256 the manifest records; one already there with those bytes is kept.
    Returns (written, kept)."""
    written = kept = 0
    shards = [k for k in keys if is_shard_key(k)]
    if not shards or MANIFEST_NAME not in keys:
        return 0, 0
    listed = manifest_digests(read_manifest(dest / MANIFEST_NAME))
    if set(listed) <= set(keys):  # a files-format publication holds its images itself
        return 0, 0
    for key in progress(shards, desc="unpacking shards", unit="shard"):
        for rel, data, digest in shard_images(dest / key):
            target = dest / _safe_key(rel, str(dest / key))
            if target.is_file() and sha256_file(target) == digest:
                kept += 1
                continue
            if hashlib.sha256(data).hexdigest() != digest:
                raise Rb2vError(f"{dest / key}: the bytes of {rel} do not match the sha256 its row records")
            write_bytes_atomic(target, data)
            written += 1
    return written, kept


def fetch(
    url: str, dest: str | Path, endpoint_url: str | None = None, jobs: int = DEFAULT_JOBS, unpack: bool = True
) -> FetchReport:
    """Download every object of the mirror into ``dest``, each checked against its ``SHA256SUMS``; the
    images of a Parquet-format publication are then unpacked to its manifest's paths (``unpack``)."""
    mirror = open_mirror(url, endpoint_url)
    sums = mirror.read_sums()
    if sums is None:
        raise Rb2vError(
            f"{mirror.where(SUMS_NAME)}: not found: the mirror is incomplete (interrupted publish?) "
            "or not an rb2v mirror"
        )
    for key in sums:
        _safe_key(key, mirror.where(SUMS_NAME))
    dest = Path(dest)
    with exclusive_place(str(dest.resolve()), "fetch"):  # two runs at once left both mirrors' files mixed
        return _fetch(mirror, url, sums, dest, jobs, unpack)


class MissingObject(Rb2vError):
    """A listed object the mirror does not hold (not retried: a storage error, not a bug)."""


def _fetch(mirror: Mirror, url: str, sums: dict[str, str], dest: Path, jobs: int, unpack: bool) -> FetchReport:
    local_sums = dest / SUMS_NAME
    check_destination(dest, sums)
    dest.mkdir(parents=True, exist_ok=True)
    clean_partials(dest)
    write_text_atomic(dest / IN_PROGRESS, url)
    if local_sums.exists() and local_sums.read_text() != format_sums(sums):
        local_sums.unlink()  # an older fetch's list: DIR is incomplete until this fetch ends
    report = FetchReport(url=mirror.url, dest=dest, objects=len(sums))

    def download_once(key: str) -> None:
        target = dest / key
        with atomic_path(target) as tmp:
            try:
                mirror.fs.get_file(mirror.path(key), str(tmp))
            except FileNotFoundError:
                if mirror.fs.exists(mirror.path(key)):
                    raise
                raise MissingObject(f"{mirror.where(key)}: listed in {SUMS_NAME} but not in the mirror") from None
            if sha256_file(tmp) != sums[key]:
                raise ChecksumMismatch(errno.EIO, "downloaded bytes do not match SHA256SUMS")

    def get(key: str) -> bool:
        target = dest / key
        if target.is_file() and sha256_file(target) == sums[key]:
            return False
        retrying(lambda: download_once(key), mirror.where(key))
        return True

    try:
        fetched = run_all(jobs, get, sorted(sums), "fetching")
    except MissingObject as e:  # a re-run cannot mend the mirror
        raise PartialFailure(f"{e} (`rb2v verify {url}` lists every problem); fetch incomplete") from None
    except MirrorError as e:
        raise PartialFailure(f"{e}; fetch incomplete: re-run to resume") from None
    report.downloaded = sorted(k for k, got in fetched.items() if got)
    report.kept = len(sums) - len(report.downloaded)
    if unpack:
        report.unpacked, report.unpacked_kept = unpack_shards(dest, sorted(sums))
    write_text_atomic(local_sums, format_sums(sums))
    (dest / IN_PROGRESS).unlink()
    return report


def check_destination(dest: Path, sums: dict[str, str]) -> None:
    """Fetch only into an empty or new folder, an earlier fetch (its checksum list, or its manifest among
    nothing but the publication's names), or one an interrupted fetch left: the README.md and
    SHA256SUMS of a folder of other files were overwritten."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise Rb2vError(f"{dest}: not a folder")
    local = dest / SUMS_NAME
    if (dest / IN_PROGRESS).exists() or (local.is_file() and is_rb2v_list(parse_local_sums(local))):
        return
    others = sorted(p.name for p in dest.iterdir())
    names = {key.split("/")[0] for key in sums} | {SUMS_NAME}
    if (dest / MANIFEST_NAME).is_file() and all(n in names or is_partial_name(n) for n in others):
        return
    if others:
        raise Rb2vError(
            f"{dest}: holds {len(others)} file(s) or folder(s) (e.g. {others[0]}) but no earlier fetch: "
            "fetch into an empty or new folder"
        )


def parse_local_sums(path: Path) -> dict[str, str] | None:
    try:
        return parse_sums(path.read_text("utf-8"), str(path))
    except (Rb2vError, UnicodeDecodeError):
        return None
