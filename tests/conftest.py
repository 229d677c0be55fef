"""Shared fixtures: the repository root, a runner for the real `siqml` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIQML = Path(sys.executable).with_name("siqml")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_siqml(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the installed `siqml` command as a user would, capturing its output."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(SIQML), *args], cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def siqml():
    return run_siqml
