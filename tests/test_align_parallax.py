"""rb2v align on a rig whose cameras' centres of projection differ (parallax), simulated with exact truth.

Its own module: the session is its own, and tests run file by file across workers.
"""

from __future__ import annotations

import json

import numpy as np

from rb2v.alignment import read_alignment
from rb2v.benchmarks.align import corner_errors
from rb2v.cli import main
from rb2v.simulate import SimConfig, simulate_session


def test_a_subject_nearer_than_the_board_gets_the_board_homography_moved_by_its_parallax(tmp_path):
    """A rig whose sharp camera's centre of projection sits 5 mm beside the blur camera's: the face at 0.6 m
    and the calibration board at 1 m shift by 2.67 and 1.60 px between the views, so the board's homography
    is 1.07 px off on the face, and was used as it was (under the 1.5 px that says the rig moved), the exposure
    fit biased along the motion with it. It is now moved by the offset of the take's own matches made inside the
    blur exposure, and the exposure fitted again with it."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    cfg = SimConfig(category="face", seconds=1.2, seed=32, flip="vertical", internal_fps=400, centre_offset_mm=(5, 0))
    simulate_session(raw, cfg, progress=False)
    truth = json.loads((raw / "face" / "subject01" / "take01" / "truth.json").read_text())
    board = json.loads((raw / "calibration" / "face-rig" / "truth.json").read_text())
    parallax = np.subtract(truth["homography"], board["homography"])[:2, 2]
    assert 1.0 < parallax[0] < 1.1 and abs(parallax[1]) < 0.01  # the truth: 320 px * 5 mm * (1/0.6 - 1/1) m^-1
    assert main(["align", "--workers", "2", "--no-frames", str(raw), str(out)]) == 0
    meta = json.loads((out / "aligned" / "face" / "subject01" / "take01" / "alignment.json").read_text())
    assert meta["calibration"] == "face-rig" and "(parallax)" in meta["note"]
    assert np.allclose(meta["calibration_offset_px"], parallax, atol=0.1), meta["calibration_offset_px"]
    assert corner_errors(meta, truth).max() < 0.1  # 1.08 px with the board's homography as it was
    board_as_is = {**meta, "homography": read_alignment(out / "calibration" / "face-rig").homography}
    assert corner_errors(board_as_is, truth).min() > 0.9
