"""rb2v publish / verify / fetch against real protocol endpoints: a folder mirror, and S3 through
moto's standalone S3 server on 127.0.0.1 (a separate process) reached through s3fs as a user would.

The ``datasets`` library is not installed here: the Parquet shards are checked by reading them
with pyarrow (rows and image bytes equal to the source) and by the HF feature metadata they carry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from rb2v.benchmarks.publish import write_photo_dataset
from rb2v.cli import main as rb2v_main
from rb2v.errors import Rb2vError
from rb2v.manifest import COLUMNS, MANIFEST_NAME, read_manifest, validate_manifest
from rb2v.publish import checksums, fetch, publish, verify
from rb2v.publish import mirror as mirror_mod
from rb2v.publish.checksums import SUMS_NAME, digest_file, parse_sums
from rb2v.publish.loopback_s3 import dummy_aws_env, loopback_s3_server
from rb2v.publish.mirror import MirrorError, is_partial, open_mirror, retrying
from rb2v.publish.publish import IN_PROGRESS, staging_dir

BUCKET = "lab-mirror"
SHARD_RE = re.compile(r"^data/street/(train|test)-(\d{5})-of-(\d{5})\.parquet$")


@dataclass
class Target:
    url: str
    endpoint: str | None

    def mirror(self):
        return open_mirror(self.url, self.endpoint)

    def cli_args(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_photo_dataset(tmp_path_factory.mktemp("built"), samples=4, size=48)


@pytest.fixture(scope="module")
def s3_endpoint():
    import s3fs

    with dummy_aws_env(), loopback_s3_server() as endpoint:
        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(BUCKET)
        yield endpoint


@pytest.fixture(params=["folder", "s3"])
def target(request, tmp_path) -> Target:
    if request.param == "folder":
        return Target(str(tmp_path / "mirror"), None)
    endpoint = request.getfixturevalue("s3_endpoint")
    return Target(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/street", endpoint)


def source_files(dataset: Path) -> dict[str, bytes]:
    return {p.relative_to(dataset).as_posix(): p.read_bytes() for p in dataset.rglob("*") if p.is_file()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def card_yaml(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def run_cli(*args: str) -> int:
    return rb2v_main(list(args))


def test_publish_verify_republish_fetch_round_trip(dataset, target, tmp_path, capsys):
    src = source_files(dataset)
    report = publish(dataset, target.url, endpoint_url=target.endpoint)
    assert report.uploaded == sorted([*src, "README.md"])
    assert report.kept == 0

    m = target.mirror()
    sums = m.read_sums()
    assert set(sums) == set(src) | {"README.md"}
    assert all(sums[k] == sha(v) for k, v in src.items())  # the list holds the source's sha256
    assert not any(is_partial(k) for k in m.list_objects())

    card = m.read_bytes("README.md").decode()
    header = card_yaml(card)
    assert header["license"] == "other" and header["license_name"] == "rb2v-terms-of-use"
    assert header["configs"][0]["data_files"][0]["path"] == "manifest.parquet"
    features = {f["name"] for f in header["dataset_info"][0]["features"]}
    assert features == set(COLUMNS)
    assert "| street | 2 | 2 | 2 | 2 |" in card and "@inproceedings{pham2023hypercut" in card
    assert "## Terms of use" in card

    ok = verify(target.url, endpoint_url=target.endpoint)
    assert ok.ok and ok.listed == len(src) + 1 and ok.bytes_checked == sum(map(len, src.values())) + len(card.encode())
    assert run_cli("verify", target.url, *target.cli_args()) == 0
    assert "OK (36 objects" in capsys.readouterr().out

    again = publish(dataset, target.url, endpoint_url=target.endpoint)
    assert again.uploaded == [] and again.kept == len(src) + 1

    dest = tmp_path / "fetched copy"
    got = fetch(target.url, dest, endpoint_url=target.endpoint)
    assert got.downloaded == sorted(sums)
    fetched = source_files(dest)
    assert {k: v for k, v in fetched.items() if k in src} == src  # byte-identical
    assert set(fetched) == set(src) | {"README.md", SUMS_NAME}
    assert parse_sums((dest / SUMS_NAME).read_text(), "local") == sums
    assert read_manifest(dest).equals(read_manifest(dataset))
    assert fetch(target.url, dest, endpoint_url=target.endpoint).downloaded == []  # resume: nothing to redo
    assert got.unpacked == 0  # a files-format mirror holds its images itself
    pngs = sorted(k for k in src if k.endswith(".png"))
    (dest / pngs[1]).unlink()
    (dest / pngs[2]).write_bytes(b"truncated")
    (dest / SUMS_NAME).unlink()
    assert fetch(target.url, dest, endpoint_url=target.endpoint).downloaded == [pngs[1], pngs[2]]
    assert source_files(dest) == fetched


def test_verify_finds_corrupt_deleted_and_unlisted_objects_and_republish_repairs(
    dataset, target, tmp_path, capsys, monkeypatch
):
    publish(dataset, target.url, endpoint_url=target.endpoint)
    m = target.mirror()
    keys = sorted(m.read_sums())
    pngs = [k for k in keys if k.endswith(".png")]
    corrupted, deleted = pngs[0], pngs[5]
    original = m.read_bytes(corrupted)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF  # same size: only the sha256 can tell
    m.fs.pipe_file(m.path(corrupted), bytes(flipped))

    # fetch re-downloads a corrupt object a few times, then names it; nothing bad lands in DIR
    monkeypatch.setattr(mirror_mod, "RETRY_BASE_DELAY_S", 0.001)
    dest = tmp_path / "fetched"
    assert run_cli("fetch", target.url, str(dest), *target.cli_args()) == 1
    err = capsys.readouterr().err
    assert err.count("rb2v: error: ") == 1 and "fetch incomplete" in err
    assert f"{target.url}/{corrupted}: failed after 5 attempts: ChecksumMismatch" in err
    assert not (dest / corrupted).exists() and not (dest / SUMS_NAME).exists()

    m.fs.rm_file(m.path(deleted))
    m.fs.pipe_file(m.path("stray-notes.txt"), b"not part of the dataset\n")
    report = verify(target.url, endpoint_url=target.endpoint)
    assert not report.ok and report.complete
    assert list(report.corrupt) == [corrupted] and report.missing == [deleted]
    assert report.unlisted == ["stray-notes.txt"]
    assert run_cli("verify", target.url, *target.cli_args()) == 1
    out = capsys.readouterr()
    assert f"corrupt: {corrupted}" in out.out and f"missing: {deleted}" in out.out
    assert "unlisted: stray-notes.txt" in out.out and "3 problem(s)" in out.err

    m.fs.rm_file(m.path("stray-notes.txt"))
    repaired = publish(dataset, target.url, endpoint_url=target.endpoint)
    assert repaired.uploaded == sorted([corrupted, deleted])
    assert verify(target.url, endpoint_url=target.endpoint).ok
    assert m.read_bytes(corrupted) == original


def test_a_listed_object_gone_from_the_mirror_is_named_as_such_by_fetch(dataset, target, tmp_path, capsys):
    """fetch said "FileNotFoundError: <path>; fetch incomplete: re-run to resume", and no re-run could mend it."""
    publish(dataset, target.url, endpoint_url=target.endpoint)
    m = target.mirror()
    gone = sorted(k for k in m.read_sums() if k.endswith(".png"))[3]
    m.fs.rm_file(m.path(gone))
    assert run_cli("fetch", target.url, str(tmp_path / "copy"), *target.cli_args()) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"rb2v: error: {target.url}/{gone}: listed in SHA256SUMS but not in the mirror "
        f"(`rb2v verify {target.url}` lists every problem); fetch incomplete"
    )


def test_a_folder_mirrors_links_count_as_the_files_they_reach(dataset, tmp_path, capsys):
    """verify called a listed file that is a link "missing" while fetch downloaded it and verified its
    sha256 (a lab that deduplicates its storage with links); a link to nothing is missing for both."""
    url = str(tmp_path / "mirror")
    publish(dataset, url)
    pngs = sorted(k for k in open_mirror(url).read_sums() if k.endswith(".png"))
    kept_elsewhere = tmp_path / "store" / "a.png"
    kept_elsewhere.parent.mkdir()
    shutil.move(Path(url) / pngs[0], kept_elsewhere)
    (Path(url) / pngs[0]).symlink_to(kept_elsewhere)
    assert verify(url).ok
    assert fetch(url, tmp_path / "copy").downloaded
    assert (tmp_path / "copy" / pngs[0]).read_bytes() == kept_elsewhere.read_bytes()

    (Path(url) / pngs[1]).unlink()
    (Path(url) / pngs[1]).symlink_to(tmp_path / "nowhere.png")
    assert verify(url).missing == [pngs[1]]
    assert run_cli("fetch", url, str(tmp_path / "copy2")) == 1
    assert f"{url}/{pngs[1]}: listed in SHA256SUMS but not in the mirror" in capsys.readouterr().err


def test_killed_publish_leaves_no_checksum_list_and_rerun_uploads_only_the_rest(dataset, target):
    total = len(source_files(dataset)) + 1
    env = dict(os.environ, RB2V_PROGRESS="0")
    # one object at a time at 40 kB/s: ~3 s for the ~110 kB, so the kill lands mid-publish
    cmd = [
        sys.executable,
        "-m",
        "rb2v.cli",
        "publish",
        str(dataset),
        "--to",
        target.url,
        "--jobs",
        "1",
        "--max-rate",
        "40kB",
        *target.cli_args(),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    m = target.mirror()
    committed: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(committed) < 4:
            assert proc.poll() is None, "publish ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
            committed = [k for k in m.list_objects() if not is_partial(k) and k != IN_PROGRESS]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    listing = m.list_objects()
    before = sorted(k for k in listing if not is_partial(k) and k != IN_PROGRESS)
    partials = sorted(k for k in listing if is_partial(k))
    assert SUMS_NAME not in listing and 4 <= len(before) < total
    assert IN_PROGRESS in listing  # what lets the re-run resume a mirror without a checksum list

    report = verify(target.url, endpoint_url=target.endpoint)
    assert not report.complete and not report.ok
    assert run_cli("verify", target.url, *target.cli_args()) == 1

    staging = staging_dir(dataset, m)
    assert staging.is_dir()  # the killed run's working folder (its card) ...
    resumed = publish(dataset, target.url, endpoint_url=target.endpoint)
    assert not staging.exists()  # ... is cleaned by the re-run
    assert resumed.kept == len(before)
    assert len(resumed.uploaded) == total - len(before)
    assert not set(resumed.uploaded) & set(before)
    assert resumed.removed == partials  # leftovers of the killed upload are cleaned
    assert verify(target.url, endpoint_url=target.endpoint).ok and IN_PROGRESS not in m.list_objects()


def test_parquet_format_loads_back_into_the_same_rows(dataset, target, tmp_path):
    report = publish(dataset, target.url, fmt="parquet", shard_bytes=20_000, endpoint_url=target.endpoint)
    shards = sorted(k for k in report.uploaded if k.startswith("data/"))
    assert set(report.uploaded) == set(shards) | {"README.md", "manifest.parquet"}
    for key in shards:
        split, index, count = SHARD_RE.match(key).groups()
        assert int(index) < int(count) == sum(k.startswith(f"data/street/{split}-") for k in shards)
    assert len(shards) > 2  # ~25 kB per sample and 20 kB shards: each split is cut in several

    dest = tmp_path / "fetched"
    fetch(target.url, dest, endpoint_url=target.endpoint)
    source = read_manifest(dataset).set_index("sample_id")
    rows = {}
    for key in shards:
        table = pq.read_table(dest / key)
        meta = table.schema.metadata[b"huggingface"].decode()
        assert '"blur": {"_type": "Image"}' in meta and '"sharp": {"feature": {"_type": "Image"}' in meta
        for row in table.to_pylist():
            assert row["split"] == SHARD_RE.match(key).group(1)
            rows[row["sample_id"]] = row
    assert sorted(rows) == sorted(source.index)
    for sample_id, row in rows.items():
        want = source.loc[sample_id]
        for col in COLUMNS[1:]:
            got, exp = row[col], want[col]
            if col == "color_matrix":
                assert got == pytest.approx(list(exp))
            else:
                assert (list(got) if isinstance(got, list) else got) == (list(exp) if isinstance(exp, list) else exp), (
                    col
                )
        assert row["blur"] == {"bytes": (dataset / want["blur_path"]).read_bytes(), "path": want["blur_path"]}
        assert [s["bytes"] for s in row["sharp"]] == [(dataset / p).read_bytes() for p in want["sharp_paths"]]

    # the images are unpacked to the manifest's paths: the fetched folder is a dataset (its manifest named
    # samples/ files the mirror does not hold); a re-fetch keeps them, --no-unpack leaves the shards alone
    images = [p for row in source.itertuples() for p in (row.blur_path, *row.sharp_paths)]
    assert all((dest / p).read_bytes() == (dataset / p).read_bytes() for p in images)
    assert validate_manifest(dest) == []
    again = fetch(target.url, dest, endpoint_url=target.endpoint)
    assert again.downloaded == [] and (again.unpacked, again.unpacked_kept) == (0, len(images))
    bare = fetch(target.url, tmp_path / "bare", endpoint_url=target.endpoint, unpack=False)
    assert bare.unpacked == 0 and not (tmp_path / "bare" / images[0]).exists()

    header = card_yaml((dest / "README.md").read_text())
    files = {d["split"]: d["path"] for d in header["configs"][0]["data_files"]}
    assert files == {"train": "data/street/train-*", "test": "data/street/test-*"}
    splits = {s["name"]: s["num_examples"] for s in header["dataset_info"][0]["splits"]}
    assert splits == {"train": 2, "test": 2}
    assert {"name": "sharp", "sequence": "image"} in header["dataset_info"][0]["features"]
    # shards are deterministic, so a re-publish finds everything in place
    assert publish(dataset, target.url, fmt="parquet", shard_bytes=20_000, endpoint_url=target.endpoint).uploaded == []


def test_permanent_error_names_the_object_and_writes_no_list(dataset, tmp_path, capsys):
    url = str(tmp_path / "mirror")
    (tmp_path / "mirror" / "metadata.json").mkdir(parents=True)  # a folder where a file must go
    assert run_cli("publish", str(dataset), "--to", url) == 1
    err = capsys.readouterr().err
    assert f"{url}/metadata.json: IsADirectoryError" in err and "re-run to resume" in err
    assert not (tmp_path / "mirror" / SUMS_NAME).exists()


def test_transient_errors_retry_with_backoff_then_name_the_object(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(mirror_mod.time, "sleep", sleeps.append)
    calls = iter([ConnectionResetError("reset"), TimeoutError("slow"), "done"])

    def flaky():
        v = next(calls)
        if isinstance(v, Exception):
            raise v
        return v

    assert retrying(flaky, "s3://b/k") == "done"
    # exponential backoff with jitter: 0.2 s then 0.4 s, each scaled by 0.5..1
    assert len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.4
    sleeps.clear()

    def fail(e: Exception):
        def call():
            raise e

        return call

    with pytest.raises(MirrorError, match=r"s3://b/x\.png: failed after 5 attempts: ConnectionResetError"):
        retrying(fail(ConnectionResetError("reset")), "s3://b/x.png")
    assert len(sleeps) == 4
    sleeps.clear()
    with pytest.raises(MirrorError, match=r"s3://b/y\.png: PermissionError: denied"):
        retrying(fail(PermissionError("denied")), "s3://b/y.png")
    assert sleeps == []  # permanent: not retried


def test_multipart_etag_prediction_matches_the_server(s3_endpoint, tmp_path, monkeypatch):
    import s3fs

    part = 5 * 2**20  # the smallest part S3 accepts
    monkeypatch.setattr(checksums, "MULTIPART_CHUNK", part)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * part + 12345))
    digest = digest_file(big, with_etags=True)
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    fs.put_file(str(big), f"{BUCKET}/etag/big.bin", chunksize=part)
    fs.put_file(str(big), f"{BUCKET}/etag/single.bin", chunksize=4 * part)
    etags = {fs.info(f"{BUCKET}/etag/{n}")["ETag"].strip('"') for n in ("big.bin", "single.bin")}
    assert etags == set(digest.etags) and any(e.endswith("-3") for e in etags)


def test_user_mistakes_are_one_line_errors(dataset, tmp_path, s3_endpoint, capsys):
    cases = [
        (["publish", str(dataset), "--to", "ftp://host/x"], "unsupported mirror"),
        (
            ["publish", str(dataset), "--to", str(tmp_path / "m"), "--endpoint-url", "http://127.0.0.1:1"],
            "--endpoint-url applies to s3:// mirrors only",
        ),
        (["publish", str(tmp_path), "--to", str(tmp_path / "m")], "manifest not found"),
        (["publish", str(dataset), "--to", str(dataset / "mirror")], "cannot be inside the dataset folder"),
        (["publish", str(dataset), "--to", str(tmp_path / "m"), "--shard-size", "lots"], "--shard-size 'lots'"),
        (
            ["publish", str(dataset), "--to", "s3://no-such-bucket/x", "--endpoint-url", s3_endpoint],
            "bucket 'no-such-bucket' does not exist",
        ),
        (["verify", str(tmp_path / "empty")], "nothing published there"),
        (
            ["fetch", f"s3://{BUCKET}/never-published", str(tmp_path / "f"), "--endpoint-url", s3_endpoint],
            "SHA256SUMS: not found",
        ),
    ]
    for args, message in cases:
        assert run_cli(*args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("rb2v: error: ") and message in err and "Traceback" not in err, (args, err)


def test_multipart_objects_commit_and_resume_by_etag(s3_endpoint, tmp_path, monkeypatch):
    part = 5 * 2**20  # shrink the multipart threshold to S3's smallest part so an 11 MB file is multipart
    monkeypatch.setattr(checksums, "MULTIPART_CHUNK", part)
    monkeypatch.setattr(mirror_mod, "MULTIPART_CHUNK", part)
    dataset = write_photo_dataset(tmp_path / "built", samples=1, size=32)
    big = os.urandom(2 * part + 777)
    (dataset / "report files" / "big.bin").write_bytes(big)
    url = f"s3://{BUCKET}/multipart/street"
    publish(dataset, url, endpoint_url=s3_endpoint)
    m = open_mirror(url, s3_endpoint)
    assert m.list_objects()["report files/big.bin"].etag.endswith("-3")
    assert m.read_bytes("report files/big.bin") == big

    def no_read_back(self, key):
        raise AssertionError(f"{key} was read back: its ETag should have matched")

    monkeypatch.setattr(mirror_mod.Mirror, "sha256", no_read_back)
    assert publish(dataset, url, endpoint_url=s3_endpoint).uploaded == []


def test_a_fresh_publish_reads_each_file_once_and_its_list_is_exact(dataset, target, monkeypatch):
    """New objects are hashed while they upload: no hashing pass, and SHA256SUMS still holds the source's sha256."""
    import importlib

    publish_mod = importlib.import_module("rb2v.publish.publish")  # the package exports publish()
    reads: dict[str, int] = {}
    real_open, real_read_bytes = open, Path.read_bytes

    def counting_open(file, mode="r", *args, **kwargs):
        if "r" in mode and "b" in mode and str(file).startswith(str(dataset)):
            reads[str(file)] = reads.get(str(file), 0) + 1
        return real_open(file, mode, *args, **kwargs)

    def counting_read_bytes(self):
        if str(self).startswith(str(dataset)):
            reads[str(self)] = reads.get(str(self), 0) + 1
        return real_read_bytes(self)

    def no_hashing_pass(*args, **kwargs):
        raise AssertionError("a new object was hashed before its upload")

    monkeypatch.setattr(publish_mod, "digest_file", no_hashing_pass)
    monkeypatch.setattr(mirror_mod, "open", counting_open, raising=False)
    monkeypatch.setattr(Path, "read_bytes", counting_read_bytes)
    report = publish(dataset, target.url, endpoint_url=target.endpoint)
    monkeypatch.undo()
    src = source_files(dataset)
    assert len(report.uploaded) == len(src) + 1  # and the card
    assert sorted(reads) == sorted(str(dataset / k) for k in src) and set(reads.values()) == {1}
    sums = target.mirror().read_sums()
    assert all(sums[k] == sha(v) for k, v in src.items())
    assert verify(target.url, endpoint_url=target.endpoint).ok


def test_s3_upload_corrupted_in_flight_is_detected_retried_and_never_left(dataset, s3_endpoint, monkeypatch):
    """No read-back on S3: the ETag the server computes from what it stored must be the md5 computed while reading."""
    import s3fs

    real = s3fs.S3FileSystem.call_s3
    victim, calls = "blur.png", []

    def corrupting(self, method, *args, **kwargs):
        if method == "put_object" and kwargs["Key"].endswith(victim) and len(calls) < budget[0]:
            calls.append(kwargs["Key"])
            body = bytearray(kwargs["Body"])
            body[len(body) // 2] ^= 0xFF
            kwargs = {k: v for k, v in kwargs.items() if k != "ContentMD5"} | {"Body": bytes(body)}
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", corrupting)  # what the mirror calls (s3fs itself: _call_s3)
    monkeypatch.setattr(mirror_mod, "RETRY_BASE_DELAY_S", 0.001)
    url = f"s3://{BUCKET}/inflight/street"
    budget = [1]  # the first PUT of one blurry frame is corrupted: retried, then right
    assert verify(publish(dataset, url, endpoint_url=s3_endpoint).url, endpoint_url=s3_endpoint).ok
    assert len(calls) == 1
    budget[0] = 10**6  # every PUT of it corrupted: publish fails naming it, and no bad object stays
    url2 = f"s3://{BUCKET}/inflight2/street"
    with pytest.raises(Exception, match="ChecksumMismatch"):
        publish(dataset, url2, endpoint_url=s3_endpoint, jobs=1)
    listing = open_mirror(url2, s3_endpoint).list_objects()
    assert SUMS_NAME not in listing and not any(k.endswith(victim) for k in listing)


def test_a_file_changed_since_the_build_is_refused_and_no_list_is_written(dataset, tmp_path, capsys):
    """Its bytes no longer match the manifest's sha256: a mirror with a checksum list would serve a sample
    its own manifest calls corrupt (the list would be computed from the changed bytes)."""
    changed = tmp_path / "changed"
    shutil.copytree(dataset, changed)
    rel = read_manifest(changed / MANIFEST_NAME).iloc[1].sharp_paths[3]
    image = changed / rel
    image.write_bytes(image.read_bytes()[:-1] + b"\0")  # one byte of the PNG's end chunk
    for fmt in ("files", "parquet"):
        mirror = tmp_path / f"mirror-{fmt}"
        assert run_cli("publish", str(changed), "--to", str(mirror), "--format", fmt) == 2
        err = capsys.readouterr().err
        assert f"{image}: its bytes differ from the sha256 in the manifest" in err and len(err.splitlines()) == 1
        assert not (mirror / SUMS_NAME).exists()
    image.write_bytes((dataset / rel).read_bytes())  # put back: it publishes, and its list matches the manifest
    assert run_cli("publish", str(changed), "--to", str(tmp_path / "mirror-files")) == 0
    sums = parse_sums((tmp_path / "mirror-files" / SUMS_NAME).read_text(), SUMS_NAME)
    assert sums[rel] == sha((dataset / rel).read_bytes())


def test_an_earlier_builds_samples_are_not_published(dataset, tmp_path, capsys):
    """Sample files the manifest does not list (a build with other settings left them) were published and
    listed in SHA256SUMS, as if part of the dataset."""
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    first = read_manifest(copy)["blur_path"].iloc[0]
    stale = Path(first).parent.parent / "old-take" / "000007" / "blur.png"
    (copy / stale).parent.mkdir(parents=True)
    shutil.copy(copy / first, copy / stale)
    (copy / "notes.txt").write_text("kept: a file beside the manifest is the dataset's")
    report = publish(copy, str(tmp_path / "mirror"))
    assert stale.as_posix() not in report.uploaded and "notes.txt" in report.uploaded
    assert stale.as_posix() not in open_mirror(str(tmp_path / "mirror")).read_sums()
    assert "1 file(s) beside the samples that the manifest does not list were left out" in capsys.readouterr().err


def test_max_rate_holds_back_the_first_uploads_too(dataset, tmp_path, monkeypatch):
    """The limiter counted an object's bytes after its upload: the first --jobs objects went out at full speed."""
    starts: list[tuple[float, str]] = []
    real_put = mirror_mod.Mirror.put_file

    def timed_put(self, path, key):
        starts.append((time.monotonic(), key))
        return real_put(self, path, key)

    monkeypatch.setattr(mirror_mod.Mirror, "put_file", timed_put)
    sizes = {k: len(v) for k, v in source_files(dataset).items()}
    rate = sum(sizes.values()) / 1.5  # ~1.5 s for everything
    began = time.monotonic()
    publish(dataset, str(tmp_path / "mirror"), jobs=4, max_rate=rate)
    card = next(k for _, k in starts if k not in sizes)
    sizes[card] = (tmp_path / "mirror" / card).stat().st_size
    sent = 0
    for at, key in sorted(starts):  # each object starts no sooner than the bytes before it allow
        assert at - began >= sent / rate - 0.05, (key, at - began, sent / rate)
        sent += sizes[key]


def test_fetch_removes_only_its_own_leftovers(dataset, tmp_path):
    """fetch cleaned every name holding ".partial" under DIR: a user's "movie.mkv.partial" or "proj.partial.d/"."""
    publish(dataset, str(tmp_path / "mirror"))
    dest = tmp_path / "dest"
    fetch(str(tmp_path / "mirror"), dest)  # an earlier fetch: DIR is ours to fetch into again
    (dest / "proj.partial.d").mkdir(parents=True)
    (dest / "proj.partial.d" / "a.txt").write_text("mine")
    (dest / "movie.mkv.partial").write_text("mine")
    leftover = dest / ".manifest.k1lled_x.partial.parquet"  # what a killed fetch leaves (atomic_path's name)
    leftover.write_text("half")
    fetch(str(tmp_path / "mirror"), dest)
    assert (dest / "proj.partial.d" / "a.txt").read_text() == "mine" and (dest / "movie.mkv.partial").exists()
    assert not leftover.exists()


def test_publish_refuses_a_place_that_holds_other_files(dataset, tmp_path):
    """A folder of other files had its README.md overwritten by the card, and the files an unrelated
    SHA256SUMS listed were deleted as stale."""
    isos = tmp_path / "isos"
    isos.mkdir()
    (isos / "ubuntu.iso").write_bytes(b"iso")
    (isos / "README.md").write_text("my notes")
    (isos / SUMS_NAME).write_text(f"{sha(b'iso')}  ubuntu.iso\n")
    with pytest.raises(Rb2vError, match=r"isos: holds 3 object\(s\) \(e.g. README.md\) but is not an rb2v mirror"):
        publish(dataset, str(isos))
    assert sorted(p.name for p in isos.iterdir()) == ["README.md", SUMS_NAME, "ubuntu.iso"]
    assert (isos / "README.md").read_text() == "my notes"


def test_fetch_refuses_a_folder_of_other_files(dataset, tmp_path):
    """Its README.md and SHA256SUMS were overwritten by the mirror's."""
    publish(dataset, str(tmp_path / "mirror"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    (mine / SUMS_NAME).write_text(f"{sha(b'x')}  x.iso\n")
    with pytest.raises(
        Rb2vError, match=r"mine: holds 2 file\(s\) or folder\(s\) \(e.g. README.md\) but no earlier fetch"
    ):
        fetch(str(tmp_path / "mirror"), mine)
    assert (mine / "README.md").read_text() == "my notes" and len(list(mine.iterdir())) == 2
    # an interrupted fetch is resumed (its marker), and the marker is gone once the fetch is complete
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / IN_PROGRESS).write_text("killed")
    (dest / "manifest.parquet").write_bytes(b"half")
    assert "manifest.parquet" in fetch(str(tmp_path / "mirror"), dest).downloaded
    assert not (dest / IN_PROGRESS).exists() and validate_manifest(dest) == []


def test_publish_refuses_a_manifest_that_validate_rejects(dataset, tmp_path):
    """A row with 6 sharp frames was published with a complete SHA256SUMS."""
    from rb2v.manifest import write_manifest

    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    df = read_manifest(copy)
    df.at[0, "sharp_paths"] = df.loc[0, "sharp_paths"][:6]
    write_manifest(copy / MANIFEST_NAME, df, df.attrs["metadata"])
    with pytest.raises(Rb2vError, match=r"6 sharp frames, expected 7 \(2 problem\(s\) in all: `rb2v validate"):
        publish(copy, str(tmp_path / "mirror"))
    assert not (tmp_path / "mirror").exists()


def test_a_second_publish_or_fetch_into_a_place_in_use_is_refused_at_once(dataset, tmp_path, monkeypatch):
    """Two publishes to one mirror at once both exited 0 and left it corrupt (or shared a staging folder and
    blamed a missing README.md); two fetches into one folder mixed the mirrors' files."""
    from rb2v.fsutil import exclusive_place, place_lock

    mirror, other, dest = tmp_path / "mirror", tmp_path / "other", tmp_path / "dest"
    publish(dataset, str(mirror))
    publish(dataset, str(other))
    # the lock files are removed when their runs end (each publish and fetch had left one in the temporary folder)
    assert not place_lock(str(mirror.resolve())).exists() and not place_lock(str(other.resolve())).exists()
    held = rf"rb2v \(pid {os.getpid()}\) is writing it; wait for it to end"
    with exclusive_place(str(mirror.resolve()), "test"):  # what a publish or a fetch into it holds
        assert place_lock(str(mirror.resolve())).exists()
        with pytest.raises(Rb2vError, match=rf"^{re.escape(str(mirror.resolve()))}: {held} \(publish refused"):
            publish(dataset, f"file://{mirror}")
        with pytest.raises(Rb2vError, match=rf"{held} \(fetch refused meanwhile\)"):
            fetch(str(other), mirror)  # the same folder as a fetch's DIR
        fetch(str(mirror), dest)  # another place is free
    with (
        exclusive_place(str(dest.resolve()), "test"),
        pytest.raises(Rb2vError, match=rf"{held} \(fetch refused meanwhile\)"),
    ):
        fetch(str(mirror), dest)
    assert validate_manifest(dest) == [] and verify(str(mirror)).ok
    assert not place_lock(str(mirror.resolve())).exists() and not place_lock(str(dest.resolve())).exists()
    # a run that opened the lock file just before the run holding it removed it, and locked it just after, held
    # a file no name points to: it opens the name again, so that a third run is refused, not let in beside it
    import rb2v.fsutil as fsutil

    place = f"the place of {tmp_path}"
    lock = place_lock(place)
    stale = open(lock, "a+")  # noqa: SIM115 (closed by the run that finds it stale)
    lock.unlink()
    opened = []

    def stale_first(path, mode):
        opened.append(path)
        return stale if len(opened) == 1 else open(path, mode)

    monkeypatch.setattr(fsutil, "open", stale_first, raising=False)
    with exclusive_place(place, "test"):
        monkeypatch.undo()
        assert stale.closed and len(opened) == 2 and lock.exists()
        with pytest.raises(Rb2vError, match="is writing it"), exclusive_place(place, "test"):
            pass
    assert not lock.exists()


@pytest.mark.parametrize(
    "line, message",
    [
        # the last of two lines won: verify said OK and fetch exited 0 where sha256sum -c fails
        (f"{'0' * 64}  manifest.parquet", "line 3 lists manifest.parquet a second time"),
        (f"{'0' * 64}  samples/x/", "line 3 names 'samples/x/', not a file's path"),  # a fetch never ended
        (f"{'0' * 64}  ./README.md", "line 3 names './README.md', not a file's path"),  # verify: missing
    ],
)
def test_a_checksum_list_naming_a_path_twice_or_a_folder_is_refused(line, message):
    good = f"{'a' * 64}  manifest.parquet\n{'b' * 64}  README.md\n"
    assert parse_sums(good, "m/SHA256SUMS") == {"manifest.parquet": "a" * 64, "README.md": "b" * 64}
    with pytest.raises(Rb2vError, match=rf"^m/SHA256SUMS: {re.escape(message)}"):
        parse_sums(good + line + "\n", "m/SHA256SUMS")


def test_fetch_refuses_a_list_naming_its_own_in_progress_marker(dataset, tmp_path):
    """A SHA256SUMS listing .rb2v-in-progress: fetched, "all verified", then deleted by the fetch itself."""
    mirror = tmp_path / "mirror"
    publish(dataset, str(mirror))
    (mirror / IN_PROGRESS).write_text("x")
    sums = (mirror / SUMS_NAME).read_text() + f"{sha(b'x')}  {IN_PROGRESS}\n"
    (mirror / SUMS_NAME).write_text(sums)
    with pytest.raises(Rb2vError, match=rf"SHA256SUMS: lists {re.escape(IN_PROGRESS)}, the marker of an unfinished"):
        fetch(str(mirror), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
