"""``rb2v publish``: put a built dataset on a mirror, resumably, nothing half-visible.

Order of work: plan the objects (the dataset's files, or Parquet shards made in a temporary
folder), list the mirror, keep what is already there with the same bytes (those are hashed to
compare), and upload the rest in parallel, each read once and hashed as it is sent (see
``mirror``: a key is absent or complete, never half-written). ``SHA256SUMS`` is removed
before the first change and written last, so a mirror with a checksum list is always complete;
an interrupted publish leaves no list and the next run uploads only what is missing or changed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import PartialFailure, Rb2vError
from ..fsutil import exclusive_place, write_text_atomic
from ..manifest import MANIFEST_NAME, check_manifest, inside_dataset, manifest_digests
from ..progress import progress, say
from .card import dataset_card
from .checksums import SUMS_NAME, FileDigest, digest_file, format_sums, mismatch_error
from .mirror import Mirror, MirrorError, RateLimiter, is_partial, open_mirror
from .parallel import run_all
from .parquet_export import Shard, plan_shards, shard_schema, write_shard

FORMATS = ("files", "parquet")
CARD_NAME = "README.md"
DEFAULT_SHARD_BYTES = 10**9
DEFAULT_JOBS = 8
HUB_MAX_FOLDER_ENTRIES = 10_000  # the Hugging Face Hub's limit of files per folder
# on the mirror (and in a fetched folder) from the first change until the checksum list is written
IN_PROGRESS = ".rb2v-in-progress"


@dataclass
class PublishReport:
    url: str
    objects: int = 0  # objects the publication has (SHA256SUMS excluded)
    uploaded: list[str] = field(default_factory=list)  # keys uploaded by this run
    kept: int = 0  # already on the mirror with the same bytes
    removed: list[str] = field(default_factory=list)  # stale partials and objects the publication dropped
    bytes_total: int = 0
    bytes_uploaded: int = 0


def is_rb2v_list(sums: dict[str, str] | None) -> bool:
    """A ``SHA256SUMS`` that rb2v wrote: its publications always list the manifest."""
    return bool(sums) and MANIFEST_NAME in sums


def check_ours(mirror: Mirror, remote: dict, sums: dict[str, str] | None) -> None:
    """Publish only to an empty place, an rb2v mirror, or one an interrupted publish left: a folder of
    other files had its README.md overwritten, and whatever an unrelated SHA256SUMS listed deleted."""
    if is_rb2v_list(sums) or IN_PROGRESS in remote:
        return
    others = sorted(k for k in remote if not is_partial(k))
    if others:
        raise Rb2vError(
            f"{mirror.url}: holds {len(others)} object(s) (e.g. {others[0]}) but is not an rb2v mirror "
            f"(no {SUMS_NAME} listing {MANIFEST_NAME}): publish to an empty folder or prefix"
        )


def dataset_files(dataset: Path, df: pd.DataFrame) -> dict[str, Path]:
    """Every file of the dataset folder by its relative key; the manifest's files must all be there."""
    listed = [p for row in df.itertuples(index=False) for p in (row.blur_path, *row.sharp_paths)]
    outside = [p for p in listed if not inside_dataset(p)]
    if outside:
        raise Rb2vError(f"{dataset / MANIFEST_NAME}: path {outside[0]!r} is not inside the dataset folder")
    missing = [p for p in listed if not (dataset / p).is_file()]
    if missing:
        raise Rb2vError(f"{dataset / missing[0]}: listed in the manifest but missing ({len(missing)} file(s) missing)")
    listed_keys = {PurePosixPath(p).as_posix() for p in listed}
    # the folders of the samples (samples/): a file there the manifest does not list is an earlier
    # build's sample, not part of this dataset
    sample_roots = {key.split("/")[0] for key in listed_keys if "/" in key}
    files, stale = {}, []
    for path in sorted(dataset.rglob("*")):
        rel = path.relative_to(dataset)
        # hidden files and leftovers of interrupted atomic writes are not part of the dataset
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        key = rel.as_posix()
        if rel.parts[0] in sample_roots and key not in listed_keys:
            stale.append(key)
        elif key not in (SUMS_NAME, CARD_NAME):
            files[key] = path
    if stale:
        say(
            f"note: {len(stale)} file(s) beside the samples that the manifest does not list were left out "
            f"(an earlier build's; e.g. {stale[0]})"
        )
    for key in listed:  # what the manifest names is published whatever its name
        files.setdefault(PurePosixPath(key).as_posix(), dataset / key)
    return dict(sorted(files.items()))


def changed_since_build(dataset: Path, df: pd.DataFrame, digests: dict[str, FileDigest]) -> None:
    """Refuse files whose bytes (hashed as they were published) differ from the manifest's sha256:
    the mirror would serve samples that its own manifest calls corrupt."""
    recorded = manifest_digests(df)
    changed = sorted(k for k, d in digests.items() if k in recorded and d.sha256 != recorded[k])
    if changed:
        error = mismatch_error(dataset / changed[0], len(changed))
        raise Rb2vError(f"{error}; publish incomplete, no {SUMS_NAME} written")


def staging_dir(dataset: Path, mirror: Mirror) -> Path:
    """Where the card and Parquet shards are made: named after the publish, so a re-run after a kill
    finds and removes what the killed run left (``$TMPDIR`` chooses the disk)."""
    where = f"{dataset.resolve()}\n{'s3' if mirror.is_s3 else 'file'}://{mirror.root}"
    tag = hashlib.sha256(where.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rb2v-publish-{tag}"


def warn_hub_folder_limit(files: dict[str, Path]) -> None:
    entries: dict[str, set[str]] = {}
    for key in files:
        parent, _, name = key.rpartition("/")
        entries.setdefault(parent, set()).add(name)
        while parent:  # a sub-folder is an entry of its own parent
            grand, _, child = parent.rpartition("/")
            entries.setdefault(grand, set()).add(child)
            parent = grand
    folder, names = max(entries.items(), key=lambda kv: len(kv[1]))
    if len(names) > HUB_MAX_FOLDER_ENTRIES:
        say(
            f"note: {folder or '.'} holds {len(names)} entries, more than the Hugging Face Hub accepts in one "
            f"folder ({HUB_MAX_FOLDER_ENTRIES}); use --format parquet to publish to the Hub"
        )


def parquet_files(
    dataset: Path, df: pd.DataFrame, staging: Path, shard_bytes: int
) -> tuple[dict[str, Path], list[Shard]]:
    dataset_files(dataset, df)  # the same check that every image is there
    shards = plan_shards(dataset, df, shard_bytes)
    schema = shard_schema()
    files = {}
    for shard in progress(shards, desc="parquet shards", unit="shard"):
        out = staging / shard.key
        write_shard(dataset, shard, out, schema)
        files[shard.key] = out
    files[MANIFEST_NAME] = dataset / MANIFEST_NAME
    return files, shards


def publish(
    dataset: str | Path,
    to: str,
    fmt: str = "files",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    endpoint_url: str | None = None,
    jobs: int = DEFAULT_JOBS,
    max_rate: float | None = None,
) -> PublishReport:
    """Publish the dataset folder ``dataset`` (with ``manifest.parquet``) to the mirror ``to``."""
    if fmt not in FORMATS:
        raise Rb2vError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if jobs < 1:
        raise Rb2vError(f"--jobs {jobs}: must be at least 1")
    dataset = Path(dataset)
    problems, df = check_manifest(dataset, check_files=False)  # the files are checked as they are hashed
    if problems:
        raise Rb2vError(
            f"{problems[0]} ({len(problems)} problem(s) in all: `rb2v validate {dataset}` lists them); "
            "nothing published"
        )
    mirror = open_mirror(to, endpoint_url)
    if not mirror.is_s3 and Path(mirror.root).is_relative_to(dataset.resolve()):
        raise Rb2vError(f"{to}: the mirror cannot be inside the dataset folder {dataset}")
    with exclusive_place(mirror.place, "publish"):  # two runs at once mixed their objects and staging
        return _publish(dataset, df, mirror, fmt, shard_bytes, jobs, max_rate)


def _publish(
    dataset: Path, df: pd.DataFrame, mirror: Mirror, fmt: str, shard_bytes: int, jobs: int, max_rate: float | None
) -> PublishReport:
    mirror.ensure_root()
    report = PublishReport(url=mirror.url)
    remote = mirror.list_objects()
    old_sums = mirror.read_sums() if SUMS_NAME in remote else None
    check_ours(mirror, remote, old_sums)

    staging = staging_dir(dataset, mirror)
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run of the same publish left
    staging.mkdir(parents=True)
    try:
        if fmt == "parquet":
            files, shards = parquet_files(dataset, df, staging, shard_bytes)
        else:
            files, shards = dataset_files(dataset, df), []
            warn_hub_folder_limit(files)
        card = staging / CARD_NAME
        write_text_atomic(
            card, dataset_card(dataset.resolve().name, df, fmt, shards, df.attrs["metadata"].get("settings_hash"))
        )
        files[CARD_NAME] = card

        sizes = {key: path.stat().st_size for key, path in files.items()}
        report.objects = len(files)
        report.bytes_total = sum(sizes.values())

        # only objects already on the mirror are hashed up front (to compare); the rest are hashed
        # while they upload, so no file is read twice
        present = sorted(k for k in files if k in remote and remote[k].size == sizes[k])
        digests: dict[str, FileDigest] = run_all(
            jobs, lambda key: digest_file(files[key], with_etags=mirror.is_s3), present, "hashing"
        )
        same = run_all(jobs, lambda key: mirror.holds(key, remote[key], digests[key]), present, "comparing")
        todo = [k for k in sorted(files) if not same.get(k, False)]
        stale = sorted(k for k in remote if is_partial(k) or (old_sums and k in old_sums and k not in files))
        report.kept = len(files) - len(todo)
        new_sums = {k: digests[k].sha256 for k in files} if not todo else None

        if not todo:
            changed_since_build(dataset, df, digests)
        if not todo and not stale and old_sums == new_sums:
            if IN_PROGRESS in remote:  # killed after its list was written
                mirror.remove(IN_PROGRESS)
            say(f"{mirror.url}: up to date ({report.objects} objects)")
            return report
        if IN_PROGRESS not in remote:  # what makes an interrupted publish's objects ours to resume
            mirror.put_bytes(dataset.name.encode("utf-8"), IN_PROGRESS)
        if SUMS_NAME in remote:  # from here until the new list is written the mirror reads as incomplete
            mirror.remove(SUMS_NAME)
        for key in stale:
            mirror.remove(key)
            report.removed.append(key)

        limiter = RateLimiter(max_rate) if max_rate else None
        uploaded: list[str] = []

        def upload(key: str) -> None:
            if limiter:
                limiter.wait_turn(sizes[key])
            digests[key] = mirror.put_file(files[key], key)
            uploaded.append(key)

        # largest first, so no big object starts last while the other threads sit idle
        order = sorted(todo, key=lambda k: (-sizes[k], k))
        try:
            run_all(jobs, upload, order, "uploading", weights={k: sizes[k] for k in order})
        except MirrorError as e:
            raise PartialFailure(
                f"{e}; publish incomplete ({len(uploaded)}/{len(todo)} object(s) uploaded, "
                f"no {SUMS_NAME} written): re-run to resume"
            ) from None
        changed_since_build(dataset, df, digests)
        report.uploaded = sorted(uploaded)
        report.bytes_uploaded = sum(sizes[k] for k in todo)
        mirror.put_bytes(format_sums({k: digests[k].sha256 for k in files}).encode("utf-8"), SUMS_NAME)
        mirror.remove(IN_PROGRESS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def describe(report: PublishReport) -> str:
    mb = report.bytes_uploaded / 1e6
    return (
        f"{report.url}: {report.objects} objects published ({len(report.uploaded)} uploaded, {mb:.1f} MB; "
        f"{report.kept} already there; {len(report.removed)} stale removed)"
    )
