"""The command line: help, one-line errors, exit codes (run as a user would, in a subprocess; the many
refusals through ``main`` in this process, as ``python -m rb2v`` calls it: one import instead of a Python
start and the command's imports per case)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def rb2v(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rb2v", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command():
    out = rb2v("--help")
    assert out.returncode == 0
    for name in (
        "simulate-rig",
        "align",
        "build",
        "synth-reds",
        "train-hypercut",
        "eval-hypercut",
        "order",
        "publish",
        "verify",
        "fetch",
        "validate",
        "bench",
        "train-blur2vid",
        "eval-blur2vid",
        "deblur",
    ):
        assert name in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["probe", "does-not-exist.MP4"], "does-not-exist.MP4: file not found"),
        (["simulate-rig", "RAW", "--seconds", "0.1"], "--seconds must be between"),
        (["simulate-rig", "RAW", "--size", "320x240"], "at least 480x480"),
        (["simulate-rig", "RAW", "--sharp-size", "640x544x3"], "--sharp-size '640x544x3': expected WxH"),  # no option
        # the blur camera's dark sides leave 440 px of a 480 px width: the default rig's 448 px crop never fits
        (["simulate-rig", "RAW", "--size", "480x544"], "the rig's 448x448 crop does not fit"),
        (["simulate-rig", "RAW", "--rig", "nope"], "rigs/nope.toml: no such rig"),
        # NaN passed every comparison: internal errors in the encoder, or NaN audio written with exit 0
        (["simulate-rig", "RAW", "--blur-exposure", "nan"], "blur exposure must be within one blur frame period"),
        (["simulate-rig", "RAW", "--bitrate", "inf"], "--bitrate must be positive Mb/s (at most 10000), got inf"),
        (["simulate-rig", "RAW", "--sharp-audio-delay", "nan"], "--sharp-audio-delay must be within ±0.5 s"),
        (["simulate-rig", "RAW", "--chapter-seconds", "-1"], "--chapter-seconds must be 0 (no chapters) or more"),
        (["simulate-rig", "RAW", "--exposure-anchor", "nan"], "blur exposure anchor must be within one frame period"),
        # an internal error (OverflowError), and "folder not found" for a file that exists
        (["synth-reds", "--input", ".", "--fps", "inf"], "--fps inf: a frame rate must be a positive number"),
        (["synth-reds", "--input", ".", "--fps", "1e300"], "--fps 1e+300: above 100000 fps"),
        (["synth-reds", "--input", "/bin/sh", "--fps", "120"], "/bin/sh: not a folder (--input takes"),
        # the first run wrote into RAW, the next took OUT's folders for takes
        # internal errors in the benchmarks (after minutes of simulation for some)
        (["bench", "build", "--workers", "abc"], "--workers 'abc': expected a comma list of integers"),
        (["bench", "rig-unknowns", "--work", "w", "--size", "640"], "--size '640': expected WxH"),
        (["build", "--category", "hand", "--pipeline", "face"], "face: the pipeline is for category 'face', not"),
        (["align", ".", "o"], "o: OUT cannot be RAW (.) or inside it"),
        (["align", "raw", "raw"], "raw: OUT cannot be RAW (raw) or inside it"),
        # reported per take, after takes.parquet was written
        (["align", "RAW", "o", "--sync", "foo,audio"], "--sync foo,audio: unknown method(s) 'foo' (use one or more of"),
    ],
)
def test_user_mistakes_are_one_line_errors(rb2v_here, tmp_path, args, message):
    out = rb2v_here(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rb2v: error:") and message in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        # a stride of 0 was blamed on the pipeline's TOML file, which holds none
        (["build", "--category", "street", "--stride", "0"], "Invalid value for '--stride': 0 is not in the range"),
        (["synth-reds", "--input", ".", "--fps", "120", "--stride", "0"], "'--stride': 0 is not in the range"),
        (["synth-reds", "--input", ".", "--fps", "120", "--max-per-sequence", "-1"], "-1 is not in the range x>=0"),
        (["verify", "mirror", "--jobs", "0"], "'--jobs' / '-j': 0 is not in the range x>=1"),  # an internal error
        # refused only after the build had withdrawn the dataset's manifest, align after writing takes.parquet
        (["build", "--category", "street", "--out", "o", "-j", "0"], "'--workers' / '-j': 0 is not in the range"),
        (["align", "raw", "o", "--workers", "0"], "'--workers' / '-j': 0 is not in the range"),
        (["simulate-rig", "RAW", "--seed", "-5"], "'--seed': -5 is not in the range x>=0"),  # an internal error
        (["order", "--manifest", "m.parquet", "--checkpoint", "c.pt", "--threads", "-4"], "-4 is not in the range"),
        (["deblur", "x.png", "--checkpoint", "c.pt", "--out", "o", "--threads", "0"], "0 is not in the range x>=1"),
        (["bench", "align", "--repeat", "0"], "'--repeat': 0 is not in the range x>=1"),  # after a 10 s simulation
        (["bench", "synth-reds", "--frames", "-1"], "'--frames': -1 is not in the range x>=4"),  # ran on 51 frames
        (["bench", "build", "--stride", "0"], "'--stride': 0 is not in the range x>=1"),  # after 40 s of simulation
        (["bench", "colormatch", "--interpolator", "x"], "'x' is not one of 'linear', 'flow'"),  # after a table head
        # --json manifest.parquet replaced the manifest with the figures
        (
            ["eval-hypercut", "--manifest", "m", "--checkpoint", "c.pt", "--json", "m/manifest.parquet"],
            "ending in .json",
        ),
        (["eval-blur2vid", "--manifest", "m", "--checkpoint", "c.pt", "--json", "out.csv"], "ending in .json"),
        (["eval-blur2vid", "--manifest", "m", "--checkpoint", "c.pt", "--threads", "0"], "0 is not in the range"),
        (["train-blur2vid", "--manifest", "m", "--out", "o", "--threads", "0"], "0 is not in the range x>=1"),
    ],
)
def test_options_out_of_range_are_refused_by_name(rb2v_here, tmp_path, args, message):
    out = rb2v_here(*args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr and "toml" not in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "project, message",
    [
        ('rwa = "raw"\n', "rb2v.toml: unknown key 'rwa' (known: raw, out)"),
        ('raw = 5\nout = "o"\n', "rb2v.toml: key 'raw' must be a path string"),  # checked even when out is read
        ("raw = \n", "rb2v.toml: not valid TOML"),
    ],
)
def test_a_mistake_in_rb2v_toml_is_a_one_line_error(rb2v_here, tmp_path, project, message):
    (tmp_path / "rb2v.toml").write_text(project)
    out = rb2v_here("build", "--category", "street", cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"rb2v: error: {message}"), out.stderr


def test_debug_shows_the_traceback_wherever_it_is_given(tmp_path):
    for args in (["--debug", "validate", "nope.parquet"], ["validate", "nope.parquet", "--debug"]):
        out = rb2v(*args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1] == "rb2v: error: nope.parquet: manifest not found"


def test_probe_prints_stream_facts(tmp_path):
    import numpy as np

    from rb2v.io.video import write_video

    path = write_video(tmp_path / "GX011234.MP4", np.zeros((10, 64, 96, 3), np.uint8), 100)
    out = rb2v("probe", path)
    assert out.returncode == 0, out.stderr
    assert "96x64 @ 100.000 fps (100/1), 10 frames, 0.100 s, audio: none" in out.stdout, out.stdout
    # two files of one name in two folders were told apart only by their order
    (tmp_path / "b").mkdir()
    plain = shutil.copy(path, tmp_path / "s.mp4")
    other = shutil.copy(path, tmp_path / "b" / "s.mp4")
    lines = rb2v("probe", plain, other).stdout.splitlines()
    assert sorted(line.split(": ", 1)[0] for line in lines) == sorted([str(plain), str(other)])


def test_probe_describes_a_video_rb2v_cannot_use(tmp_path):
    """A camera that dropped frames was refused without a description (probe is where a user looks);
    it is now described, its problem named, and the exit status says it is not usable."""
    import numpy as np

    from rb2v import ffmpeg
    from rb2v.io.video import write_video

    good = write_video(tmp_path / "good.mp4", np.zeros((10, 48, 64, 3), np.uint8), 25)
    dropped = tmp_path / "GX010002.MP4"  # frames 8 and 9 of 18 dropped: frame 8 stamped where frame 10 belongs
    ffmpeg.run(
        ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=100", "-frames:v", "16"]
        + ["-vf", "setpts=(N+2*gte(N\\,8))/(100*TB)", "-fps_mode", "passthrough", "-c:v", "libx264", str(dropped)]
    )
    problem = "GX010002.MP4: frames dropped or a variable frame rate: frame 8 is stamped 30.0 ms after frame 7"
    alone = rb2v("probe", dropped)
    assert alone.returncode == 2 and "GX010002.MP4: h264 64x48" in alone.stdout and "16 frames" in alone.stdout
    assert len(alone.stderr.strip().splitlines()) == 1 and problem in alone.stderr
    both = rb2v("probe", "--json", dropped, good, tmp_path / "nope.mp4")
    records = [json.loads(line) for line in both.stdout.splitlines()]
    assert [r["usable"] for r in records] == [False, True]
    assert problem.split(": ", 1)[1] in records[0]["chapters"][0]["rate_problem"]
    assert both.returncode == 1 and "nope.mp4: file not found" in both.stderr
    assert both.stderr.strip().splitlines()[-1] == "rb2v: error: 2 of 3 recording(s) not usable by rb2v (named above)"


def test_rig_unknowns_bench_needs_the_real_video_only_for_its_backdrop_settings(monkeypatch, tmp_path):
    """Without the real street video (an installed wheel) a real-backdrop setting asked for is a one-line error
    before any take is simulated; the default run of every setting leaves those out with a note."""
    from click.testing import CliRunner

    import rb2v.benchmarks as benchmarks
    from rb2v.benchmarks import rig_unknowns
    from rb2v.errors import Rb2vError

    def no_frames():
        raise Rb2vError("tests/fixtures/img_seq: no frames of the real street video")

    ran = []
    monkeypatch.setattr(benchmarks, "street_frames", no_frames)
    monkeypatch.setattr(rig_unknowns, "run_one", lambda work, name, seed, args: ran.append(name) or {"error": "-"})
    monkeypatch.setattr(rig_unknowns, "_fmt_row", lambda name, rs: name)
    asked = CliRunner().invoke(rig_unknowns.main, ["--settings", "randomized,real-backdrop", "--work", str(tmp_path)])
    assert isinstance(asked.exception, Rb2vError) and "img_seq" in str(asked.exception) and not ran
    every = CliRunner().invoke(rig_unknowns.main, ["--work", str(tmp_path)])
    assert every.exit_code == 0, every.output
    assert "real-backdrop settings are left out" in every.output
    assert ran == [n for n in rig_unknowns.SETTINGS if "real-backdrop" not in n]


def test_the_rig_unknowns_table_flags_bands_found_where_the_truth_has_none_and_missed_where_it_has():
    from rb2v.benchmarks.rig_unknowns import _fmt_row

    base = {"offset_ms": 0.1, "corner_mean_px": 0.1, "corner_max_px": 0.2, "at_exact": 1.0, "accepted_frac": 1.0}
    base |= {"accepted_of_all": 1.0, "colour_median": 0.005, "step_errors": {0: 40}}
    for still, found, expected, flags in [
        (0.05, False, False, "......"),
        (0.36, True, False, ".....*"),
        (0.12, False, True, ".....*"),
        (0.6, True, True, "......"),
    ]:
        row = _fmt_row("s", [{**base, "still_ptp": still, "still_found": found, "still_expected": expected}])
        assert f"{still:.2f}-{still:.2f}  {flags}  " in row, row


@pytest.mark.parametrize("keep, fail, left", [(False, False, False), (True, False, True), (True, True, False)])
def test_a_benchmarks_temporary_folder_is_removed_when_it_ends(tmp_path, monkeypatch, keep, fail, left):
    """A failed bench left an empty folder in the temporary folder, a stopped `bench build` 1 GB."""
    import tempfile

    import click

    from rb2v.benchmarks import scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = []

    @click.command()
    def bench():
        made.append(scratch_folder(None, "rb2v-bench-x-", keep=keep))
        (made[0] / "big").write_bytes(b"x" * 1000)
        if fail:
            raise KeyboardInterrupt

    try:
        bench.main(args=[], standalone_mode=False)
    except (KeyboardInterrupt, click.Abort):
        assert fail
    assert made[0].parent == tmp_path and made[0].exists() == left
    assert scratch_folder(tmp_path / "given", "x") == tmp_path / "given"  # a folder given is the user's


def test_sigterm_ends_a_command_as_ctrl_c_does(tmp_path):
    """`timeout` sends SIGTERM: the command ended without running its clean-up (a bench's temporary folder)."""
    import signal
    import time

    env = {**os.environ, "TMPDIR": str(tmp_path), "RB2V_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "rb2v", "bench", "build", "--seconds", "4"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob("rb2v-bench-build-*/raw")):
        time.sleep(0.2)
    assert list(tmp_path.glob("rb2v-bench-build-*/raw")), "the bench never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rb2v: aborted" in err, err
    assert not list(tmp_path.glob("rb2v-bench-build-*"))


def test_simulate_rig_says_which_takes_a_rerun_kept(tmp_path):
    """A re-run kept the takes already there but said it had simulated them."""
    args = ["simulate-rig", tmp_path / "raw", "--category", "street", "--subjects", "1", "--seconds", "1"]
    first = rb2v(*args)
    assert first.returncode == 0 and "already there" not in first.stdout, first.stderr
    again = rb2v(*args)
    assert again.returncode == 0 and "; 1 of them were already there and are kept" in again.stdout


def test_the_report_reads_a_built_dataset_without_the_build_stage(tmp_path):
    """``rb2v report`` took 2 s to import the build stage (OpenCV, scipy.signal through align) for three names of
    the build's records; they live in ``rb2v.dataset.records`` since 2026-12-07."""
    check = "import sys, rb2v.dataset.report; print('rb2v.dataset.stage' in sys.modules, 'scipy.signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_simulate_rig_tells_a_mistake_before_importing_the_renderer(tmp_path):
    """A wrong option waited 3.5 s for the renderer's imports (scipy.signal, pandas, the photos) before it
    was told; the options are now checked first (0.5 s)."""
    check = (
        "import sys; from rb2v.cli import main; "
        "code = main(['simulate-rig', 'RAW', '--seconds', '0.1']); "
        "print(code, 'rb2v.simulate.session' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert "--seconds must be between 0.5 and 600" in out.stderr


@pytest.mark.parametrize(
    "args, message, heavy",
    [
        (["align", "raw", "raw"], "raw: OUT cannot be RAW (raw) or inside it", "rb2v.align.stage"),
        (["align", "nope", "o"], "nope: raw capture folder not found", "rb2v.align.stage"),
        (["align", "raw", "o", "--rig", "nope"], "rigs/nope.toml: no such rig", "rb2v.align.stage"),
        (["align", "raw", "o", "--sync", "foo"], "--sync foo: unknown method(s) 'foo'", "rb2v.align.stage"),
        (["build", "--category", "underwater"], "'underwater' is not one of", "rb2v.dataset.stage"),
        (["build", "--category", "hand"], "no aligned takes for category 'hand'", "rb2v.dataset.stage"),
        (["synth-reds", "--input", ".", "--fps", "inf"], "--fps inf: a frame rate must be", "rb2v.dataset.stage"),
        (["synth-reds", "--input", "nope", "--fps", "120"], "nope: input folder not found", "rb2v.dataset.stage"),
        (["deblur", "nope.png", "--checkpoint", "c.pt", "--out", "o"], "nope.png: input not found", "torch"),
        (["train-blur2vid", "--manifest", "nope.parquet", "--out", "o"], "nope.parquet: manifest not found", "torch"),
        (["validate", "nope.parquet"], "nope.parquet: manifest not found", "rb2v.manifest.validate"),
        (["report", "nope"], "nope: no built dataset", "rb2v.dataset.report"),
    ],
)
def test_commands_tell_a_mistake_before_importing_their_stage(tmp_path, args, message, heavy):
    """align, build, synth-reds, deblur and train-blur2vid imported their stage (OpenCV, scipy.signal, pandas,
    torch) before they checked their arguments: a plain mistake was told after 2.7-4.1 s, now in 0.2-0.5 s
    (validate 1.25 -> 0.12 s, report 3.1 -> 0.28 s since 2026-12-07)
    (pandas and pyarrow too stay unloaded: ``rb2v.manifest`` loads its schema on first use)."""
    check = (
        f"import sys; from rb2v.cli import main; code = main({args!r}); "
        f"print(code, {heavy!r} in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["2", "False", "False"], out.stdout + out.stderr
    assert message in out.stderr
    assert list(tmp_path.iterdir()) == []
