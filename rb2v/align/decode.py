"""Decoding with an ffmpeg filter in front, for the align stage's two cheap reads.

``rb2v.io.video.iter_frames`` hands over full RGB frames; alignment needs less: grey frames
at a few sampled indices (the homography) and only the part of each sharp frame that the crop
will sample (the output pass). Doing the selection, cropping and colour conversion inside
ffmpeg keeps Python off bytes it would throw away.
"""

from __future__ import annotations

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


def grey_selected(src: VideoSource, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, grey uint8 frame) for the wanted frames in increasing order. ffmpeg drops the
    frames in between before any conversion."""
    for info, offset, runs in chapter_runs(src, indices):
        for run in runs:
            start = run[0]
            select = "+".join(f"eq(n\\,{i - start})" for i in run)
            vf = f"select={select},format=gray"
            frames = np.concatenate(list(decode_pipe(info, start, len(run), 64, vf=vf, channels=1)))
            for i, frame in zip(run, frames):
                yield offset + i, frame
