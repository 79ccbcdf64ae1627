"""A mirror: a folder (local path or ``file://``) or an S3 prefix (``s3://bucket/prefix``), via fsspec.

Objects are addressed by keys relative to the mirror's root ("data/street/train-00000-of-00001.parquet").
A key is either absent or complete, and every upload reads its source once, hashing as it reads:
on a folder the copy goes to a temporary sibling name (``.<name>.<token>.partial``), is flushed and
size-checked, then renamed into place; on S3 each body carries its ``Content-MD5`` (the server
refuses bytes that do not match) and the ETag returned is checked against the md5s computed while
reading; a PUT or a completed multipart upload becomes visible whole, so S3 needs no temporary key
(old ``.partial`` keys of earlier versions are still cleaned by ``publish``).
Transient errors retry with backoff; a permanent one raises ``MirrorError`` naming the object.
Credentials come from the usual AWS environment/config through botocore and are never printed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import fsspec

from ..errors import Rb2vError
from ..fsutil import PARTIAL_SUFFIX
from .checksums import MULTIPART_CHUNK, READ_CHUNK, SUMS_NAME, FileDigest, multipart_etag, parse_sums

T = TypeVar("T")

RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 10.0
S3FS_RETRIES = 2
PARALLEL_PARTS = 4  # parts of one multipart upload in flight (each MULTIPART_CHUNK bytes in memory)
COPY_CHUNK = 1 << 20
BOTOCORE_ATTEMPTS = 1  # no retries inside botocore: ours back off and re-check whole objects
PARTIAL_RE = re.compile(r"^\..+\.[0-9a-f]{12}" + re.escape(PARTIAL_SUFFIX) + "$")
# Errors no retry can fix: missing bucket, no permission, malformed request.
PERMANENT_ERRNOS = {errno.EINVAL, errno.EPERM, errno.EACCES, errno.ENOENT, errno.EROFS, errno.ENOSPC}
REMOTE_LIBRARIES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3")
PERMANENT_REMOTE = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "NoRegionError",
    "ParamValidationError",
    "InvalidURL",
    "UnknownEndpointError",
)


class MirrorError(Rb2vError):
    """An operation on one mirror object failed for good (after retries when transient)."""


class ChecksumMismatch(OSError):
    """What landed on the mirror differs from what was sent (treated as transient: re-upload)."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None  # S3 only, without quotes


def is_partial(key: str) -> bool:
    return bool(PARTIAL_RE.match(key.rsplit("/", 1)[-1]))


def partial_key(key: str) -> str:
    head, _, name = key.rpartition("/")
    tmp = f".{name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
    return f"{head}/{tmp}" if head else tmp


def _from_remote(e: BaseException) -> bool:
    """An error of the storage (or of the way to it), as opposed to a bug in the caller."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in REMOTE_LIBRARIES


def _is_transient(e: BaseException) -> bool:
    if isinstance(e, ChecksumMismatch):
        return True
    if isinstance(e, (PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(e, OSError):
        return e.errno not in PERMANENT_ERRNOS
    return _from_remote(e) and type(e).__name__ not in PERMANENT_REMOTE


def _describe(e: BaseException) -> str:
    if type(e).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return "no usable AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def retrying(fn: Callable[[], T], what: str, attempts: int = RETRY_ATTEMPTS) -> T:
    """Run ``fn``; retry transient failures with exponential backoff and jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not _from_remote(e):
                raise  # a bug, not the mirror: keep the traceback
            if not _is_transient(e):
                raise MirrorError(f"{what}: {_describe(e)}") from None
            if attempt == attempts:
                raise MirrorError(f"{what}: failed after {attempts} attempts: {_describe(e)}") from None
            delay = min(RETRY_BASE_DELAY_S * 2 ** (attempt - 1), RETRY_MAX_DELAY_S)
            time.sleep(delay * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


class RateLimiter:
    """Caps the average upload rate over all threads (bytes/s), e.g. on a shared lab link."""

    def __init__(self, bytes_per_s: float):
        self.bytes_per_s = bytes_per_s
        self.start = time.monotonic()
        self.sent = 0
        self.lock = threading.Lock()

    def wait_turn(self, n: int) -> None:
        """Wait until ``n`` more bytes may start: after the bytes before them have had their time, so no
        thread, the first ones included, sends ahead of the rate."""
        with self.lock:
            due = self.start + self.sent / self.bytes_per_s
            self.sent += n
        time.sleep(max(0.0, due - time.monotonic()))


class Mirror:
    def __init__(self, url: str, fs: fsspec.AbstractFileSystem, root: str, is_s3: bool):
        self.url = url.rstrip("/")
        self.fs = fs
        self.root = root.rstrip("/")
        self.is_s3 = is_s3

    @property
    def place(self) -> str:
        """What two runs at once must not write (a local mirror: its resolved folder, as a fetch names it)."""
        return f"s3://{self.root}" if self.is_s3 else self.root

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def where(self, key: str) -> str:
        """The object's address for messages."""
        return f"{self.url}/{key}"

    # --- reading -----------------------------------------------------------------------------
    def list_objects(self) -> dict[str, ObjectInfo]:
        """Every object below the root (recursive), by key."""

        def listing() -> dict[str, ObjectInfo]:
            self.fs.invalidate_cache()
            if not self.fs.exists(self.root):
                return {}
            found = self.fs.find(self.root, detail=True)
            out = {}
            prefix = self.fs._strip_protocol(self.root).rstrip("/") + "/"
            for path, info in found.items():
                if not path.startswith(prefix):
                    continue
                # a folder mirror's link to a file serves that file's bytes (fetch follows it; fsspec gives the
                # target's size); a link to nothing is left out, so verify calls it missing
                if info.get("type") != "file" and not (info.get("islink") and os.path.isfile(path)):
                    continue
                etag = info.get("ETag") or info.get("etag")
                out[path[len(prefix) :]] = ObjectInfo(int(info["size"]), etag.strip('"') if etag else None)
            return out

        return retrying(listing, f"{self.url}: listing")

    def read_bytes(self, key: str) -> bytes | None:
        """The object's content, or None when it does not exist."""

        def read() -> bytes | None:
            try:
                return self.fs.cat_file(self.path(key))
            except FileNotFoundError:
                return None

        return retrying(read, self.where(key))

    def read_sums(self) -> dict[str, str] | None:
        data = self.read_bytes(SUMS_NAME)
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Rb2vError(f"{self.where(SUMS_NAME)}: not a text checksum list") from None
        return parse_sums(text, self.where(SUMS_NAME))

    def sha256(self, key: str) -> str:
        """sha256 of the object's bytes as stored (streamed, never held whole in memory)."""

        def stream() -> str:
            h = hashlib.sha256()
            with self.fs.open(self.path(key), "rb", block_size=READ_CHUNK * 8) as f:
                while block := f.read(READ_CHUNK * 8):
                    h.update(block)
            return h.hexdigest()

        return retrying(stream, self.where(key))

    def holds(self, key: str, info: ObjectInfo, digest: FileDigest) -> bool:
        """Whether the stored object has exactly these bytes (the ETag decides on S3 when it is an md5)."""
        if info.size != digest.size:
            return False
        if info.etag is not None and info.etag in digest.etags:
            return True
        return self.sha256(key) == digest.sha256

    # --- writing -----------------------------------------------------------------------------
    def ensure_root(self) -> None:
        if self.is_s3:
            bucket = self.root.split("/", 1)[0]

            def bucket_exists() -> bool:
                try:
                    self.fs.call_s3("head_bucket", Bucket=bucket)
                    return True
                except FileNotFoundError:
                    return False

            if not retrying(bucket_exists, f"{self.url}: bucket {bucket!r}", attempts=2):
                raise Rb2vError(f"{self.url}: bucket {bucket!r} does not exist (create it first)")
        else:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise Rb2vError(f"{self.root}: cannot create the mirror folder ({e.strerror})") from None

    def put_file(self, local: Path, key: str) -> FileDigest:
        """Upload ``local`` as ``key``, reading it once (hashed while read); returns its digest.

        A folder: copied to a temporary name, flushed, checked (size), renamed into place. S3: one
        PUT (or a multipart upload) to the final key with each body's ``Content-MD5``, so the server
        checks every byte it stores, and the returned ETag is checked again; S3 makes a PUT or a
        completed multipart upload visible whole or not at all, so no temporary key is needed.
        """
        return retrying(lambda: self._put_once(local, key), self.where(key))

    def put_bytes(self, data: bytes, key: str) -> None:
        """A small object (the checksum list), written the same way."""
        retrying(lambda: self._put_once(data, key), self.where(key))

    def remove(self, key: str) -> None:
        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(key))

        retrying(rm, self.where(key))

    def _put_once(self, source: Path | bytes, key: str) -> FileDigest:
        if self.is_s3:
            return self._put_s3(source, key)
        tmp = partial_key(key)
        try:
            digest = self._copy_hashing(source, self.path(tmp))
            os.replace(self.path(tmp), self.path(key))  # within its folder: atomic
            return digest
        except BaseException:
            self._remove_quietly(tmp)
            raise

    def _copy_hashing(self, source: Path | bytes, dest: str) -> FileDigest:
        """Copy to ``dest`` hashing the bytes as they pass; flushed to disk, size checked."""
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        sha, size = hashlib.sha256(), 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if isinstance(source, bytes):
                sha.update(source)
                size = len(source)
                view = memoryview(source)
                while view:
                    view = view[os.write(fd, view) :]
            else:
                buf = bytearray(COPY_CHUNK)
                with open(source, "rb", buffering=0) as f:
                    while n := f.readinto(buf):
                        chunk = memoryview(buf)[:n]
                        sha.update(chunk)
                        size += n
                        while chunk:
                            chunk = chunk[os.write(fd, chunk) :]
            os.fsync(fd)
            if os.fstat(fd).st_size != size:
                raise ChecksumMismatch(errno.EIO, f"wrote {os.fstat(fd).st_size} bytes of {size}")
        finally:
            os.close(fd)
        return FileDigest(size, sha.hexdigest())

    def _put_s3(self, source: Path | bytes, key: str) -> FileDigest:
        bucket, obj = self._split(key)
        if isinstance(source, bytes) or source.stat().st_size < 2 * MULTIPART_CHUNK:
            data = source if isinstance(source, bytes) else source.read_bytes()
            md5 = hashlib.md5(data)
            reply = self.fs.call_s3(
                "put_object", Bucket=bucket, Key=obj, Body=data, ContentMD5=base64.b64encode(md5.digest()).decode()
            )
            digest = FileDigest(len(data), hashlib.sha256(data).hexdigest(), frozenset({md5.hexdigest()}))
            etag = reply["ETag"].strip('"')
        else:
            digest, etag = self._put_multipart(source, bucket, obj)
        if etag not in digest.etags:  # the server checked Content-MD5; a different ETag means a broken store
            self._remove_quietly(key)
            raise ChecksumMismatch(errno.EIO, f"the server's ETag {etag} is not the md5 of the bytes sent")
        return digest

    def _put_multipart(self, source: Path, bucket: str, obj: str) -> tuple[FileDigest, str]:
        """Parts of MULTIPART_CHUNK read in turn (hashed as read) and sent PARALLEL_PARTS at a time."""
        upload_id = self.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=obj)["UploadId"]
        sha, md5s, size, pending, etags = hashlib.sha256(), [], 0, [], {}

        def send(number: int, body: bytes, md5: bytes) -> None:
            reply = self.fs.call_s3(
                "upload_part",
                Bucket=bucket,
                Key=obj,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ContentMD5=base64.b64encode(md5).decode(),
            )
            etags[number] = reply["ETag"]

        try:
            with ThreadPoolExecutor(PARALLEL_PARTS) as pool, open(source, "rb") as f:
                while body := f.read(MULTIPART_CHUNK):
                    sha.update(body)
                    size += len(body)
                    md5s.append(hashlib.md5(body).digest())
                    if len(pending) >= PARALLEL_PARTS:  # bounds the parts held in memory
                        pending.pop(0).result()
                    pending.append(pool.submit(send, len(md5s), body, md5s[-1]))
                for fut in pending:
                    fut.result()
            parts = [{"PartNumber": i, "ETag": etags[i]} for i in sorted(etags)]
            reply = self.fs.call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=obj,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=obj, UploadId=upload_id)
            raise
        digest = FileDigest(size, sha.hexdigest(), frozenset({multipart_etag(md5s)}))
        return digest, reply["ETag"].strip('"')

    def _split(self, key: str) -> tuple[str, str]:
        """(bucket, object key) of a mirror key on S3."""
        bucket, _, path = self.path(key).partition("/")
        return bucket, path

    def _remove_quietly(self, key: str) -> None:
        # best effort: a leftover partial is removed by the next publish
        with contextlib.suppress(Exception):
            self.fs.rm_file(self.path(key))


def open_mirror(url: str, endpoint_url: str | None = None) -> Mirror:
    """The mirror at ``url``: a local path, ``file://PATH`` or ``s3://bucket[/prefix]``."""
    if url.startswith("s3://"):
        root = url[len("s3://") :].strip("/")
        if not root:
            raise Rb2vError(f"{url}: an S3 mirror needs a bucket: s3://bucket/prefix")
        try:
            import s3fs
        except ModuleNotFoundError:
            raise Rb2vError("s3:// mirrors need the Python package 's3fs': pip install s3fs") from None
        # One client per endpoint in a process (making one costs ~0.3 s); no listings cache, the
        # mirror may change under us. Retries live in ``retrying`` (whole objects, checksum
        # included), so the inner layers stay short.
        fs = s3fs.S3FileSystem(
            endpoint_url=endpoint_url,
            use_listings_cache=False,
            config_kwargs={"retries": {"mode": "standard", "max_attempts": BOTOCORE_ATTEMPTS}},
        )
        fs.retries = S3FS_RETRIES
        return Mirror(url, fs, root, is_s3=True)
    if endpoint_url:
        raise Rb2vError(f"{url}: --endpoint-url applies to s3:// mirrors only")
    if url.startswith("file://"):
        path = url[len("file://") :]
    elif "://" in url:
        raise Rb2vError(f"{url}: unsupported mirror (use a folder, file://PATH or s3://bucket/prefix)")
    else:
        path = url
    if not path:
        raise Rb2vError(f"{url}: empty mirror path")
    root = str(Path(path).expanduser().resolve())
    return Mirror(url, fsspec.filesystem("file"), root, is_s3=False)
