"""The one place that finds and runs ffmpeg.

The system ``ffmpeg`` is used when it is on PATH (or named by ``RB2V_FFMPEG``),
else the static binary shipped by the ``imageio-ffmpeg`` wheel, so a plain
``pip install`` is enough. Commands are argument lists, never shell strings, so
paths with spaces or odd characters are safe. Stages describe their inputs, filter chains
and outputs as ffmpeg-python graphs (``graph``) where that reads better than a hand-built
list; ``run`` and ``popen`` compile them to argument lists here.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence

import ffmpeg as graph  # ffmpeg-python: builds the graph, compiles it to arguments; never runs a shell

from .errors import Rb2vError

Args = Sequence[str] | graph.nodes.OutputStream

INSTALL_HINT = "install ffmpeg (apt install ffmpeg / brew install ffmpeg) or `pip install imageio-ffmpeg`"


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Absolute path of a working ffmpeg binary, decided once per process."""
    candidates: list[str] = []
    env = os.environ.get("RB2V_FFMPEG")
    if env:
        candidates.append(env)
    else:
        system = shutil.which("ffmpeg")
        if system:
            candidates.append(system)
        try:
            import imageio_ffmpeg

            candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
        except Exception:  # the wheel is missing or carries no binary for this platform
            pass
    for exe in candidates:
        try:
            out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.startswith(b"ffmpeg version"):
            return exe
    where = f" (RB2V_FFMPEG={env!r} does not run)" if env else ""
    raise Rb2vError(f"ffmpeg not found or not working{where}: {INSTALL_HINT}")


def ffmpeg_cmd(args: Args) -> list[str]:
    """The full command line: our binary, quiet banner, then ``args`` (a list or a compiled graph)."""
    if not isinstance(args, (list, tuple)):
        args = ["-v", "error", *args.get_args()]  # a graph: errors only, as every list caller asks
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *map(str, args)]


def run(
    args: Args, *, input: bytes | None = None, what: str = "", check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion; on failure raise a one-line error naming ``what``."""
    cmd = ffmpeg_cmd(args)
    if input is not None:
        cmd.remove("-nostdin")
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        why = not_the_input(proc.stderr, proc.returncode) or last_error_line(proc.stderr)
        raise Rb2vError(f"{what or 'ffmpeg'}: {why}")
    return proc


def popen(args: Args, *, stdin=None, stdout=None, stderr=subprocess.PIPE) -> subprocess.Popen:
    """Start ffmpeg streaming through pipes (the caller owns the process)."""
    cmd = ffmpeg_cmd(args)
    if stdin is not None:
        cmd.remove("-nostdin")
    return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr)


# ffmpeg's words for a machine that ran short (memory, threads, disk, file handles), not a damaged input
RESOURCE_ERRORS = (
    "cannot allocate memory",
    "resource temporarily unavailable",
    "no space left on device",
    "too many open files",
)
RERUN_HINT = ": the input may well be whole; re-run with resources to spare (e.g. fewer --workers)"


def not_the_input(stderr: bytes | str, returncode: int | None) -> str | None:
    """Why ffmpeg failed, said with what to do, where the machine, not the input, is the likely cause (None
    otherwise): a line that says it lacked resources, or its death by a signal (the OOM killer sends SIGKILL)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    short = [line.strip() for line in text.splitlines() if any(word in line.lower() for word in RESOURCE_ERRORS)]
    if short:
        cause = f"ffmpeg ran short of the machine's resources ({short[-1]})"
    elif returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = f"ffmpeg was killed by {name} (out of memory, or a crash)"
    else:
        return None
    return cause + RERUN_HINT


def last_error_line(stderr: bytes | str) -> str:
    """The most telling line of ffmpeg's stderr, for one-line error messages."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if any(k in low for k in ("invalid", "error", "no such file", "moov atom", "not found", "unknown", "failed")):
            return ln
    return lines[-1] if lines else "ffmpeg failed"


@functools.lru_cache(maxsize=1)
def version_major() -> int:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True).stdout
    import re

    m = re.match(r"ffmpeg version n?(\d+)", out)
    return int(m.group(1)) if m else 0


def passthrough_args() -> list[str]:
    """Keep every decoded frame exactly once (no duplication/dropping to a constant rate)."""
    return ["-fps_mode", "passthrough"] if version_major() >= 5 else ["-vsync", "passthrough"]


def passthrough() -> dict:
    """``passthrough_args`` as output options of a graph."""
    flag, value = passthrough_args()
    return {flag.lstrip("-"): value}
