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
