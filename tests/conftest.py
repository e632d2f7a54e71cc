"""Shared test setup: no figure windows, no progress bars, the quick profile unless a test sets one."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# before anything imports matplotlib or tqdm (both read these once)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("POISONLAB_PROFILE", "quick")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    """The repository (the folder of _quarto.yml)."""
    return REPO


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures made by a test do not pile up (matplotlib warns past 20 open figures)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
