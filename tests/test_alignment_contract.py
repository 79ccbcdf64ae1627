"""alignment.json (rb2v.alignment/2) as read by the build: a hand-edited value is named with its file and key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rb2v.alignment import Alignment, Crop, Exposure, read_alignment, write_alignment
from rb2v.errors import Rb2vError

GOOD = Alignment(
    blur_fps=25.0,
    sharp_fps=100.0,
    flip_sharp="horizontal",
    homography=((1.0, 0.0, 2.0), (0.0, 1.0, -1.0), (0.0, 0.0, 1.0)),
    crop=Crop(16, 8, 448, 400),
    time_offset_s=0.013,
    clock_ratio=1.0001,
    sync_method="audio",
    exposure={"blur": Exposure(-0.015, 0.03, 0.008, "estimated"), "sharp": Exposure.centred(0.00125)},
)


def test_a_written_alignment_reads_back_the_same(tmp_path):
    assert read_alignment(write_alignment(tmp_path, GOOD)) == GOOD


@pytest.mark.parametrize(
    "checked, apart, first",
    [
        ([0, 2, 20, 22], {"20": 1.1, "22": 0.9}, 20),  # the view moved and stayed moved
        ([0, 2, 20, 22], {"2": 0.8, "22": 0.9}, 21),  # only the last run counts; the knock fell after frame 20
        ([0, 2, 20, 24], {"24": 0.9}, 24),  # 21-23 not compared: build's checks judge them
        ([0, 2, 20, 22], {"2": 0.8}, None),  # a frame apart with one in line after it: no verdict
        ([0, 2, 20, 22], {}, None),
        (None, None, None),  # not measured (an alignment of an earlier rb2v, a take whose exposure was not fitted)
    ],
)
def test_the_frame_from_which_align_saw_the_views_moved(checked, apart, first):
    extra = {"frames_checked": checked, "frames_apart_px": apart}
    assert dataclasses.replace(GOOD, extra=extra).knocked_from == first


def test_align_says_a_move_only_where_the_views_stayed_moved():
    """A fast hand's one frame 1.42 px apart in a take whose views did not move (rb2v bench rig-unknowns,
    rig-drift-2, hand 7402) was told as a knocked rig; build judged it by the rule below all along."""
    from rb2v.align.stage import apart_note

    lone = apart_note("hand/s01/t01", {14: 1.42}, [0, 2, 12, 14, 16, 22])
    assert "blurry frame(s) 14 sit 1.42-1.42 px" in lone and "the views did not stay moved" in lone
    assert "knocked" not in lone and "the exposure fit and the homography keep them" in lone
    moved = apart_note("hand/s01/t01", {20: 1.1, 22: 0.9}, [0, 2, 18, 20, 22])
    assert "moved against each other from blurry frame 19 on" in moved and "samples from frame 19 on" in moved


@pytest.mark.parametrize(
    "edit, message",
    [
        # an internal error in the build ("cannot convert float NaN to integer"), without the file's name
        ({"time_offset_s": float("nan")}, "time_offset_s must be a finite number, got nan"),
        # a string was read as a number (and put every sample off its clock)
        ({"time_offset_s": "0.1"}, "time_offset_s must be a finite number, got '0.1'"),
        ({"clock_ratio": True}, "clock_ratio must be a finite number, got True"),
        # failed each sample alike ("exposure span must be >= 0 frame steps"), and 0 was not refused at all
        ({"clock_ratio": -1}, "clock_ratio must be positive, got -1.0"),
        ({"clock_ratio": 0}, "clock_ratio must be positive, got 0.0"),
        ({"blur_fps": float("inf")}, "blur_fps must be a finite number, got inf"),
        ({"exposure": {"blur": {"start_s": -0.015, "length_s": -0.03}}}, "exposure.blur: length_s must be positive"),
        ({"exposure": {"blur": {"start_s": None, "length_s": 0.03}}}, "exposure.blur: start_s must be a finite"),
        ({"exposure": {"sharp": {"length_s": 0.001}}}, "exposure.sharp: bad exposure entry (missing 'start_s')"),
        ({"crop": {"x": 0, "y": 0, "width": 0, "height": 448}}, "crop is 0x448"),
        ({"frames_apart_px": [20, 22]}, "frames_apart_px must map blurry frame numbers to px, got [20, 22]"),
        ({"frames_apart_px": {"20": "far"}}, "frames_apart_px must map blurry frame numbers to px, got {'20': 'far'}"),
        ({"frames_checked": {"20": 1}}, "frames_checked must be a list of blurry frame numbers"),
    ],
)
def test_a_bad_value_is_named_with_its_file_and_key(tmp_path, edit, message):
    path = write_alignment(tmp_path, GOOD)
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(Rb2vError) as e:
        read_alignment(tmp_path)
    assert str(e.value).startswith(str(path)) and message in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "method, undetermined, clock, span",
    [
        ("estimated", set(), True, 4.0),  # 20 ms at 100 fps upsampled 2x: 4 steps (clock_ratio 1.0001)
        ("estimated relative to visual sync", set(), True, 4.0),
        ("estimated; not determined: length", {"length"}, True, 4.0),  # the length is still the fit's best guess
        ("estimated; not determined: centre, length", {"centre", "length"}, False, 4.0),
    ],
)
def test_an_exposure_the_images_did_not_determine_is_not_used_as_a_clock(tmp_path, method, undetermined, clock, span):
    """A blur exposure align could not place in time (a board held still) reads back as such: build checks no
    sample against a clock it put there, and uses its length as the fit's best guess."""
    meta = Alignment(**{**vars(GOOD), "exposure": {**GOOD.exposure, "blur": Exposure(-0.01, 0.02, 0.0, method)}})
    meta = read_alignment(write_alignment(tmp_path, meta))
    assert meta.exposure["blur"].undetermined == undetermined
    assert meta.blur_exposure_known is clock and meta.blur_span(2) == pytest.approx(span, rel=1e-3)
