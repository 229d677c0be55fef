"""The side-by-side benchmark's peers compute what siqml computes (skips when a peer is not installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_peers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _agree(bench, impl, model):
    module = {"pennylane": "pennylane", "pennylane_demo": "pennylane", "tensorcircuit": "tensorcircuit"}[impl]
    pytest.importorskip(module)
    from siqml_cli.models import build_model

    case = bench.MAIN_MODELS[model]

    spec = build_model(case.molecule, case.symmetry, 2, 1)  # shallow: fast to compile
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(3, len(spec.species), 3))
    energies, forces = rng.normal(size=3), rng.normal(size=(3, len(spec.species), 3))
    weights = spec.random_weights(1)
    ref = bench.jax_reference("siqml", spec, weights, positions, energies, forces)
    other = bench.jax_reference(impl, spec, weights, positions, energies, forces)
    ok, text = bench.compare(ref, other)
    assert ok, text


@pytest.mark.parametrize("impl", ["tensorcircuit", "pennylane", "pennylane_demo"])
def test_peer_agrees_with_siqml_h2o(bench, impl):
    _agree(bench, impl, "h2o")


def test_compare_refuses_a_disagreeing_column(bench):
    ref = {"energy": np.zeros(3), "dE/dx": np.zeros((3, 3, 3))}
    ok, _ = bench.compare(ref, {"energy": np.full(3, 1e-6), "dE/dx": np.zeros((3, 3, 3))})
    assert not ok
    ok, _ = bench.compare(ref, {"energy": np.zeros(3), "dE/dx": np.full((3, 3, 3), 1e-4)})
    assert not ok
    ok, _ = bench.compare(ref, {"energy": np.full(3, 1e-10), "dE/dx": np.full((3, 3, 3), 1e-9)})
    assert ok
    # EstimatorQNN checks fewer configurations: the first ones of the reference
    ok, _ = bench.compare(ref, {"energy": np.zeros(2), "dE/dx": np.zeros((2, 3, 3))})
    assert ok
    ref["energy"][1] = 1.0
    ok, _ = bench.compare(ref, {"energy": np.zeros(2), "dE/dx": np.zeros((2, 3, 3))})
    assert not ok


def test_components_split_overlapping_pairs(bench):
    assert sorted(bench.components(((0, 1), (2, 3)))) == [(0, 1), (2, 3)]
    assert sorted(bench.components(((0, 2), (0, 4), (1, 3), (1, 5)))) == [(0, 2, 4), (1, 3, 5)]


@pytest.mark.parametrize("impl", ["qnn_statevector", "qnn_aer"])
def test_estimator_qnn_agrees_with_siqml_h2o(bench, impl):
    """EstimatorQNN's parameter-shift values and input gradients, chained to positions and alpha, are
    siqml's (and the StatevectorEstimator column runs at all: U-gate encodings made it bind a symbolic
    global phase for seconds per circuit)."""
    from siqml_cli.models import build_model

    spec = build_model("h2o", "broken", 2, 1)
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(2, 3, 3))
    weights = spec.random_weights(1)
    ref = bench.jax_reference("siqml", spec, weights, positions, np.zeros(2), np.zeros((2, 3, 3)))
    other = bench.QNNPeer(impl, spec).reference(weights, positions)
    assert set(other) >= {"energy", "dE/dtheta", "dE/dalpha", "dE/dx"}
    ok, text = bench.compare(ref, other)
    assert ok, text
