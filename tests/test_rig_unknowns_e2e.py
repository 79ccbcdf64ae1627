"""Issue 13, done-when: ``rb2v align`` + ``rb2v build`` on a randomized simulated take meet the targets.

One street take with every camera convention drawn by ``--randomize``: lens distortion per camera
(with its checkerboard calibration take), exposure anchor anywhere in the exposure, blur exposure
1/100-1/25 s, rolling-shutter readout per camera, exposure and white-balance drift, H.264 at a
GoPro-like bitrate; from a seed no other test uses and nothing was tuned on. The same measurement
as ``rb2v bench rig-unknowns``.
"""

from __future__ import annotations

import pytest

from rb2v.benchmarks.rig_unknowns import TARGETS, run_one

SEED = 9137  # used by no other test; never tuned on


@pytest.mark.slow
def test_randomized_take_aligns_and_builds_within_the_targets(tmp_path):
    args = {"category": "street", "seconds": 1.6, "width": 640, "height": 544, "interpolator": "linear"}
    r = run_one(tmp_path, "randomized", SEED, args)
    assert "error" not in r, r.get("error")
    summary = {
        k: r[k] for k in ("offset_ms", "corner_max_px", "at_exact", "accepted_of_all", "colour_median", "step_errors")
    }
    summary["exposure_true"], summary["exposure_est"] = r["exposure_true"], r["exposure_est"]
    assert abs(r["offset_ms"]) <= TARGETS["offset_ms"], summary
    # measured 0.14 px (lens-aware: the scene points the output pairs at the crop's corners, in the
    # true undistorted blur view)
    assert r["corner_max_px"] <= TARGETS["corner_px"], summary
    assert r["at_exact"] >= TARGETS["at_exact"], summary
    assert r["accepted_of_all"] >= TARGETS["accepted"], summary
    assert r["colour_median"] <= TARGETS["colour"], summary
