"""Shared fixtures: the repository root, a runner for the real `siqml` console script, the EstimatorQNN check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIQML = Path(sys.executable).with_name("siqml")


def pytest_configure(config) -> None:
    """The tests call the library's numerics directly (jit, grad, the force field) and compare them to
    Qiskit to 1e-10, so they run in double precision, as every `siqml` command does (cli.run_hydra);
    siqml itself switches nothing on import (tests/test_package.py checks that in a fresh process)."""
    import jax

    jax.config.update("jax_enable_x64", True)


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


@pytest.fixture(scope="session")
def assert_qnn_gradient_matches_jax():
    """EstimatorQNN training on Aer (parameter shift through the circuit, chain rule to every weight)
    against JAX through the fast simulator: the same energy-MSE loss and gradient of every weight."""

    def check(spec, weights: dict, x, targets, atol: float) -> None:
        import jax
        import jax.numpy as jnp
        import numpy as np

        from siqml_cli.backends.settings import backend_settings
        from siqml_cli.simulate import Simulator
        from siqml_cli.train.qnn import QnnModel

        loss, grads = QnnModel(spec, backend_settings({"kind": "aer"})).loss_and_gradient(weights, x, targets)
        sim = Simulator(spec)
        expected_loss, expected = jax.value_and_grad(
            lambda w: jnp.mean((sim.expectation(w, jnp.asarray(x)) - targets) ** 2))(
            {k: jnp.asarray(v) for k, v in weights.items()})
        assert loss == pytest.approx(float(expected_loss), abs=atol / 100)
        for name in weights:
            np.testing.assert_allclose(grads[name], np.asarray(expected[name]), rtol=0, atol=atol, err_msg=name)

    return check
