"""Decoding with an ffmpeg filter in front, for the align stage's two cheap reads.

``rb2v.io.video.iter_frames`` hands over full RGB frames; alignment needs less: grey frames
at a few sampled indices (the homography) and only the part of each sharp frame that the crop
will sample (the output pass). Doing the selection, cropping and colour conversion inside
ffmpeg keeps Python off bytes it would throw away.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from ..io.video import VideoSource, decode_pipe

SEEK_GAP = 250  # frames: a larger gap between wanted frames is crossed by seeking, not decoding


def crop_filtered(src: VideoSource, box: tuple[int, int, int, int], chunk: int = 8) -> Iterator[np.ndarray]:
    """Every frame's ``box`` (x, y, width, height; even numbers, so chroma stays aligned) as RGB chunks."""
    x, y, w, h = box
    vf = f"crop={w}:{h}:{x}:{y}:exact=1,format=rgb24"
    for info in src.chapters:
        yield from decode_pipe(info, 0, info.frames, chunk, vf=vf, size=(w, h))


def chapter_runs(src: VideoSource, indices: Iterable[int]):
    """The wanted frames grouped for decoding: (chapter, its first stream index, runs of in-chapter
    indices in increasing order). Frames of one run are decoded in one pass; gaps wider than
    ``SEEK_GAP`` start a new run, crossed by seeking."""
    wanted = sorted(set(int(i) for i in indices))
    offset = 0
    for info in src.chapters:
        runs: list[list[int]] = []
        for i in (i - offset for i in wanted if offset <= i < offset + info.frames):
            if runs and i - runs[-1][-1] <= SEEK_GAP:
                runs[-1].append(i)
            else:
                runs.append([i])
        yield info, offset, runs
        offset += info.frames


DECODED_KEPT_BYTES = 256 << 20  # grey frames kept for ``grey_selected``'s next call (a 1080p take's 84: 174 MB)
_decoded: collections.OrderedDict = collections.OrderedDict()  # (file and its state, frame) -> grey frame
_decoded_bytes = 0
_decoded_lock = threading.Lock()


def grey_selected(src: VideoSource, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, grey uint8 frame, not to be written to) for the wanted frames in increasing order. ffmpeg
    drops the frames in between before any conversion. The frames are kept for the next call (up to
    ``DECODED_KEPT_BYTES``): a take's homography is estimated again on nearly the same frames as its
    exposure window settles (a calibration take: seven times, 532 frames decoded, 251 of them distinct)."""
    ordered = sorted(set(int(i) for i in indices))
    wanted: dict[int, tuple] = {}
    offset = 0
    for info in src.chapters:
        st = os.stat(info.path)  # a file written again (its inode's change time moves) is decoded again
        file = (str(info.path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        for i in ordered:
            if offset <= i < offset + info.frames:
                wanted[i] = (*file, i - offset)
        offset += info.frames
    with _decoded_lock:
        found = {i: _decoded[key] for i, key in wanted.items() if key in _decoded}
        for i in found:
            _decoded.move_to_end(wanted[i])
    # frames asked for in order that do not all fit would push each other out before the next call asks
    # again (a 4K take's 84 grey frames: 700 MB): those are not kept
    keep = len(wanted) * src.width * src.height <= DECODED_KEPT_BYTES
    for info, offset, runs in chapter_runs(src, [i for i in ordered if i in wanted and i not in found]):
        for run in runs:
            start = run[0]
            select = "+".join(f"eq(n\\,{i - start})" for i in run)
            vf = f"select={select},format=gray"
            frames = np.concatenate(list(decode_pipe(info, start, len(run), 64, vf=vf, channels=1)))
            for i, frame in zip(run, frames):
                found[offset + i] = frame
                if keep:
                    _keep(wanted[offset + i], frame.copy())
    for i in wanted:
        yield i, found[i]


def _keep(key: tuple, frame: np.ndarray) -> None:
    global _decoded_bytes
    with _decoded_lock:
        if key in _decoded or frame.nbytes > DECODED_KEPT_BYTES:
            return
        _decoded[key] = frame
        _decoded_bytes += frame.nbytes
        while _decoded_bytes > DECODED_KEPT_BYTES:
            _decoded_bytes -= _decoded.popitem(last=False)[1].nbytes


def forget() -> None:
    """Drop the kept frames (a take aligned: the next take's are others)."""
    global _decoded_bytes
    with _decoded_lock:
        _decoded.clear()
        _decoded_bytes = 0
