"""The fast simulator's paths (siqml_cli/simulate/statevector.py): every fused block size the cost model may
pick, orbit gates wider than the block, per-layer rematerialisation, equal Qiskit's Statevector of the bound
circuit to 1e-10 in double precision with random weights; the cost model and the memory estimate.

Models: the automatically built NH3 (an orbit gate on all 6 qubits), CH4 (on all 8) and H2O2, and the
synthetic ring models of the qubit scan (`siqml_cli.simulate.synthetic`); 10 and 12 qubit rings in
`make test-slow`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from qiskit.quantum_info import Statevector
from test_auto import MOLECULES, perturbed

from siqml_cli.errors import SiqmlError
from siqml_cli.models.auto import build_auto
from siqml_cli.models.spec import orbit_components
from siqml_cli.precision import double_precision_scope
from siqml_cli.simulate import Simulator, expectation_and_gradient
from siqml_cli.simulate.resources import check_resources, estimate
from siqml_cli.simulate.statevector import (
    MICRO_BATCH_BYTES,
    choose_layout,
    fuse_layer,
    fusion_candidates,
    grouped_transpose,
    kept_states,
    layout_seconds,
    make_layout,
)
from siqml_cli.simulate.synthetic import ring_spec

TOL = 1e-10


def auto_spec(molecule: str, layers: int = 1):
    species, reference = MOLECULES[molecule]
    return build_auto(species, reference, layers, 1, "broken", name=molecule)


def qiskit_reference(spec, weights, X):
    """Statevector of the bound circuit for each configuration, and the observable's expectation."""
    observable = spec.observable(weights)
    states = [Statevector(spec.bound_circuit(weights, x)) for x in X]
    return np.stack([s.data for s in states]), np.array([s.expectation_value(observable).real for s in states])


def assert_matches_qiskit(spec, X, fusions, seed: int = 4) -> None:
    """For each block size: the states equal Qiskit's up to one global phase per configuration (that of the
    encoding rotations), the energies to TOL."""
    weights = spec.random_weights(seed)
    states, energies = qiskit_reference(spec, weights, X)
    for fusion in fusions:
        sim = Simulator(spec, "double", fusion=fusion)
        mine = np.asarray(sim.states(weights, X))
        overlap = np.sum(mine.conj() * states, axis=1)
        np.testing.assert_allclose(np.abs(overlap), 1.0, rtol=0, atol=TOL, err_msg=f"block size {fusion}")
        np.testing.assert_allclose(mine * (overlap / np.abs(overlap))[:, None], states, rtol=0, atol=TOL,
                                   err_msg=f"block size {fusion}")
        np.testing.assert_allclose(np.asarray(sim.expectation(weights, X)), energies, rtol=0, atol=TOL,
                                   err_msg=f"block size {fusion}")


def ring_positions(k: int, seed: int) -> np.ndarray:
    """k water-like configurations (the ring models encode H2O's two O-H vectors)."""
    rng = np.random.default_rng(seed)
    return np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]) + rng.normal(scale=0.1, size=(k, 3, 3))


# --------------------------------------------------------------------------- agreement with Qiskit


@pytest.mark.parametrize("molecule,layers", [("nh3", 2), ("ch4", 1), ("h2o2", 1)])
def test_every_block_size_matches_qiskit_statevector(molecule, layers):
    """One product per gate (2), the cost model's choice, and the whole state as one block; NH3's and CH4's
    widest orbit gates (6 and 8 qubits) are wider than every smaller block and applied as their own."""
    spec = auto_spec(molecule, layers)
    X = perturbed(MOLECULES[molecule], 2, seed=3)
    chosen = choose_layout(spec, len(X), "double").fusion
    assert_matches_qiskit(spec, X, sorted({2, chosen, spec.n_qubits}))


@pytest.mark.parametrize("n_qubits", [6, 8])
def test_ring_models_match_qiskit_statevector(n_qubits):
    spec = ring_spec(n_qubits, layers=2)
    assert_matches_qiskit(spec, ring_positions(2, seed=n_qubits), [2, 5, n_qubits])


@pytest.mark.slow  # ~1 min: Qiskit's statevectors of the bound circuits and three compiles per size
@pytest.mark.parametrize("n_qubits", [10, 12])
def test_larger_ring_models_match_qiskit_statevector(n_qubits):
    spec = ring_spec(n_qubits, layers=2)
    assert_matches_qiskit(spec, ring_positions(2, seed=n_qubits), [3, choose_layout(spec, 2, "double").fusion, 7])


def test_wide_orbit_gates_are_blocks_of_their_own():
    """CH4's orbit gate on all 8 qubits stays one block, exactly once, whatever the block size."""
    spec = auto_spec("ch4")
    components = [pairs for c in spec.couplings for pairs in orbit_components(c.pairs)]
    assert max(len({q for pair in pairs for q in pair}) for pairs in components) == 8
    for fusion in fusion_candidates(spec):
        fused = fuse_layer(spec, fusion)
        assert sum(len(b.gates) for b in fused) == len(components)
        assert all(len(b.qubits) <= fusion or len(b.gates) == 1 for b in fused)
        assert any(len(b.qubits) == 8 for b in fused)


# --------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("molecule", ["nh3", "ring8"])
def test_micro_batches_give_the_same_derivatives(molecule):
    """Energies, forces and the weight gradient of the energy + force loss (mixed second derivatives) are the
    same computed in one pass and in rematerialised micro-batches (3 + 3 + 1 padded: 7 configurations)."""
    spec = ring_spec(8, layers=3) if molecule == "ring8" else auto_spec("nh3", 2)
    X = ring_positions(7, seed=1) if molecule == "ring8" else perturbed(MOLECULES["nh3"], 7, seed=1)
    weights = spec.random_weights(5)
    results = []
    with double_precision_scope():
        for size in (None, 3):
            sim = Simulator(spec, "double", micro_batch=size)
            assert sim.micro_batch(len(X), force_loss=True) == (size or len(X))

            def loss(w, sim=sim):
                f, grad = expectation_and_gradient(sim, w, jnp.asarray(X))
                energies = sim.expectation(w, jnp.asarray(X))
                return jnp.sum(f**2) + jnp.sum(grad**2) + jnp.sum(jnp.sin(energies)), (f, grad, energies)

            (value, outputs), dweights = jax.jit(jax.value_and_grad(loss, has_aux=True))(
                {k: jnp.asarray(v) for k, v in weights.items()})
            results.append((value, outputs, dweights))
    for a, b in zip(jax.tree_util.tree_leaves(results[0]), jax.tree_util.tree_leaves(results[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL)


# --------------------------------------------------------------------------- cost model and plan


def test_cost_model_picks_the_cheapest_layout_and_says_so():
    spec = ring_spec(12)
    for batch in (32, 256):
        chosen = choose_layout(spec, batch, "single")
        costs = {k: layout_seconds(spec, make_layout(spec, k), batch, "single") for k in fusion_candidates(spec)}
        assert costs[chosen.fusion] == min(costs.values())
        summary = Simulator(spec, "single").plan_summary(batch)
        assert "\n" not in summary and f"batch {batch}" in summary
        assert f"blocks of at most {chosen.fusion} qubits" in summary and "cost model" in summary
    assert "small-state path" in Simulator(ring_spec(4)).plan_summary(256)
    assert "(fixed)" in Simulator(spec, fusion=3).plan_summary(32)


def test_large_batches_of_large_states_run_in_micro_batches():
    assert Simulator(ring_spec(8), "single").micro_batch(256, force_loss=True) == 256
    large = Simulator(ring_spec(16), "single")
    size = large.micro_batch(256, force_loss=True)
    assert size < 256 and size * -(-256 // size) - 256 < -(-256 // size)  # equal chunks, little padding
    assert f"micro-batches of {large.micro_batch(256, False)} (energy loss) / {size}" in large.plan_summary(256)


@pytest.mark.parametrize("seed", range(4))
def test_grouped_transpose_is_the_transpose(seed):
    rng = np.random.default_rng(seed)
    shape = (3,) + (2,) * 7
    perm = (0,) + tuple(1 + rng.permutation(7))
    x = jnp.asarray(rng.normal(size=shape).reshape(3, -1))
    expected = jnp.transpose(x.reshape(shape), perm).reshape(3, -1)
    np.testing.assert_array_equal(np.asarray(grouped_transpose(x, shape, perm)), np.asarray(expected))


# --------------------------------------------------------------------------- memory


def test_micro_batches_bound_the_memory_of_large_states():
    """The states kept stay below MICRO_BATCH_BYTES whatever the batch: a 16-qubit model trains with forces at
    batch 32 within 4 GiB (single precision), a 20-qubit energy step at batch 32 fits too."""
    spec = ring_spec(16)
    layout = choose_layout(spec, 256, "single")
    per_configuration = kept_states(spec, layout, True) * 2**16 * 8
    assert estimate(spec, 256, "single", force_loss=True).state_bytes < MICRO_BATCH_BYTES + 256 * per_configuration / 8
    assert estimate(spec, 32, "single", force_loss=True).peak_bytes < 4 * 2**30
    assert estimate(ring_spec(20), 32, "single", force_loss=False).peak_bytes < 4 * 2**30


def test_a_model_beyond_memory_is_refused_with_the_estimate():
    """26 qubits in double precision: one configuration's states alone pass the memory of this machine."""
    with pytest.raises(SiqmlError) as error:
        check_resources(ring_spec(26), 32, "double", force_loss=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith("this needs about ")
    assert "26-qubit states x batch 32 with forces" in message
    assert "lower train.batch_size (now 32), train.precision=single" in message


# --------------------------------------------------------------------------- GPU


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


@pytest.mark.skipif(not _gpus(), reason="no GPU: install the `gpu` extra on a machine with one")
def test_the_gpu_computes_what_the_cpu_does():
    spec = ring_spec(8, layers=2)
    X = ring_positions(4, seed=2)
    weights = spec.random_weights(3)
    sim = Simulator(spec, "double")
    with double_precision_scope():
        on_cpu = jax.device_put(jnp.asarray(X), jax.devices("cpu")[0])
        on_gpu = jax.device_put(jnp.asarray(X), _gpus()[0])
        cpu = np.asarray(jax.jit(sim.expectation)(weights, on_cpu))
        gpu = jax.jit(sim.expectation)(weights, on_gpu)
        assert gpu.devices() == {_gpus()[0]}
    np.testing.assert_allclose(np.asarray(gpu), cpu, rtol=0, atol=TOL)
