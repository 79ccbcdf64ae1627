"""Shared fixtures. Simulated sessions are expensive: make each once per test session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("RB2V_PROGRESS", "0")

# The pytest-xdist workers split the cores: each worker's numpy, OpenCV and torch, and the commands it
# starts, would otherwise run a thread per core, and the oversubscribed threads wait on each other.
# (The variables of rb2v.executor's pool workers, and OpenCV's for the commands a test starts.)
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _XDIST_WORKERS > 1:
    from rb2v.executor import available_cores  # imports neither numpy nor OpenCV nor torch

    _threads = str(max(1, available_cores() // _XDIST_WORKERS))
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
        os.environ.setdefault(_var, _threads)

FIXTURES = Path(__file__).parent / "fixtures"

# `make test` runs the files on pytest-xdist workers, one file per worker at a time (--dist loadfile:
# a file's module fixtures are made once; the two tests that start Ray share tests/test_build.py,
# as `ray stop --force` ends every Ray process on the machine).


def pytest_collection_modifyitems(config, items):
    # files holding a slow end-to-end test first (xdist hands files out in this order with
    # --no-loadscope-reorder): a long file started last would keep one worker busy alone
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): on a
    small shared CI machine oversubscribed threads are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def oracle_session(tmp_path_factory):
    """A simulated street session (2 subjects) and hand session (1 subject), aligned with the
    true geometry and clock (so the stages after alignment are tested on their own).
    Returns (raw, out)."""
    from rb2v.simulate import SimConfig, simulate_session
    from rb2v.simulate.oracle import write_oracle_alignment

    root = tmp_path_factory.mktemp("oracle")
    raw, out = root / "raw", root / "out"
    for category, seed, subjects in (("street", 21, 2), ("hand", 22, 1)):  # hand: one take is enough to matte
        cfg = SimConfig(category=category, subjects=subjects, takes=1, seconds=1.2, seed=seed, audio=False)
        for take_dir in simulate_session(raw, cfg, progress=False):
            if take_dir.parent.name == "calibration":
                continue
            rel = take_dir.relative_to(raw)
            write_oracle_alignment(take_dir, out / "aligned" / rel)
    return raw, out


@pytest.fixture(scope="session")
def ordered_dataset(tmp_path_factory):
    """``make(size, device)``: 3 photos x 2 samples of size x size (chelsea held out), labelled by
    `rb2v order` with the bundled HyperCUT on ``device``; returns the manifest."""
    from hypercut_models.synthetic import make_dataset
    from rb2v.cli import main as rb2v_main

    def make(size: int, device: str) -> Path:
        out = tmp_path_factory.mktemp(f"ordered_{size}_{device}")
        photos = ("astronaut", "coffee", "chelsea")
        manifest = make_dataset(out, photos=photos, test_subjects=("chelsea",), takes=1, samples=2, size=size, seed=5)
        checkpoint = FIXTURES / "hypercut" / "pretrained.pt"
        args = ["order", "--manifest", str(manifest), "--checkpoint", str(checkpoint), "--workers", "0"]
        assert rb2v_main([*args, "--device", device]) == 0
        return manifest

    return make


@pytest.fixture
def rb2v_here(capsys, monkeypatch):
    """``rb2v(*args, cwd=...)`` through ``rb2v.cli.main`` in this process, as ``python -m rb2v`` calls it: the
    exit code and what it printed, as a ``CompletedProcess`` (a command started as a process costs 1-2 s of
    imports)."""
    from rb2v.cli import main

    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
