"""rb2v align: discovery, pairing by frame rate and by name, and every bad-input case.

Videos are tiny real H.264 files written with ``write_video``; no alignment is run here
(that is in test_align_sim.py), so these checks are fast.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rb2v import ffmpeg
from rb2v.align.discover import discover, pair_streams
from rb2v.cli import main
from rb2v.errors import Rb2vError
from rb2v.io.video import write_video


def _video(path: Path, fps, frames: int, size: int = 32) -> Path:
    rng = np.random.default_rng(frames)
    data = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    return write_video(path, data, fps, preset="ultrafast")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A capture tree with good takes (PAL, NTSC, chaptered, named) and one of each bad case."""
    root = tmp_path_factory.mktemp("raw")
    take = lambda *parts: root.joinpath(*parts)  # noqa: E731
    # PAL pair; GoPro names whose numbers say nothing about the roles; sharp split in two chapters
    _video(take("street", "s1", "pal", "GX010007.MP4"), 25, 5)
    _video(take("street", "s1", "pal", "GX010003.MP4"), 100, 12)
    _video(take("street", "s1", "pal", "GX020003.MP4"), 100, 8)
    # NTSC pair 29.97 / 119.88
    _video(take("street", "s1", "ntsc", "GX010100.MP4"), Fraction(30000, 1001), 4)
    _video(take("street", "s1", "ntsc", "GX010101.MP4"), Fraction(120000, 1001), 16)
    # named streams, with a take.toml naming a calibration take
    _video(take("face", "s2", "named", "blur.mp4"), 25, 4)
    _video(take("face", "s2", "named", "sharp.mp4"), 100, 16)
    take("calibration", "face-rig").mkdir(parents=True)  # holds no recordings: fails on its own
    # a take naming it was aligned without its calibration, unsaid
    _video(take("bad", "s3", "calibration_failed", "blur.mp4"), 25, 4)
    _video(take("bad", "s3", "calibration_failed", "sharp.mp4"), 100, 16)
    take("bad", "s3", "calibration_failed", "take.toml").write_text('calibration = "face-rig"\n')
    # a misspelt key dropped the calibration unsaid; a file not in UTF-8 stopped the whole align run
    for bad, text in (("toml_unknown_key", b'calibraton = "face-rig"\n'), ("toml_not_utf8", b"# caf\xe9\n")):
        _video(take("bad", "s3", bad, "blur.mp4"), 25, 4)
        _video(take("bad", "s3", bad, "sharp.mp4"), 100, 16)
        take("bad", "s3", bad, "take.toml").write_bytes(text)
    # a take.toml naming a calibration take that is not there (a typo silently dropped the lens model)
    _video(take("bad", "s3", "unknown_calibration", "blur.mp4"), 25, 4)
    _video(take("bad", "s3", "unknown_calibration", "sharp.mp4"), 100, 16)
    take("bad", "s3", "unknown_calibration", "take.toml").write_text('calibration = "face-rgi"\n')
    # bad: one camera, three cameras, wrong ratio, corrupt, empty, names contradicting rates, missing chapter
    _video(take("bad", "s3", "one_camera", "GX010001.MP4"), 25, 4)
    for i, fps in enumerate((25, 100, 100)):
        _video(take("bad", "s3", "three_cameras", f"GX01000{i}.MP4"), fps, 4)
    _video(take("bad", "s3", "ratio_two", "GX010001.MP4"), 25, 4)
    _video(take("bad", "s3", "ratio_two", "GX010002.MP4"), 50, 8)
    _video(take("bad", "s3", "corrupt", "GX010001.MP4"), 25, 4)
    take("bad", "s3", "corrupt", "GX010002.MP4").write_bytes(np.random.default_rng(0).bytes(5000))
    # a camera's file linked from a card no longer mounted: was reported as "only one camera stream"
    _video(take("bad", "s3", "dangling_link", "GX011000.MP4"), 25, 4)
    take("bad", "s3", "dangling_link", "GX011001.MP4").symlink_to("/nonexistent/GX011001.MP4")
    _video(take("bad", "s3", "empty", "GX010001.MP4"), 25, 4)
    take("bad", "s3", "empty", "GX010002.MP4").write_bytes(b"")
    _video(take("bad", "s3", "swapped_names", "blur.mp4"), 100, 8)
    _video(take("bad", "s3", "swapped_names", "sharp.mp4"), 25, 2)
    _video(take("bad", "s3", "missing_chapter", "GX010001.MP4"), 25, 4)
    _video(take("bad", "s3", "missing_chapter", "GX010002.MP4"), 100, 8)
    _video(take("bad", "s3", "missing_chapter", "GX030002.MP4"), 100, 8)
    # a sharp camera that dropped frames 8 and 9 of 18: its file stamps frame 8 where frame 10 belongs
    _video(take("bad", "s3", "dropped_frames", "GX010001.MP4"), 25, 4)
    ffmpeg.run(
        ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=100", "-frames:v", "16"]
        + ["-vf", "setpts=(N+2*gte(N\\,8))/(100*TB)", "-fps_mode", "passthrough", "-c:v", "libx264"]
        + ["-preset", "ultrafast", str(take("bad", "s3", "dropped_frames", "GX010002.MP4"))]
    )
    return root


def test_pairs_by_frame_rate_joins_chapters(raw):
    blur, sharp = pair_streams(raw / "street" / "s1" / "pal")
    assert blur.fps == 25 and sharp.fps == 100
    assert [p.name for p in blur.paths] == ["GX010007.MP4"]
    assert [p.name for p in sharp.paths] == ["GX010003.MP4", "GX020003.MP4"]
    assert sharp.frames == 20


def test_pairs_ntsc_rates(raw):
    blur, sharp = pair_streams(raw / "street" / "s1" / "ntsc")
    assert blur.fps == Fraction(30000, 1001) and sharp.fps == Fraction(120000, 1001)
    assert blur.path.name == "GX010100.MP4"


def test_pairs_by_name(raw):
    blur, sharp = pair_streams(raw / "face" / "s2" / "named")
    assert blur.path.name == "blur.mp4" and sharp.path.name == "sharp.mp4"


@pytest.mark.parametrize(
    "take, message",
    [
        ("one_camera", "only one camera stream"),
        ("three_cameras", "3 camera streams"),
        ("ratio_two", "ratio 2.000, expected about 4"),
        ("corrupt", "GX010002.MP4: corrupt or truncated video"),
        ("empty", "GX010002.MP4: empty file"),
        ("swapped_names", "ratio 0.250"),
        ("missing_chapter", "missing chapter(s) [2]"),
        ("dangling_link", "GX011001.MP4: a link to /nonexistent/GX011001.MP4, which does not exist"),
        (
            "dropped_frames",
            "GX010002.MP4: frames dropped or a variable frame rate: "
            "frame 8 is stamped 30.0 ms after frame 7, one period being 10.0 ms",
        ),
    ],
)
def test_bad_take_is_named_with_its_problem(raw, take, message):
    with pytest.raises(Rb2vError) as info:
        pair_streams(raw / "bad" / "s3" / take)
    assert message in str(info.value)
    assert take in str(info.value)


def test_discover_separates_good_and_bad_takes(raw):
    takes, calibrations, errors = discover(raw)
    assert sorted(t.key for t in takes) == ["face/s2/named", "street/s1/ntsc", "street/s1/pal"]
    assert calibrations == {}
    assert sorted(e.take for e in errors if e.category != "calibration") == sorted(BAD)
    assert [e.subject for e in errors if e.category == "calibration"] == ["face-rig"]  # a calibration take's name
    said = {e.take: e.error for e in errors}
    for take, message in (
        ("calibration_failed", "take.toml: its calibration take 'face-rig' cannot be used (its error is above)"),
        ("toml_unknown_key", "take.toml: unknown key 'calibraton' (known: calibration, notes)"),
        ("toml_not_utf8", "take.toml: not UTF-8 text"),
    ):
        assert said[take] == str(raw / "bad" / "s3" / take / message), said[take]
    unknown = next(e for e in errors if e.take == "unknown_calibration")
    assert unknown.error.endswith(
        "take.toml: calibration take 'face-rgi' is not in " + str(raw / "calibration") + " (found: face-rig)"
    )


BAD = [
    "one_camera",
    "three_cameras",
    "ratio_two",
    "corrupt",
    "empty",
    "swapped_names",
    "missing_chapter",
    "dropped_frames",
    "dangling_link",
    "calibration_failed",
    "toml_unknown_key",
    "toml_not_utf8",
    "unknown_calibration",
]


def test_cli_reports_each_failed_take_and_writes_tables(raw, tmp_path, capsys):
    """The paired takes hold 4-5 blurry frames, under what alignment needs: refused fast. Every
    failed take is reported by name in one line and in align_errors.parquet, exit status 1;
    takes.parquet lists the paired takes with their stream facts."""
    out = tmp_path / "out"
    code = main(["align", "--sync", "timecode", str(raw), str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("rb2v: error:")]
    assert len(lines) == len(BAD) + 1 + 3 + 1  # bad takes, the empty calibration take, takes that cannot sync, summary
    for name in BAD + ["pal", "ntsc", "named"]:
        assert sum(name in ln for ln in lines) == 1, name
    failed = {e["take"]: e for e in pq.read_table(out / "align_errors.parquet").to_pylist()}
    assert sorted(failed) == sorted(BAD + ["", "pal", "ntsc", "named"])  # "": the calibration take (its subject)
    assert all(failed[n]["stage"] == "discover" for n in BAD)
    # 5 blurry frames: refused before any work, one line naming the take
    assert failed["pal"]["stage"] == "align" and "pal: take too short: 5 blurry frame(s)" in failed["pal"]["error"]
    assert all("take too short" in failed[n]["error"] for n in ("ntsc", "named"))

    table = pq.read_table(out / "takes.parquet").to_pylist()
    row = {r["take"]: r for r in table}["pal"]
    assert len(table) == 3
    assert row["category"] == "street" and row["subject"] == "s1"
    assert row["blur_fps"] == 25.0 and row["sharp_fps"] == 100.0
    assert row["blur_frames"] == 5 and row["sharp_frames"] == 20
    assert row["sharp_files"] == ["street/s1/pal/GX010003.MP4", "street/s1/pal/GX020003.MP4"]
    assert row["blur_width"] == 32 and row["blur_audio"] is False
    assert row["blur_duration_s"] == pytest.approx(0.2, abs=0.05)


def test_missing_raw_folder_is_one_line_error(tmp_path, capsys):
    assert main(["align", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "raw capture folder not found" in capsys.readouterr().err


def test_a_folder_without_takes_is_one_line_error(raw, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["align", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "no takes (expected RAW/<category>/<subject>/<take>/" in capsys.readouterr().err
    # a take folder or a category folder given as RAW: where the videos are, and how far up to go
    for given, up in ((raw / "street" / "s1" / "pal", "3 levels up"), (raw / "face", "1 level up")):
        assert main(["align", str(given), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"give the folder {up} as RAW" in err, err
    assert not (tmp_path / "out" / "takes.parquet").exists()


def test_a_take_without_take_toml_shares_its_sessions_calibration_take(tmp_path, capsys):
    """DESIGN: "a session folder's takes share it". A take whose take.toml was forgotten, beside takes that
    name a calibration take, was aligned without its lens model and said nothing (an outside check: 1.55 px
    off, every frame rejected). Where the session's takes name several, or its own take.toml names none,
    it gets none."""
    for take in ("a", "b", "forgot", "own_toml"):
        _video(tmp_path / "street" / "s1" / take / "blur.mp4", 25, 4)
        _video(tmp_path / "street" / "s1" / take / "sharp.mp4", 100, 16)
    for take in ("c", "d", "forgot"):
        _video(tmp_path / "street" / "s2" / take / "blur.mp4", 25, 4)
        _video(tmp_path / "street" / "s2" / take / "sharp.mp4", 100, 16)
    for name in ("rig1", "rig2"):
        _video(tmp_path / "calibration" / name / "blur.mp4", 25, 4)
        _video(tmp_path / "calibration" / name / "sharp.mp4", 100, 16)
    for folder, text in (("s1/a", "rig1"), ("s1/b", "rig1"), ("s2/c", "rig1"), ("s2/d", "rig2")):
        (tmp_path / "street" / folder / "take.toml").write_text(f'calibration = "{text}"\n')
    (tmp_path / "street" / "s1" / "own_toml" / "take.toml").write_text('notes = "no board this time"\n')
    takes, calibrations, errors = discover(tmp_path)
    assert not errors and sorted(calibrations) == ["rig1", "rig2"]
    got = {t.key: t.calibration for t in takes}
    assert got["street/s1/forgot"] == "rig1" and got["street/s1/own_toml"] is None
    assert got["street/s2/forgot"] is None  # its session's takes name two
    said = capsys.readouterr().err
    assert "street/s1/forgot: no take.toml; using calibration take 'rig1', which the other takes of street/s1" in said


def test_a_take_whose_calibration_take_fails_to_align_is_not_aligned_without_it(tmp_path, capsys):
    """A calibration take that pairs but fails in align (here: too short) left the takes naming it to their own
    homography and without its lens model, unsaid (an overlap error on a colour-wheel board: its green-screen take
    then came out 1.3-4.8 px off): such a take fails too, naming its calibration take, and is not tried."""
    raw = tmp_path / "raw"
    _video(raw / "calibration" / "rig" / "blur.mp4", 25, 4)
    _video(raw / "calibration" / "rig" / "sharp.mp4", 100, 16)
    _video(raw / "hand" / "s1" / "t1" / "blur.mp4", 25, 4)
    _video(raw / "hand" / "s1" / "t1" / "sharp.mp4", 100, 16)
    (raw / "hand" / "s1" / "t1" / "take.toml").write_text('calibration = "rig"\n')
    out = tmp_path / "out"
    assert main(["align", str(raw), str(out)]) == 1
    err = capsys.readouterr().err
    assert "take too short" in err and "Traceback" not in err
    failed = {e["take"]: e for e in pq.read_table(out / "align_errors.parquet").to_pylist()}
    assert sorted(failed) == ["", "t1"]  # "": the calibration take
    assert (
        failed["t1"]["error"]
        == f"{raw / 'hand' / 's1' / 't1'}: its calibration take 'rig' could not be aligned (its error is above)"
    )
    assert err.count("its calibration take 'rig' could not be aligned") == 1
