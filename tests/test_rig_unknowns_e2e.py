"""Issue 13, done-when: ``rb2v align`` + ``rb2v build`` on a randomized simulated take meet the targets.

One street take with every camera convention drawn by ``--randomize``: lens distortion (k1, k2) per
camera (with its checkerboard calibration take, the board held out to a drawn reach), exposure
anchor anywhere in the exposure, blur exposure 1/100-1/25 s, rolling-shutter readout per camera,
exposure and white-balance drift, H.264 at a GoPro-like bitrate; from a seed no other test uses and
nothing was tuned on. The same measurement as ``rb2v bench rig-unknowns`` (with a shorter board take).
"""

from __future__ import annotations

import pytest

from rb2v.benchmarks.rig_unknowns import TARGETS, run_one

# A seed used by no other test, never tuned on (9137, used until 2026-12-01, was among the sessions AGREE_PX
# was chosen on). "upside-down": every convention drawn as under "randomized", and the sharp camera mounted
# upside down, its file tagged with a display matrix, so that its rolling shutter reads the upright picture
# bottom up. One take keeps the suite under its time budget (until 2026-12-02 a second one, "randomized" on
# seed 27449, ran beside it); `rb2v bench rig-unknowns` measures the settings over many seeds.
CASES = [("upside-down", 27451)]


@pytest.mark.slow
@pytest.mark.parametrize("setting, seed", CASES)
def test_randomized_take_aligns_and_builds_within_the_targets(tmp_path, monkeypatch, setting, seed):
    args = {"category": "street", "seconds": 1.6, "width": 640, "height": 544, "interpolator": "linear"}
    # a calibration take of 9 board poses, not 12 (3.6 s): 21 s less of the suite's longest test; the crop's
    # corners 0.13 px off at the end (12 poses: 0.19 px), every other figure the same
    monkeypatch.setattr("rb2v.simulate.lens.BOARD_POSES", 9)
    r = run_one(tmp_path, setting, seed, args)
    assert "error" not in r, r.get("error")
    summary = {
        k: r[k] for k in ("offset_ms", "corner_max_px", "at_exact", "accepted_of_all", "colour_median", "step_errors")
    }
    summary["exposure_true"], summary["exposure_est"] = r["exposure_true"], r["exposure_est"]
    assert abs(r["offset_ms"]) <= TARGETS["offset_ms"], summary
    # measured 0.14 px align-only (1.6 s take; the lenses' k2 and the board's reach drawn), in the true
    # undistorted blur view
    assert r["corner_max_px"] <= TARGETS["corner_px"], summary
    assert r["at_exact"] >= TARGETS["at_exact"], summary
    assert r["accepted_of_all"] >= TARGETS["accepted"], summary
    assert r["colour_median"] <= TARGETS["colour"], summary
    # a steady light: no bands standing still found (the bench's "bands" flag)
    assert not r["still_expected"] and not r["still_found"], r["still_ptp"]
