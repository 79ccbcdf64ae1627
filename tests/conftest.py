"""Shared fixtures. Simulated sessions are expensive: make each once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RB2V_PROGRESS", "0")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def oracle_session(tmp_path_factory):
    """A simulated street session (2 subjects) and hand session (2 subjects), aligned with the
    true geometry and clock (so the stages after alignment are tested on their own).
    Returns (raw, out)."""
    from rb2v.simulate import SimConfig, simulate_session
    from rb2v.simulate.oracle import write_oracle_alignment

    root = tmp_path_factory.mktemp("oracle")
    raw, out = root / "raw", root / "out"
    for category, seed in (("street", 21), ("hand", 22)):
        cfg = SimConfig(category=category, subjects=2, takes=1, seconds=1.2, seed=seed, audio=False)
        for take_dir in simulate_session(raw, cfg, progress=False):
            if take_dir.parent.name == "calibration":
                continue
            rel = take_dir.relative_to(raw)
            write_oracle_alignment(take_dir, out / "aligned" / rel)
    return raw, out
