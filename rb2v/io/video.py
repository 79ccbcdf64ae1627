"""Video probing, streaming decode, audio and encoding — all through ``rb2v.ffmpeg``.

Frames are RGB uint8 ``(H,W,3)`` arrays, decoded in chunks so a stream is never held
in memory whole. A GoPro recording split into chapters (GX01xxxx.MP4, GX02xxxx.MP4, …)
is one ``VideoSource``: its frames and audio run on across the chapter files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import wave
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..errors import Rb2vError
from ..fsutil import atomic_path

# NTSC rates are printed rounded ("29.97 fps"); these are their exact values.
_NTSC = {Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)}


def parse_fps(text: str) -> Fraction:
    """'25' -> 25, '29.97' -> 30000/1001, '30000/1001' -> 30000/1001."""
    if "/" in text:
        num, den = text.split("/")
        return Fraction(int(num), int(den))
    value = float(text)
    if abs(value - round(value)) < 1e-3:
        return Fraction(round(value))
    for f in _NTSC:
        if abs(float(f) - value) < 0.006:
            return f
    return Fraction(value).limit_denominator(1001)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: Fraction
    frames: int
    width: int
    height: int
    duration: float
    codec: str
    pix_fmt: str = ""
    has_audio: bool = False
    audio_rate: int = 0
    audio_channels: int = 0
    timecode: str | None = None
    creation_time: str | None = None
    # Where the streams start in the file's own timestamps, which a camera need not begin together:
    # seconds from the file's start (its earliest stream, where ffmpeg's input seeking counts from) to
    # the first video frame, and from the first video frame to the first decoded audio sample
    # (negative: the sound starts first).
    video_start: float = 0.0
    audio_start: float = 0.0
    # A display matrix's rotation (degrees, as ffmpeg prints it): decoding applies it, as players do, so
    # width and height are those of the pictures shown (a phone's portrait video: coded 1920x1080, 1080x1920).
    rotation: int = 0
    # Why the pictures do not come one frame period apart (dropped frames, a variable rate), as
    # ``probe(..., constant_rate=False)`` found it; empty for a constant rate. Every stage needs one.
    rate_problem: str = ""

    @property
    def timecode_s(self) -> float | None:
        """Start timecode in seconds (HH:MM:SS:FF, frames at the nominal integer rate)."""
        if not self.timecode:
            return None
        m = re.match(r"(\d+):(\d+):(\d+)[:;.](\d+)", self.timecode)
        if not m:
            return None
        h, mi, s, ff = map(int, m.groups())
        nominal = round(float(self.fps))
        return (h * 3600 + mi * 60 + s) + ff / nominal

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return d


def _describe_failure(path: Path, stderr: str, returncode: int | None = None) -> str:
    cause = ffmpeg.not_the_input(stderr, returncode)
    if cause:
        return f"{path}: {cause}"
    low = stderr.lower()
    if "moov atom not found" in low:
        return f"{path}: corrupt or truncated video (moov atom not found)"
    if "invalid data found" in low:
        return f"{path}: not a video file (invalid data)"
    if "no such file" in low:
        return f"{path}: file not found"
    return f"{path}: unreadable video: {ffmpeg.last_error_line(stderr)}"


def probe(path: str | os.PathLike, constant_rate: bool = True) -> VideoInfo:
    """Read a video's stream parameters and count its frames exactly (no decoding). A stream whose
    pictures are not one frame period apart is refused, or with ``constant_rate=False`` described
    (``rate_problem``), as `rb2v probe` shows it."""
    path = Path(path)
    if not path.exists():
        raise Rb2vError(f"{path}: file not found")
    if path.is_dir():
        raise Rb2vError(f"{path}: is a folder, not a video")
    if path.stat().st_size == 0:
        raise Rb2vError(f"{path}: empty file (0 bytes)")
    # A stream copy prints the header and counts packets without decoding; framecrc lists each
    # packet's timestamp, which says whether the pictures come one frame period apart.
    proc = subprocess.run(
        ffmpeg.ffmpeg_cmd(["-i", str(path), "-map", "0:v:0?", "-c", "copy", "-f", "framecrc", "-"]), capture_output=True
    )
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise Rb2vError(_describe_failure(path, err, proc.returncode))
    still = re.search(r"Input #0, (\w+)_pipe,|Input #0, image2,", err)  # ffmpeg's readers of single images
    if still:
        raise Rb2vError(f"{path}: an image ({still.group(1) or 'image2'}), not a video")
    if re.search(r"stream \d+, offset 0x[0-9a-f]+: partial file", err):
        # an index at the front (``-movflags +faststart``) outlives a cut: the frames it lists past the
        # cut are missing, and the header's duration still claims them
        raise Rb2vError(f"{path}: corrupt or truncated video (the file ends before the frames its index lists)")
    vid = re.search(r"Stream #\d+:\d+[^\n]*?: Video: (\w+)([^\n]*)", err)
    if not vid:
        raise Rb2vError(f"{path}: no video stream")
    codec, rest = vid.group(1), vid.group(2)
    # WxH, not a codec tag's hex (``0x31637661``, ``0x0000``)
    size = re.search(r"(?<![\w.])([1-9]\d{0,4})x([1-9]\d{0,4})(?!\w)", rest)
    side = err[vid.end() :].split("Stream #", 1)[0]  # the video stream's own metadata and side data
    turn = re.search(r"rotation of (-?[\d.]+) degrees", side, re.IGNORECASE)
    rotation = round(float(turn.group(1))) if turn else 0
    rate = re.search(r"([\d.]+) fps", rest) or re.search(r"([\d.]+) tbr", rest)
    if not size or not rate:
        raise Rb2vError(f"{path}: cannot read frame size or rate")
    pix = re.search(r"\), (\w+)\(|, (yuv\w+|rgb\w+|gray\w*|bgr\w+)", rest)
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err)
    counted = re.findall(r"frame=\s*(\d+)", err)
    fps = parse_fps(rate.group(1))
    frames = int(counted[-1]) if counted else 0
    if frames == 0:
        raise Rb2vError(f"{path}: video stream has no frames (truncated?)")
    rate_problem = _rate_problem(proc.stdout.decode("ascii", "replace"))
    if rate_problem and constant_rate:
        raise Rb2vError(f"{path}: {rate_problem}")
    duration = (int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))) if dur else frames / float(fps)
    aud = re.search(r"Stream #\d+:\d+[^\n]*?: Audio: (\w+)[^\n]*?(\d+) Hz, ([^,\n]+)", err)
    channels = 0
    if aud:
        layout = aud.group(3).strip()
        channels = {"mono": 1, "stereo": 2}.get(layout) or int((re.match(r"(\d+)", layout) or [0, 0])[1] or 0) or 2
    tc = re.search(r"timecode\s*:\s*(\d+:\d+:\d+[:;.]\d+)", err)
    ct = re.search(r"creation_time\s*:\s*(\S+)", err)
    file_start = re.search(r"Duration: [^\n]*?start: (-?[\d.]+)", err)
    video_at, audio_at = _first_frame_times(path, bool(aud))
    width, height = int(size.group(1)), int(size.group(2))
    if rotation % 180 == 90:  # decoded upright: a quarter turn swaps the sides
        width, height = height, width
    return VideoInfo(
        path=path,
        fps=fps,
        frames=frames,
        width=width,
        height=height,
        duration=duration,
        codec=codec,
        pix_fmt=(pix.group(1) or pix.group(2)) if pix else "",
        has_audio=bool(aud),
        audio_rate=int(aud.group(2)) if aud else 0,
        audio_channels=channels,
        timecode=tc.group(1) if tc else None,
        creation_time=ct.group(1) if ct else None,
        video_start=video_at - float(file_start.group(1)) if file_start else 0.0,
        audio_start=audio_at - video_at if aud else 0.0,
        rotation=rotation,
        rate_problem=rate_problem,
    )


def _rate_problem(packets: str) -> str:
    """Why a stream's pictures do not come one frame period apart (empty if they do): frames dropped by
    the camera (a step of 1.5 periods or more, or under half a period), or a rate that varies (drifting
    half a period or more from its mean rate). Every stage counts frame k at k / fps."""
    tb = re.search(r"#tb 0: (\d+)/(\d+)", packets)
    stamps = re.findall(r"^0,\s*-?\d+,\s*(-?\d+),", packets, re.MULTILINE)  # stream, dts, pts, ...
    if not tb or len(stamps) < 3:
        return ""
    pts = np.sort(np.array(stamps, np.float64)) * int(tb.group(1)) / int(tb.group(2))
    steps = np.diff(pts)
    period = float(np.median(steps))  # most steps are one period, whatever else happened
    if period <= 0:
        return ""
    why = ""
    jumps = np.flatnonzero((steps > 1.5 * period) | (steps < 0.5 * period))
    if len(jumps):
        k = int(jumps[0]) + 1
        why = f"frame {k} is stamped {1000 * steps[k - 1]:.1f} ms after frame {k - 1}, one period being "
        why += f"{1000 * period:.1f} ms ({len(jumps)} such step(s))"
    else:
        mean = (pts[-1] - pts[0]) / (len(pts) - 1)
        drift = (pts - pts[0]) / mean - np.arange(len(pts))  # in periods, against the mean rate
        k = int(np.argmax(np.abs(drift)))
        if abs(drift[k]) >= 0.5:
            why = f"frame {k} is stamped {1000 * drift[k] * mean:+.1f} ms from {k} periods at the mean rate"
    return f"frames dropped or a variable frame rate: {why}; rb2v counts frame k at k / fps" if why else ""


_FIRST_FRAME = re.compile(r"Parsed_(a?)showinfo_\d+ @ [^\]]*\] n:\s*0 [^\n]*?pts_time:\s*(-?[\d.]+)")


def _first_frame_times(path: Path, has_audio: bool) -> tuple[float, float]:
    """The first decoded video frame's and audio sample's timestamps, seconds, as the file stamps them.

    Decoded, not read from packets: a decoder drops an encoder's priming samples and an edit list's
    skipped frames, and the frames a decode yields are what frame and sample indices count. One
    frame of each stream is decoded; ``-copyts`` keeps the file's own timestamps.
    """
    args = ["-v", "info", "-copyts", "-i", str(path), "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo"]
    if has_audio:
        args += ["-map", "0:a:0", "-frames:a", "1", "-af", "ashowinfo"]
    times: dict[str, float] = {}
    for _ in range(4):  # ffmpeg now and then ends before one stream's frame is logged (~1 run in 100)
        proc = ffmpeg.run(args + ["-f", "null", "-"], what=f"{path}: first frames")
        times = {kind: float(t) for kind, t in _FIRST_FRAME.findall(proc.stderr.decode("utf-8", "replace"))}
        if "" in times and ("a" in times or not has_audio):
            return times[""], times.get("a", times[""])
    if "" not in times:
        raise Rb2vError(f"{path}: no video frame could be decoded")
    return times[""], times[""]  # a sound that decodes to nothing: taken to start with the pictures


# ---------------------------------------------------------------- GoPro chapters
_GOPRO_NEW = re.compile(r"^(G[XHL])(\d{2})(\d{4})\.mp4$", re.IGNORECASE)  # GX01xxxx.MP4 (HERO6+)
_GOPRO_OLD = re.compile(r"^(GOPR|GP(\d{2}))(\d{4})\.mp4$", re.IGNORECASE)  # GOPRxxxx + GP01xxxx (HERO5-)


def chapter_key(path: Path) -> tuple[str, int] | None:
    """(recording id, chapter number) for GoPro file names, else None."""
    m = _GOPRO_NEW.match(path.name)
    if m:
        return f"{m.group(1).upper()}{m.group(3)}", int(m.group(2))
    m = _GOPRO_OLD.match(path.name)
    if m:
        return f"GOPRO{m.group(3)}", (int(m.group(2)) if m.group(2) else 0)
    return None


def group_chapters(paths: Iterable[str | os.PathLike]) -> list[list[Path]]:
    """Group video files into recordings: GoPro chapters of one recording, in order.

    A recording with a gap in its chapter numbers is an error (a chapter is missing).
    Files with other names are recordings of their own.
    """
    groups: dict[str, list[tuple[int, Path]]] = {}
    singles: list[list[Path]] = []
    for p in sorted(set(map(Path, paths))):  # a file named twice is one chapter
        key = chapter_key(p)
        if key is None:
            singles.append([p])
        else:
            groups.setdefault(key[0], []).append((key[1], p))
    out = []
    for rec, chapters in sorted(groups.items()):
        chapters.sort()
        nums = [c for c, _ in chapters]
        twice = [(a, b) for (n, a), (m, b) in zip(chapters, chapters[1:]) if n == m]
        if twice:  # GX01…MP4 and gx01…mp4, or copies in two folders
            a, b = twice[0]
            raise Rb2vError(f"{b}: recording {rec} has chapter {chapter_key(b)[1]} twice (also {a})")
        first = 0 if nums[0] == 0 else 1
        expected = list(range(first, first + len(nums)))
        if nums != expected:
            missing = sorted(set(range(first, max(nums) + 1)) - set(nums))
            raise Rb2vError(f"{chapters[0][1].parent}: recording {rec} is missing chapter(s) {missing}")
        out.append([p for _, p in chapters])
    return out + singles


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """One camera's recording: one file, or the ordered chapter files of a GoPro recording."""

    paths: tuple[Path, ...]
    chapters: tuple[VideoInfo, ...]

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def fps(self) -> Fraction:
        return self.chapters[0].fps

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.chapters)

    @property
    def width(self) -> int:
        return self.chapters[0].width

    @property
    def height(self) -> int:
        return self.chapters[0].height

    @property
    def duration(self) -> float:
        return sum(c.duration for c in self.chapters)

    @property
    def has_audio(self) -> bool:
        return all(c.has_audio for c in self.chapters)

    @property
    def name(self) -> str:
        return self.paths[0].name if len(self.paths) == 1 else f"{self.paths[0].name}+{len(self.paths) - 1}"


def open_source(paths: str | os.PathLike | Sequence[str | os.PathLike], constant_rate: bool = True) -> VideoSource:
    """Probe a file or a list of chapter files (in order) as one stream (``constant_rate``: as `probe`'s)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = tuple(Path(p) for p in paths)
    if not paths:
        raise Rb2vError("no video files given")
    infos = tuple(probe(p, constant_rate) for p in paths)
    for info in infos[1:]:
        if info.fps != infos[0].fps or (info.width, info.height) != (infos[0].width, infos[0].height):
            raise Rb2vError(f"{info.path}: chapter differs from {infos[0].path.name} in frame rate or size")
    return VideoSource(paths, infos)


def _as_source(src) -> VideoSource:
    return src if isinstance(src, VideoSource) else open_source(src)


# ---------------------------------------------------------------- decoding
SEEK_LEAD = 16  # frames a seek aims before its target (B-frame and open-GOP reordering is shorter)


def decode_pipe(
    info: VideoInfo,
    start: int,
    count: int,
    chunk: int = 16,
    vf: str | None = None,
    size: tuple[int, int] | None = None,
    channels: int = 3,
) -> Iterator[np.ndarray]:
    """Decode ``count`` output frames of one file from frame ``start``, in chunks of uint8 arrays.

    ``vf`` puts an ffmpeg filter in front (crop, select, format); ``size`` (w, h) and
    ``channels`` (3 RGB, 1 grey) then describe what the filter hands back.
    """
    width, height = size or (info.width, info.height)
    fps = float(info.fps)
    # Input seeking decodes from the sync sample at or before the seek time. An open-GOP stream
    # (x265's default) counts CRA pictures as sync samples, and the pictures shown just before a CRA
    # cannot be decoded from it: a seek aimed at one of those gave a later frame. So the seek aims
    # SEEK_LEAD frames early (more than any reordering) and a select keeps the frames from the
    # target's timestamp on, half a frame early. Timestamps count from the seek point, and the
    # seek from the file's start, which is before the first frame where the sound starts first.
    lead = min(start, SEEK_LEAD)
    seek_s = max(0.0, info.video_start + (start - lead - 0.5) / fps) if start > lead else 0.0
    filters = [f"select=gte(t\\,{info.video_start + (start - 0.5) / fps - seek_s:.6f})"] if start > 0 else []
    filters += [vf] if vf else []
    args = ffmpeg.graph.input(str(info.path), **({"ss": f"{seek_s:.6f}"} if seek_s > 0 else {}))["v:0"].output(
        "-",
        f="rawvideo",
        pix_fmt="gray" if channels == 1 else "rgb24",
        **{"frames:v": count},
        **({"vf": ",".join(filters)} if filters else {}),
        **ffmpeg.passthrough(),
    )
    proc = ffmpeg.popen(args, stdout=subprocess.PIPE)
    frame_bytes = width * height * channels
    shape = (height, width) if channels == 1 else (height, width, channels)
    got = 0
    try:
        while got < count:
            n = min(chunk, count - got)
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
    if got < count:
        cause = ffmpeg.not_the_input(err, proc.returncode)
        if cause:  # told as a corrupt video, a user re-copied footage that was whole
            raise Rb2vError(f"{info.path}: decoding stopped after {start + got} of {start + count} frames: {cause}")
        why = ffmpeg.last_error_line(err) if err.strip() else "stream ended early"
        raise Rb2vError(
            f"{info.path}: truncated or corrupt video: decoded {start + got} of {start + count} frames ({why})"
        )


def iter_frames(source, start: int = 0, count: int | None = None, chunk: int = 16) -> Iterator[np.ndarray]:
    """Yield ``(n,H,W,3)`` uint8 RGB chunks of frames ``start .. start+count-1`` of a stream.

    ``source`` is a path, a list of chapter paths or a ``VideoSource``.
    """
    src = _as_source(source)
    total = src.frames
    if count is None:
        count = total - start
    if start < 0 or count < 0 or start + count > total:
        raise Rb2vError(f"{src.path}: frames {start}..{start + count - 1} requested, stream has {total}")
    offset = 0
    for info in src.chapters:
        lo, hi = max(start, offset), min(start + count, offset + info.frames)
        if lo < hi:
            yield from decode_pipe(info, lo - offset, hi - lo, chunk)
        offset += info.frames


def read_frames(source, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames ``start .. start+count-1`` as one ``(n,H,W,3)`` array (for short ranges)."""
    chunks = list(iter_frames(source, start, count, chunk=64))
    if not chunks:
        src = _as_source(source)
        return np.empty((0, src.height, src.width, 3), np.uint8)
    return np.concatenate(chunks)


def read_audio(source, rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """The audio track as float32 samples in [-1,1] (``(n,)`` mono or ``(n,ch)``) and its rate; sample n
    sounds n / rate after the first video frame, however the files stagger their streams' starts.

    Each chapter's sound is placed where its own first frame falls in the recording (its frames
    before it, at the frame rate), not after the previous chapter's sound: a chapter whose sound
    starts before its pictures, or an encoder's padding at a chapter's end, would otherwise move
    every later chapter's sound against its pictures. Silence fills where no chapter has sound.
    """
    src = _as_source(source)
    if not src.has_audio:
        raise Rb2vError(f"{src.path}: no audio track")
    rate = rate or src.chapters[0].audio_rate
    placed, frames_before = [], 0
    for info in src.chapters:
        args = ["-v", "error", "-i", str(info.path), "-map", "0:a:0", "-ar", str(rate)]
        if mono:
            args += ["-ac", "1"]
        proc = ffmpeg.run(args + ["-f", "f32le", "-"], what=f"{info.path}: audio")
        samples = np.frombuffer(proc.stdout, np.float32)
        samples = samples if mono else samples.reshape(-1, info.audio_channels or 2)
        first = int(round((frames_before / float(info.fps) + info.audio_start) * rate))
        placed.append((max(first, 0), samples[max(0, -first) :]))  # what sounds before the first frame is cut
        frames_before += info.frames
    track = np.zeros((max(at + len(x) for at, x in placed), *placed[0][1].shape[1:]), np.float32)
    for at, samples in placed:
        track[at : at + len(samples)] = samples
    return track, rate


# ---------------------------------------------------------------- encoding
def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    pcm = np.clip(np.asarray(samples, np.float64), -1, 1)
    pcm = (pcm * 32767).round().astype("<i2")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


class VideoWriter:
    """Encode RGB frames to a video file, written atomically (temp name, then rename).

    ``lossless=True`` stores RGB exactly (FFV1 for .mkv/.avi, x264 RGB qp 0 for .mp4);
    otherwise H.264 yuv420p at ``crf`` — what a GoPro writes, near-lossless at crf <= 14 — or at a
    fixed ``bitrate`` (bits/s) when given; ``codec="hevc"`` encodes H.265 (x265) the same ways.
    ``audio`` is ``(samples, rate)``, its first sample stamped ``audio_start`` seconds after the first
    frame (negative: before it); ``timecode`` (``HH:MM:SS:FF``) writes a timecode track; ``rotation``
    (degrees counter-clockwise, ffmpeg >= 6.1) a display matrix: players turn the frames written by that
    much, and ``probe`` / ``decode_pipe`` read them turned.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps,
        width: int,
        height: int,
        *,
        crf: int = 12,
        preset: str = "veryfast",
        lossless: bool = False,
        audio: tuple[np.ndarray, int] | None = None,
        timecode: str | None = None,
        creation_time: str | None = None,
        audio_start: float = 0.0,
        gop: int | None = None,
        bitrate: int | None = None,
        codec: str = "h264",
        rotation: int = 0,
    ):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = parse_fps(str(fps)) if not isinstance(fps, Fraction) else fps
        if codec not in ("h264", "hevc"):
            raise Rb2vError(f"{self.path}: codec must be h264 or hevc, got {codec!r}")
        if rotation % 90:
            raise Rb2vError(f"{self.path}: a display rotation must be a quarter turn, got {rotation} degrees")
        if not lossless and (self.width % 2 or self.height % 2):
            raise Rb2vError(f"{self.path}: H.264 needs an even frame size, got {self.width}x{self.height}")
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._wav = None
        args = [
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{self.width}x{self.height}",
            "-r",
            f"{self.fps.numerator}/{self.fps.denominator}",
        ]
        if rotation % 360:  # kept on the stream as side data, not applied to the pixels
            args += ["-noautorotate", "-display_rotation", str(rotation)]
        args += ["-i", "-"]
        if audio is not None:
            fd, wav = tempfile.mkstemp(suffix=".wav", dir=self.path.parent, prefix=".audio.")
            os.close(fd)
            self._wav = Path(wav)
            _write_wav(self._wav, audio[0], int(audio[1]))
            args += (["-itsoffset", f"{audio_start:.6f}"] if audio_start > 0 else []) + ["-i", str(self._wav)]
        args += ["-map", "0:v:0"] + (["-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"] if audio is not None else [])
        ext = self.path.suffix.lower()
        if lossless and ext in (".mkv", ".avi", ".nut"):
            args += ["-c:v", "ffv1", "-pix_fmt", "bgr0"]
        elif lossless:
            args += ["-c:v", "libx264rgb", "-qp", "0", "-preset", preset, "-pix_fmt", "rgb24"]
        else:
            # a camera's fixed bitrate (bits/s), as a GoPro records, instead of constant quality
            b = str(int(bitrate)) if bitrate else ""
            rate = ["-b:v", b, "-maxrate", b, "-bufsize", b] if bitrate else ["-crf", str(crf)]
            if codec == "hevc":  # what a GoPro records in its high-rate modes, tagged hvc1 as it tags it
                args += ["-c:v", "libx265", "-preset", preset, "-pix_fmt", "yuv420p", "-tag:v", "hvc1", *rate]
                # one frame thread, no thread pool: a seeded simulation gives the same take twice
                args += ["-x265-params", "log-level=error:frame-threads=1:pools=none"]
            else:
                args += ["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", *rate]
                # one x264 thread at a fixed bitrate: with frame threads the VBV's bytes depend on how the
                # frames arrived in time, and a seeded simulation must give the same take twice
                args += ["-threads", "1"] if bitrate else []
        if audio is not None and audio_start < 0:
            # a sound that starts first delays the pictures in the file's timestamps; on a 90 kHz
            # clock, as the pictures' own 1/fps clock would round the delay to whole frames
            args += ["-vf", f"settb=1/90000,setpts=PTS+{-audio_start:.6f}/TB", "-enc_time_base:v", "1/90000"]
            args += ["-video_track_timescale", "90000"] if ext in (".mp4", ".mov") else []
        if gop:
            args += ["-g", str(gop)]
        if timecode:
            args += ["-timecode", timecode]
        if creation_time:
            args += ["-metadata", f"creation_time={creation_time}"]
        args.append(str(self._tmp))
        self._proc = ffmpeg.popen(args, stdin=subprocess.PIPE)
        self.frames_written = 0

    def write(self, frames: np.ndarray) -> None:
        arr = np.asarray(frames)
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr.astype(np.float32) * 255), 0, 255).astype(np.uint8)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.shape[1:] != (self.height, self.width, 3):
            raise Rb2vError(f"{self.path}: frame shape {arr.shape[1:]} != ({self.height}, {self.width}, 3)")
        try:
            self._proc.stdin.write(np.ascontiguousarray(arr).tobytes())
        except BrokenPipeError:
            err = self._proc.stderr.read().decode("utf-8", "replace")
            raise Rb2vError(f"{self.path}: encoder failed: {ffmpeg.last_error_line(err)}") from None
        self.frames_written += len(arr)

    def close(self) -> None:
        self._finish(ok=True)

    def _finish(self, ok: bool) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            ok = False
        if not ok:
            proc.kill()
        err = proc.stderr.read().decode("utf-8", "replace")
        rc = proc.wait()
        if self._wav is not None:
            self._wav.unlink(missing_ok=True)
        if ok and rc == 0 and self.frames_written > 0:
            self._ctx.__exit__(None, None, None)
            return
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        if ok:
            why = ffmpeg.last_error_line(err) if rc else "no frames written"
            raise Rb2vError(f"{self.path}: encoding failed: {why}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._finish(ok=exc_type is None)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps, **kwargs) -> Path:
    """Encode an iterable of frames (or chunks) to ``path``; see ``VideoWriter``."""
    it = iter(frames)
    first = np.asarray(next(it))
    h, w = first.shape[-3:-1]
    with VideoWriter(path, fps, w, h, **kwargs) as vw:
        vw.write(first)
        for f in it:
            vw.write(f)
    return Path(path)
