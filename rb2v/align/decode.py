"""Decoding with an ffmpeg filter in front, for the align stage's two cheap reads.

``rb2v.io.video.iter_frames`` hands over full RGB frames; alignment needs less: grey frames
at a few sampled indices (the homography) and only the part of each sharp frame that the crop
will sample (the output pass). Doing the selection, cropping and colour conversion inside
ffmpeg keeps Python off bytes it would throw away.
"""

from __future__ import annotations

import subprocess
from typing import Iterable, Iterator

import numpy as np

from .. import ffmpeg
from ..errors import Rb2vError
from ..io.video import VideoInfo, VideoSource

SEEK_GAP = 250  # frames: a larger gap between wanted frames is crossed by seeking, not decoding


def _pipe(info: VideoInfo, start: int, vf: str, size: tuple[int, int], channels: int, out_count: int,
          chunk: int) -> Iterator[np.ndarray]:
    """The first ``out_count`` frames that filter ``vf`` lets through, decoding from frame ``start``."""
    width, height = size
    args = []
    if start > 0:  # aim half a frame early: the target frame is the first one kept (as iter_frames)
        args += ["-ss", f"{(start - 0.5) / float(info.fps):.6f}"]
    args += ["-v", "error", "-i", str(info.path), "-map", "0:v:0", *ffmpeg.passthrough_args(),
             "-frames:v", str(out_count), "-vf", vf,
             "-f", "rawvideo", "-pix_fmt", "gray" if channels == 1 else "rgb24", "-"]
    proc = ffmpeg.popen(args, stdout=subprocess.PIPE)
    frame_bytes = width * height * channels
    shape = (height, width) if channels == 1 else (height, width, channels)
    got = 0
    try:
        while got < out_count:
            n = min(chunk, out_count - got)
            buf = proc.stdout.read(frame_bytes * n)
            whole = len(buf) // frame_bytes
            if whole:
                yield np.frombuffer(buf[: whole * frame_bytes], np.uint8).reshape(whole, *shape)
                got += whole
            if whole < n:
                break
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        proc.wait()
    if got < out_count:
        why = ffmpeg.last_error_line(err) if err.strip() else "stream ended early"
        raise Rb2vError(f"{info.path}: truncated or corrupt video: got {got} of {out_count} frames ({why})")


def crop_filtered(src: VideoSource, box: tuple[int, int, int, int], chunk: int = 8) -> Iterator[np.ndarray]:
    """Every frame's ``box`` (x, y, width, height; even numbers, so chroma stays aligned) as RGB chunks."""
    x, y, w, h = box
    vf = f"crop={w}:{h}:{x}:{y}:exact=1,format=rgb24"
    for info in src.chapters:
        yield from _pipe(info, 0, vf, (w, h), 3, info.frames, chunk)


def grey_selected(src: VideoSource, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, grey uint8 frame) for the wanted frames in increasing order. ffmpeg drops the
    frames in between before any conversion; gaps wider than ``SEEK_GAP`` are crossed by seeking."""
    wanted = sorted(set(indices))
    offset = 0
    for info in src.chapters:
        mine = [i - offset for i in wanted if offset <= i < offset + info.frames]
        runs: list[list[int]] = []
        for i in mine:
            if runs and i - runs[-1][-1] <= SEEK_GAP:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            start = run[0]
            select = "+".join(f"eq(n\\,{i - start})" for i in run)
            vf = f"select={select},format=gray"
            frames = np.concatenate(list(_pipe(info, start, vf, (info.width, info.height), 1, len(run), 64)))
            for i, frame in zip(run, frames):
                yield offset + i, frame
        offset += info.frames
