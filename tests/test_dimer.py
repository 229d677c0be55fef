"""The 12-qubit water dimer siVQLM (docs/models.md, Sec. II.6 of the paper): its symmetries, its agreement with the
Qiskit circuit, that it couples the two molecules, and that the checks catch a model that does not
share weights over an orbit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from siqml_cli.data import read_dataset
from siqml_cli.data.generate import sample
from siqml_cli.errors import SiqmlError
from siqml_cli.models import blocks, build_model
from siqml_cli.models.spec import Coupling, orbit_components
from siqml_cli.models.water_dimer import GROUP_GENERATORS
from siqml_cli.simulate import Simulator
from siqml_cli.simulate.statevector import fuse_layer
from siqml_cli.symmetry import symmetry_table

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

PARAMS = {"r_oh": (0.92, 1.06), "angle_deg": (98.0, 112.0), "r_oo": (2.65, 3.5)}


@pytest.fixture(scope="module")
def configs() -> np.ndarray:
    return sample("water_dimer", 6, seed=11, params=PARAMS)


#: the reference construction, and the shipped defaults (configs/molecule/water_dimer.yaml)
PAPER = {"frame": "midpoint", "atom_readout": False, "observable": "fixed"}
DEFAULT = {"frame": "bonds", "atom_readout": True, "observable": "trained"}
FIXED = dict(DEFAULT, observable="fixed")


@pytest.mark.parametrize("symmetry,options,seed", [("full", PAPER, 1), ("broken", DEFAULT, 2), ("full", DEFAULT, 3),
                                                   ("broken", FIXED, 4)])
def test_every_required_invariance_holds_with_random_weights(configs, symmetry, options, seed):
    """Rotations, mirror, inversion, translation, both H exchanges and the molecule exchange (with any
    eps: they are qubit permutations that SB commutes with), zero net force and finite differences,
    for the reference construction and for the default frame and observable (trained, with random weights)."""
    spec = build_model("water_dimer", symmetry, 2, 2, options)
    table = symmetry_table(spec, spec.random_weights(seed), configs, seed=seed)
    required = table[table["required"] == "yes"]
    assert set(required["check"]) >= {"inversion r -> -r", "exchange molecule a <-> b", "exchange H_a1 <-> H_a2",
                                      "exchange H_b1 <-> H_b2", "rotation about z", "translation"}
    assert (required["result"] == "ok").all(), table.to_string()
    if symmetry == "broken":  # eps != 0 breaks generic rotations, and the check sees it
        assert table.set_index("check").loc["rotation (energy)", "max relative error"] > 1e-4


def test_check_catches_a_dimer_without_weight_sharing(configs):
    """Give molecule b's H-H gates their own weight: the molecule exchange must then fail."""
    spec = build_model("water_dimer", "full", 2, 1)
    hh = next(c for c in spec.couplings if c.weight == 2)
    split = (Coupling(hh.pairs[:2], 2), Coupling(hh.pairs[2:], spec.n_weights_per_block))
    broken = dataclasses.replace(spec, couplings=tuple(c for c in spec.couplings if c is not hh) + split)
    table = symmetry_table(broken, broken.random_weights(3), configs).set_index("check")
    assert table.loc["exchange molecule a <-> b", "result"] == "FAIL"
    assert table.loc["exchange H_a1 <-> H_a2", "result"] == "ok"


def test_check_catches_a_trained_observable_that_splits_an_orbit(configs):
    """Give the O-H star pairs of molecule b their own observable weight: the molecule exchange must then fail."""
    spec = build_model("water_dimer", "full", 2, 1, DEFAULT)
    stars = next(o for o in spec.observable_orbits if (0, 2) in o)
    split = tuple(o for o in spec.observable_orbits if o is not stars) + (
        tuple(p for p in stars if p[0] < 6), tuple(p for p in stars if p[0] >= 6))
    broken = dataclasses.replace(spec, observable_orbits=split)
    table = symmetry_table(broken, broken.random_weights(3), configs).set_index("check")
    assert table.loc["exchange molecule a <-> b", "result"] == "FAIL"
    assert table.loc["exchange H_a1 <-> H_a2", "result"] == "ok"


def test_trained_observable_orbits_cover_every_pair_once_and_start_as_the_fixed_observable(configs):
    spec = build_model("water_dimer", "broken", 2, 1, DEFAULT)
    pairs = [p for o in spec.observable_orbits for p in o]
    assert len(pairs) == len(set(pairs)) == 66 and len(spec.observable_orbits) == 12
    for orbit in spec.observable_orbits:  # each orbit is mapped onto itself by every generator of the group
        for g in GROUP_GENERATORS:
            assert {tuple(sorted((g[i], g[j]))) for i, j in orbit} == set(orbit)
    fixed = build_model("water_dimer", "broken", 2, 1, FIXED)
    weights = spec.init_weights(0)
    assert spec.observable(weights).equiv(fixed.observable())
    np.testing.assert_allclose(np.asarray(Simulator(spec).expectation(weights, configs)),
                               np.asarray(Simulator(fixed).expectation(fixed.init_weights(0), configs)), atol=1e-12)


@pytest.mark.parametrize("symmetry,options", [("full", PAPER), ("broken", DEFAULT), ("broken", FIXED)])
def test_simulator_matches_qiskit_statevector(symmetry, options):
    """The fast simulator and the exported circuit (with its exact star gates) give the same energy."""
    spec = build_model("water_dimer", symmetry, 2, 2, options)
    weights = spec.random_weights(5)
    positions = read_dataset(REPO_ROOT / "data" / "water_dimer.h5", "water_dimer").positions[:3]
    circuit, _ = spec.to_qiskit()
    observable = spec.observable(weights)
    values = spec.parameter_values(circuit, weights, positions)
    expected = [Statevector(circuit.assign_parameters(v)).expectation_value(observable).real for v in values]
    np.testing.assert_allclose(np.asarray(Simulator(spec).expectation(weights, positions)), expected, atol=1e-10)


@pytest.mark.parametrize("options", [PAPER, DEFAULT])
def test_pair_copies_and_three_bases_read_the_same_energy(configs, monkeypatch, options):
    """The simulator's two readouts of the observable (one transposed copy of the state per pair, or the
    probabilities in the Z, X and Y bases) are two computations of one expectation."""
    from siqml_cli.simulate import statevector

    spec = build_model("water_dimer", "broken", 1, 1, options)
    weights = spec.random_weights(6)
    energies = {}
    for threshold in (0, 10**6):
        monkeypatch.setattr(statevector, "SWAP_READOUT_PAIRS", threshold)
        sim = Simulator(spec)
        energies[sim.readout_by_bases] = np.asarray(sim.expectation(weights, configs))
    np.testing.assert_allclose(energies[True], energies[False], atol=1e-12)


def test_star_gate_is_the_exponential_of_the_orbit_sum():
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator
    from scipy.linalg import expm

    pairs = ((0, 1), (0, 2))
    qc = QuantumCircuit(3)
    blocks.orbit_gate(qc, 0.37, pairs)
    target = expm(-0.37j * blocks.heisenberg_generator(3, pairs))
    assert Operator(qc).equiv(Operator(target))  # equal up to the global phase of the dropped identity term


def test_fused_layer_keeps_each_gate_once_and_stays_small():
    spec = build_model("water_dimer", "full", 1, 2)
    fused = fuse_layer(spec, 6)
    n_gates = sum(len(orbit_components(c.pairs)) for c in spec.couplings) * spec.blocks
    assert sum(len(b.gates) for b in fused) == n_gates
    assert max(len(b.qubits) for b in fused) <= 6
    assert [b.qubits for b in fuse_layer(build_model("water_dimer", "full", 1, 1), 6)] == [
        (0, 1, 6, 7), (0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11)]


@pytest.mark.parametrize("options", [PAPER, DEFAULT])
def test_the_circuit_couples_the_two_molecules(configs, options):
    """The energy is not a sum of per-molecule terms: a mixed second difference (move an H of
    molecule a, and an H of molecule b) is clearly non-zero."""
    spec = build_model("water_dimer", "full", 2, 1, options)
    energy = jax.jit(Simulator(spec).expectation)
    weights = {k: jnp.asarray(v) for k, v in spec.random_weights(7).items()}
    x = configs[0]
    h = 0.05
    da, db = np.zeros_like(x), np.zeros_like(x)
    da[1, 0], db[4, 1] = h, h
    batch = np.stack([x + da + db, x + da - db, x - da + db, x - da - db])
    fpp, fpm, fmp, fmm = np.asarray(energy(weights, batch))
    mixed = (fpp - fpm - fmp + fmm) / (4 * h * h)
    assert abs(mixed) > 1e-3, mixed


def test_observable_spectrum_bounds():
    spec = build_model("water_dimer", "full", 1, 1)
    low, high = spec.observable_range
    # two O-O pairs and eight O-H pairs: at most 10 * 1 and at least 10 * -3
    assert -30 <= low < -10 and 1 < high <= 10 + 1e-9
    psi = Statevector.from_label("0" * 12)  # |0...0> is a ferromagnetic state: every H_ij gives +1
    assert np.isclose(psi.expectation_value(spec.observable()).real, high)


def test_bond_frame_measures_each_hydrogen_from_its_own_oxygen(configs):
    x = configs[0]
    vectors = np.asarray(build_model("water_dimer", "full", 1, 1, {"frame": "bonds"}).centre(x))
    midpoint = (x[0] + x[3]) / 2
    np.testing.assert_allclose(vectors, [x[0] - midpoint, x[1] - x[0], x[2] - x[0], x[3] - midpoint, x[4] - x[3],
                                         x[5] - x[3]], atol=1e-12)


def test_atom_readout_adds_each_atoms_own_pair_to_the_observable():
    paper, default = (build_model("water_dimer", "full", 1, 1, o) for o in (PAPER, DEFAULT))
    assert set(default.observable_pairs) - set(paper.observable_pairs) == {(2 * k, 2 * k + 1) for k in range(6)}
    assert default.observable_range[0] < paper.observable_range[0]


def test_options_are_saved_and_checked():
    assert build_model("water_dimer", "full", 1, 1, {"frame": "bonds"}).options() == {
        "frame": "bonds", "atom_readout": False, "observable": "fixed"}
    with pytest.raises(SiqmlError, match="model.frame must be one of midpoint, bonds"):
        build_model("water_dimer", "full", 1, 1, {"frame": "oxygen"})
    with pytest.raises(SiqmlError, match="model.observable must be one of fixed, trained"):
        build_model("water_dimer", "full", 1, 1, {"observable": "free"})
    for option in ({"frame": "bonds"}, {"observable": "trained"}):
        with pytest.raises(SiqmlError, match="apply to the water dimer only"):
            build_model("h2o", "full", 1, 1, option)


def test_tested_defaults_are_the_shipped_ones():
    from omegaconf import OmegaConf

    for molecule in ("water_dimer", "water_dimer_cut"):  # the cut is learned by the dimer's model as shipped
        model = OmegaConf.load(REPO_ROOT / "configs" / "molecule" / f"{molecule}.yaml").model
        assert {k: model[k] for k in DEFAULT} == DEFAULT


def test_estimator_qnn_runs_the_dimer_circuit_on_aer(configs):
    """Training on backend=aer builds an EstimatorQNN of the dimer circuit; Aer has no PauliEvolutionGate,
    so the QNN gets it decomposed; a trained observable is measured term by term and weighed; its energies
    are the fast simulator's."""
    from siqml_cli.backends.settings import backend_settings
    from siqml_cli.train.qnn import QnnModel

    spec = build_model("water_dimer", "full", 1, 1, DEFAULT)
    weights = spec.random_weights(3)
    qnn = QnnModel(spec, backend_settings({"kind": "aer"}))
    x = configs[:2]
    terms = qnn.qnn.forward(np.asarray(qnn._encodings(weights, x)), qnn._weight_vector(weights))
    energies = terms @ weights["observable"]
    np.testing.assert_allclose(energies, np.asarray(Simulator(spec).expectation(weights, jnp.asarray(x))), atol=1e-9)


@pytest.mark.slow  # parameter shift over every angle of the 12-qubit circuit on Aer
def test_qnn_loss_gradient_with_a_trained_observable_equals_fast_simulator(configs, assert_qnn_gradient_matches_jax):
    """EstimatorQNN training of the trained observable: the weighed terms and the chain rule give the loss
    and the gradient of every weight (circuit angles, scales alpha, observable weights) that JAX gives."""
    spec = build_model("water_dimer", "full", 1, 1, DEFAULT)
    assert_qnn_gradient_matches_jax(spec, spec.random_weights(9), configs[:1], np.array([-0.7]), atol=1e-7)
