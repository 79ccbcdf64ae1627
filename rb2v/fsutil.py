"""Atomic writes: nothing half-written is ever taken for finished.

Every file is written under a temporary name in the same folder and renamed into
place only when complete (rename is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import Rb2vError

PARTIAL_SUFFIX = ".partial"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; finished outputs get the usual modes.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    ``suffix`` keeps an extension on the temporary name for tools that infer the
    format from it (ffmpeg, cv2.imwrite).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{PARTIAL_SUFFIX}{ext}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent))
    os.chmod(tmp, _DIR_MODE)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# the names atomic_path and atomic_dir give (mkstemp/mkdtemp: ".<name>.<8 random>.partial[.ext]"); only
# these are removed: a user's own "movie.mkv.partial" or "proj.partial.d/" beside a fetch is not ours
_PARTIAL_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(PARTIAL_SUFFIX) + r"(\.[A-Za-z0-9_-]+)?$")


def is_partial_name(name: str) -> bool:
    return bool(_PARTIAL_NAME.match(name))


def clean_partials(folder: str | os.PathLike) -> int:
    """Remove leftovers of interrupted atomic writes below ``folder``; return how many."""
    n = 0
    for p in Path(folder).rglob(f".*{PARTIAL_SUFFIX}*"):
        if not is_partial_name(p.name):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock (``.lock``, an OS file lock: released when the process ends, even killed)
    for the block, or a one-line error at once when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _held(folder / ".lock", str(folder), what):
        yield


def place_lock(place: str) -> Path:
    """The lock file of a place (``exclusive_place``): in the temporary folder, named after the place."""
    return Path(tempfile.gettempdir()) / f"rb2v-place-{hashlib.sha256(place.encode('utf-8')).hexdigest()[:16]}.lock"


@contextlib.contextmanager
def exclusive_place(place: str, what: str) -> Iterator[None]:
    """``exclusive`` for a place rb2v must not write into (a mirror, a fetch's folder) or cannot (S3):
    the lock file is in the temporary folder, named after the place, so it holds for the runs of
    this machine; it is removed when the block ends (each publish or fetch had left one there)."""
    with _held(place_lock(place), place, what, remove=True):
        yield


@contextlib.contextmanager
def _held(lock: Path, shown: str, what: str, remove: bool = False) -> Iterator[None]:
    while True:
        handle = open(lock, "a+")  # noqa: SIM115 (closed on every path but the one that holds the lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not remove or _names(lock, handle):
                break
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise Rb2vError(f"{shown}: {holder} is writing it; wait for it to end ({what} refused meanwhile)") from None
        except BaseException:
            handle.close()
            raise
        # a run that ended removed this file after we opened it: lock the one under its name now
        handle.close()
    with handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"rb2v (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            if remove:  # while still held: a run that opened it meanwhile finds the name gone once it locks
                lock.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _names(path: Path, handle) -> bool:
    """Whether ``path`` still names the file ``handle`` has open."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
