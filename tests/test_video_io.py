"""Video I/O: probe, streaming decode, seeking, chapters, audio, encoding, bad files."""

from __future__ import annotations

import functools
import os
import shutil
from fractions import Fraction

import cv2
import numpy as np
import pytest

from rb2v import ffmpeg
from rb2v.errors import Rb2vError
from rb2v.io.video import (
    VideoWriter,
    group_chapters,
    iter_frames,
    open_source,
    parse_fps,
    probe,
    read_audio,
    read_frames,
    write_video,
)


def moving_frames(n: int, h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """A real photo panning across the frame: H.264 handles it like real footage."""
    import skimage.data

    img = skimage.data.astronaut()
    return np.stack([img[100 + i : 100 + i + h, 150 + 2 * i : 150 + 2 * i + w] for i in range(n)])


def test_fixed_bitrate_encoding_does_not_depend_on_when_frames_arrive(tmp_path):
    """A seeded simulation writes GoPro-like fixed-bitrate takes: the same frames must give the
    same bytes, however fast the frames reach the encoder (x264's frame threads made its VBV
    depend on that: four encodes of these frames gave four different files)."""
    import hashlib
    import time

    base = (np.random.default_rng(0).random((240, 400, 3)) * 255).astype(np.uint8)
    frames = [np.roll(base, 3 * i, axis=1)[:, :320] for i in range(60)]
    digests = set()
    for run, pause in enumerate((0, 0.005, 0, 0.005)):
        path = tmp_path / f"{run}.mp4"
        with VideoWriter(path, 100, 320, 240, bitrate=4_000_000) as vw:
            for f in frames:
                vw.write(f)
                time.sleep(pause)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_parse_fps_exact_ntsc_rates():
    assert parse_fps("25") == 25
    assert parse_fps("29.97") == Fraction(30000, 1001)
    assert parse_fps("119.88") == Fraction(120000, 1001)
    assert parse_fps("23.98") == Fraction(24000, 1001)
    assert parse_fps("30000/1001") == Fraction(30000, 1001)


def test_lossless_round_trip_and_probe(tmp_path):
    frames = moving_frames(20)
    path = write_video(tmp_path / "clip with space.mkv", frames, "30000/1001", lossless=True)
    info = probe(path)
    assert (info.frames, info.width, info.height) == (20, 96, 64)
    assert info.fps == Fraction(30000, 1001)
    assert not info.has_audio
    np.testing.assert_array_equal(read_frames(path), frames)


def test_probe_reads_a_frame_size_under_ten_pixels(tmp_path):
    """ffmpeg prints ``8x6`` beside the codec tag ``0x31637661``: the size is read, not the tag."""
    frames = moving_frames(5, h=6, w=8)
    path = write_video(tmp_path / "tiny.mkv", frames, 25, lossless=True)
    info = probe(path)
    assert (info.width, info.height, info.frames) == (8, 6, 5)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_round_trip_is_near_lossless(tmp_path, codec):
    frames = moving_frames(40)
    path = write_video(tmp_path / "a.mp4", frames, 25, crf=12, gop=4, codec=codec)
    assert probe(path).codec == codec
    decoded = read_frames(path)
    assert decoded.shape == frames.shape
    psnr = 10 * np.log10(255.0**2 / np.mean((decoded.astype(float) - frames) ** 2))
    assert psnr > 35  # yuv420p halves chroma resolution: the limit on a small, sharp crop
    # seeks: x265's open GOPs make every 4th picture a sync sample whose leading pictures it cannot decode
    for start in (22, 23, 30, 35):
        np.testing.assert_array_equal(read_frames(path, start, 3), decoded[start : start + 3])


def test_seek_returns_exact_frames(tmp_path):
    frames = moving_frames(40)
    path = write_video(tmp_path / "s.mkv", frames, 100, lossless=True, gop=8)
    for start, count in [(0, 3), (7, 5), (13, 1), (33, 7)]:
        np.testing.assert_array_equal(read_frames(path, start, count), frames[start : start + count])
    chunks = list(iter_frames(path, 5, 30, chunk=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), frames[5:35])
    with pytest.raises(Rb2vError, match="requested"):
        read_frames(path, 35, 10)


def test_grey_frames_kept_for_the_next_call_are_the_frames_and_a_rewritten_file_is_decoded_again(tmp_path, monkeypatch):
    """``grey_selected`` keeps what it decoded for a take's next homography estimate: frames asked again,
    across a chapter boundary, are the decoded ones without ffmpeg; a file written again is decoded again,
    and nothing is kept once the take is aligned (``forget``)."""
    from rb2v.align import decode

    frames = moving_frames(30)
    write_video(tmp_path / "GX011234.MP4", frames[:18], 25, lossless=True)
    write_video(tmp_path / "GX021234.MP4", frames[18:], 25, lossless=True)
    src = open_source(group_chapters(tmp_path.glob("*.MP4"))[0])
    grey = np.array([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(int)

    def read(indices):
        return dict(decode.grey_selected(src, iter(indices)))

    first = read([3, 16, 17, 18, 25])
    assert list(first) == [3, 16, 17, 18, 25]
    assert all(np.abs(first[i].astype(int) - grey[i]).max() <= 1 for i in first)  # ffmpeg's own grey
    calls = []
    real = decode.decode_pipe
    monkeypatch.setattr(decode, "decode_pipe", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    again = read([25, 17, 18, 19])
    assert list(again) == [17, 18, 19, 25] and calls == [(1, 1)]  # only frame 19 (chapter 2's second) decoded
    assert all(np.array_equal(again[i], first[i]) for i in (17, 18, 25))
    fresh = read([19])
    assert np.array_equal(fresh[19], again[19]) and len(calls) == 1
    write_video(tmp_path / "GX021234.MP4", frames[18:][::-1], 25, lossless=True)  # the same name, other pictures
    os.utime(tmp_path / "GX021234.MP4", ns=(1, 1))
    rewritten = read([19, 3])
    assert len(calls) == 2 and np.abs(rewritten[19].astype(int) - grey[28]).max() <= 1
    assert np.array_equal(rewritten[3], first[3])
    decode.forget()  # a take aligned: its frames go
    assert np.array_equal(read([3])[3], first[3]) and len(calls) == 3
    decode.forget()
    monkeypatch.setattr(decode, "DECODED_KEPT_BYTES", 3 * 96 * 64)  # room for 3 frames: 4 asked are not kept
    read([1, 2, 4, 5])
    read([1, 2, 4, 5])
    assert len(calls) == 5 and not decode._decoded


def test_gopro_chapters_are_one_stream(tmp_path):
    frames = moving_frames(30)
    rate = 48000
    tone = (0.3 * np.sin(np.arange(int(1.2 * rate)) * 2 * np.pi * 440 / rate)).astype(np.float32)
    # chapter 1: frames 0..17, chapter 2: 18..29 (at 25 fps: 0.72 s and 0.48 s of audio)
    write_video(tmp_path / "GX011234.MP4", frames[:18], 25, lossless=True, audio=(tone[:34560], rate))
    write_video(tmp_path / "GX021234.MP4", frames[18:], 25, lossless=True, audio=(tone[34560:57600], rate))
    write_video(tmp_path / "GX015678.MP4", frames[:5], 100, lossless=True)
    groups = group_chapters(tmp_path.glob("*.MP4"))
    assert [[p.name for p in g] for g in groups] == [["GX011234.MP4", "GX021234.MP4"], ["GX015678.MP4"]]
    src = open_source(groups[0])
    assert src.frames == 30 and src.fps == 25
    np.testing.assert_array_equal(read_frames(src, 15, 6), frames[15:21])  # across the chapter boundary
    audio, r = read_audio(src)
    assert r == rate and abs(len(audio) - 57600) < 2048  # AAC priming/padding per chapter
    (tmp_path / "GX041234.MP4").write_bytes((tmp_path / "GX021234.MP4").read_bytes())
    with pytest.raises(Rb2vError, match=r"missing chapter\(s\) \[3\]"):
        group_chapters(tmp_path.glob("*.MP4"))
    (tmp_path / "GX041234.MP4").unlink()
    # one file named twice is one chapter; a chapter number held by two files was "missing chapter(s) []"
    assert group_chapters([tmp_path / "GX011234.MP4"] * 2) == [[tmp_path / "GX011234.MP4"]]
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "GX021234.MP4", tmp_path / "copy")
    with pytest.raises(Rb2vError, match=r"GX021234.MP4: recording GX1234 has chapter 2 twice \(also .*GX021234.MP4\)"):
        group_chapters([*tmp_path.glob("*.MP4"), tmp_path / "copy" / "GX021234.MP4"])


def test_audio_round_trip(tmp_path):
    rate = 48000
    t = np.arange(rate) / rate
    sig = (0.4 * np.sin(2 * np.pi * 523.25 * t)).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", moving_frames(25), 25, audio=(sig, rate))
    info = probe(path)
    assert info.has_audio and info.audio_rate == rate
    audio, _ = read_audio(path)
    # AAC adds a priming delay; find it and compare the aligned signals.
    lag = int(np.argmax(np.correlate(audio[:4000], sig[:2000], mode="valid")))
    seg = audio[lag : lag + 40000]
    assert np.corrcoef(seg, sig[: len(seg)])[0, 1] > 0.99


@pytest.mark.parametrize("audio_start", [-0.1, 0.0371])
def test_streams_that_start_apart_are_read_from_the_first_frame(tmp_path, audio_start):
    """A file whose sound starts before its pictures (or after): frame k is still the k-th picture
    when seeking, and audio sample n sounds n / rate after the first frame."""
    rate, frames = 48000, moving_frames(40)
    track = np.zeros(rate, np.float32)
    track[rate // 2 : rate // 2 + 96] = 0.8  # a click half a second into the track
    path = write_video(
        tmp_path / "a.mp4", frames, 100, lossless=True, gop=8, audio=(track, rate), audio_start=audio_start
    )
    info = probe(path)
    assert info.video_start == pytest.approx(max(-audio_start, 0.0), abs=1e-4)
    for start in (3, 17, 31):  # seeking lands on the same picture as decoding from the start
        np.testing.assert_array_equal(read_frames(path, start, 2), frames[start : start + 2])
    audio, _ = read_audio(path)
    click = np.flatnonzero(np.abs(audio) > 0.3)[0] / rate
    assert click == pytest.approx(0.5 + audio_start, abs=2e-4)


@pytest.mark.parametrize("turn, k", [(90, 1), (-90, -1), (180, 2)])
def test_a_display_rotation_is_decoded_as_shown(tmp_path, turn, k):
    """A phone's portrait video is coded landscape with a display matrix: frames come upright, at the
    size shown, seeks included (read with the coded size, a quarter turn gave scrambled frames)."""
    frames = moving_frames(20)
    plain = write_video(tmp_path / "plain.mp4", frames, 25, lossless=True, gop=4)
    turned = tmp_path / "turned.mp4"
    try:  # ffmpeg >= 6.1; older ones write a rotation as the stream's "rotate" tag (clockwise)
        ffmpeg.run(["-v", "error", "-display_rotation", str(turn), "-i", str(plain), "-c", "copy", str(turned)])
    except Rb2vError:
        ffmpeg.run(
            ["-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={-turn % 360}", str(turned)]
        )
    info = probe(turned)
    upright = np.rot90(frames, k, axes=(1, 2))  # ffmpeg's rotation is counter-clockwise, as np.rot90's
    assert info.rotation % 360 == turn % 360 and (info.height, info.width) == upright.shape[1:3]
    np.testing.assert_array_equal(read_frames(turned), upright)
    np.testing.assert_array_equal(read_frames(turned, 11, 3), upright[11:14])


def test_timecode_is_read(tmp_path):
    path = write_video(tmp_path / "tc.mp4", moving_frames(5), 25, timecode="10:00:01:05")
    info = probe(path)
    assert info.timecode == "10:00:01:05"
    assert info.timecode_s == pytest.approx(36001.2)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"this is not a video at all" * 40, "not a video|unreadable|corrupt"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    bad = tmp_path / "bad.MP4"
    bad.write_bytes(content)
    with pytest.raises(Rb2vError, match=message) as e:
        probe(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_an_image_is_not_taken_for_a_one_frame_video(tmp_path):
    """A photo was probed as a video of 1 frame at 25 fps, exit 0."""
    import cv2

    for name in ("still.png", "still.jpg"):
        cv2.imwrite(str(tmp_path / name), np.full((48, 64, 3), 128, np.uint8))
        with pytest.raises(Rb2vError, match=rf"{name}: an image \((png|jpeg)\), not a video$"):
            probe(tmp_path / name)


def test_truncated_video_is_detected(tmp_path):
    path = write_video(tmp_path / "t.mp4", moving_frames(30), 25)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom (at the end) is lost
    with pytest.raises(Rb2vError, match="truncated|corrupt|unreadable"):
        read_frames(cut)
    with pytest.raises(Rb2vError, match="not found"):
        probe(tmp_path / "missing.mp4")


@pytest.mark.parametrize("kept", [0.5, 0.7, 0.9])
def test_a_cut_file_whose_index_is_at_the_front_is_refused(tmp_path, kept):
    """With the index at the front (``-movflags +faststart``), a cut file still opened: its readable
    frames were counted as the whole stream (81 of 240 frames "in 2.000 s") and synth-reds built them."""
    path = write_video(tmp_path / "t.mp4", moving_frames(60), 30)
    front = tmp_path / "front.mp4"
    ffmpeg.run(["-v", "error", "-i", str(path), "-c", "copy", "-movflags", "+faststart", str(front)])
    assert probe(front).frames == 60
    data = front.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(Rb2vError, match=r"cut.mp4: corrupt or truncated video \(the file ends before the frames"):
        probe(cut)


def test_an_ffmpeg_starved_of_memory_does_not_call_the_video_corrupt(tmp_path, monkeypatch):
    """align on a loaded machine said "truncated or corrupt video: decoded 9 of 153 frames (Error opening
    output files: Cannot allocate memory)" of a whole file. Starved here by a 64 MB address-space limit,
    ffmpeg dies by SIGSEGV; then an ffmpeg that prints the words it printed that day."""
    import resource
    import subprocess

    path = write_video(tmp_path / "whole.mp4", moving_frames(30, 200, 300), 25)
    source = open_source(path)
    ffmpeg.passthrough()  # the version it asks ffmpeg for is cached before ffmpeg is starved
    starved = functools.partial(
        subprocess.Popen, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (64 << 20, 64 << 20))
    )
    monkeypatch.setattr(ffmpeg.subprocess, "Popen", starved)
    rerun = ": the input may well be whole; re-run with resources to spare (e.g. fewer --workers)"
    with pytest.raises(Rb2vError) as failed:
        read_frames(source, 0, 30)
    assert str(failed.value) == (
        f"{path}: decoding stopped after 0 of 30 frames: ffmpeg was killed by SIGSEGV (out of memory, or a crash)"
        + rerun
    )
    with pytest.raises(Rb2vError) as failed:  # probing (no decoding) dies too
        probe(path)
    assert str(failed.value) == f"{path}: ffmpeg was killed by SIGSEGV (out of memory, or a crash)" + rerun
    monkeypatch.undo()

    words = tmp_path / "ffmpeg-out-of-memory"
    words.write_text("#!/bin/sh\necho 'Error opening output files: Cannot allocate memory' >&2\nexit 1\n")
    words.chmod(0o755)
    monkeypatch.setattr(ffmpeg, "ffmpeg_exe", lambda: str(words))
    with pytest.raises(Rb2vError) as failed:
        read_frames(source, 0, 30)
    assert str(failed.value) == (
        f"{path}: decoding stopped after 0 of 30 frames: ffmpeg ran short of the machine's resources (Error "
        "opening output files: Cannot allocate memory)" + rerun
    )
    monkeypatch.undo()
    assert read_frames(source, 0, 30).shape == (30, 200, 300, 3)  # the file was whole


def test_aborted_writer_leaves_nothing(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError), VideoWriter(out, 25, 96, 64) as vw:
        vw.write(moving_frames(3))
        raise RuntimeError("crash mid-encode")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Rb2vError, match="even frame size"):
        VideoWriter(tmp_path / "odd.mp4", 25, 95, 64)


def test_missing_ffmpeg_is_a_clear_error(monkeypatch):
    ffmpeg.ffmpeg_exe.cache_clear()
    monkeypatch.setenv("RB2V_FFMPEG", "/nonexistent/ffmpeg")
    try:
        with pytest.raises(Rb2vError, match="ffmpeg not found.*imageio-ffmpeg"):
            ffmpeg.ffmpeg_exe()
    finally:
        ffmpeg.ffmpeg_exe.cache_clear()
        monkeypatch.delenv("RB2V_FFMPEG")
    assert os.path.exists(ffmpeg.ffmpeg_exe())
