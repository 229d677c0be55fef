"""The automatically built siVQLM (siqml_cli/models/auto.py): its group, frame, qubit and orbit counts, and the
numbers behind every symmetry claim, for NH3, CH4, H2O2, the water dimer and random small molecules.

Every check runs on one "broken" model per molecule with random weights: the atom permutations and inversion
are qubit permutations that SB(eps) commutes with, so they are checked with eps as drawn, and rotations and
reflections with eps = 0. One jitted energy-and-gradient per model evaluates all transformed copies of the
configurations (and the finite-difference steps) in one batch.
"""

from __future__ import annotations

import io

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import qasm3, qpy
from qiskit.quantum_info import Statevector
from scipy.spatial.transform import Rotation
from test_models import _qasm_name, _statevector_of, batched, central_differences

from siqml_cli.errors import SiqmlError
from siqml_cli.models.auto import auto_layout, auto_qubits, build_auto
from siqml_cli.models.blocks import heisenberg_interaction
from siqml_cli.models.graph import bond_graph, group_elements
from siqml_cli.models.spec import pair_orbits
from siqml_cli.models.water_dimer import GROUP_GENERATORS
from siqml_cli.simulate import expectation_and_gradient, make_simulator

TOL = 1e-10

NH3 = (("N", "H", "H", "H"), [[0.0, 0.0, 0.116], [0.0, 0.939, -0.271], [0.813, -0.470, -0.271],
                              [-0.813, -0.470, -0.271]])
_A = 1.09 / np.sqrt(3.0)  # tetrahedral C-H of 1.09 Angstrom
CH4 = (("C", "H", "H", "H", "H"), [[0.0, 0.0, 0.0], [_A, _A, _A], [-_A, -_A, _A], [-_A, _A, -_A], [_A, -_A, -_A]])
#: O-O 1.475, O-H 0.95 Angstrom; the first H on the first O
H2O2 = (("O", "O", "H", "H"), [[0.0, 0.7375, -0.0528], [0.0, -0.7375, -0.0528], [0.819, 0.817, 0.422],
                               [-0.819, -0.817, 0.422]])
#: H_a1 donates a hydrogen bond (H...O 1.95 Angstrom, not covalent) to O_b
DIMER = (("O", "H", "H", "O", "H", "H"), [[0.0, 0.0, 0.0], [0.957, 0.0, 0.0], [-0.240, 0.927, 0.0],
                                          [2.910, 0.0, 0.0], [3.150, 0.760, 0.550], [3.150, -0.760, 0.550]])
MOLECULES = {"nh3": NH3, "ch4": CH4, "h2o2": H2O2, "water_dimer": DIMER}
#: trainable layers of each molecule's tested model (one block each): small, to compile fast
LAYERS = [("nh3", 2), ("ch4", 1), ("h2o2", 1), ("water_dimer", 1)]


def perturbed(molecule, k: int, seed: int) -> np.ndarray:
    """k configurations near the reference: displaced (0.1 Angstrom), rotated, translated."""
    rng = np.random.default_rng(seed)
    x = np.asarray(molecule[1]) + rng.normal(scale=0.1, size=(k, len(molecule[0]), 3))
    rotations = Rotation.random(k, random_state=seed).as_matrix()
    return np.einsum("kij,kaj->kai", rotations, x) + rng.uniform(-2, 2, size=(k, 1, 3))


class Jitted:
    """One model, its simulator, and its energy and gradient jitted once: always called on `BATCH`
    configurations (chunks, the last one padded), so that it compiles once."""

    def __init__(self, spec):
        self.spec = spec
        self.sim = make_simulator(spec)
        self.f_grad = jax.jit(lambda w, x: expectation_and_gradient(self.sim, w, x))

    def __call__(self, weights, X):
        return batched(self.f_grad, weights, X)


def assert_symmetric(model: Jitted, elements, X: np.ndarray, seed: int) -> None:
    """Energy invariant and forces equivariant to TOL under a random rotation, a random reflection, inversion,
    a translation and every atom permutation in `elements`; forces equal minus the finite differences. One batch:
    with eps = 0 for the rotations and reflections, with eps as drawn for the rest."""
    spec = model.spec
    rng = np.random.default_rng(seed)
    weights = spec.random_weights(seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    normal = rng.normal(size=3)
    reflection = np.eye(3) - 2 * np.outer(normal, normal) / (normal @ normal)
    orthogonal = {"rotation": rotation, "reflection": reflection, "inversion": -np.eye(3)}
    shift = rng.uniform(-3, 3, size=3)
    n = len(X)

    zero_eps = dict(weights, eps=np.zeros_like(weights["eps"]))
    batch = np.concatenate([X] + [X @ q.T for q in orthogonal.values()])
    f, grad = model(zero_eps, batch)
    for k, (name, q) in enumerate(orthogonal.items(), start=1):
        np.testing.assert_allclose(f[k * n:(k + 1) * n], f[:n], rtol=0, atol=TOL, err_msg=name)
        np.testing.assert_allclose(grad[k * n:(k + 1) * n], grad[:n] @ q.T, rtol=0, atol=TOL, err_msg=name)

    copies = [X, -X, X + shift] + [X[:, list(p)] for p in elements]
    steps = central_differences(lambda Y: model(weights, Y)[0], X[:1])
    f, grad = model(weights, np.concatenate(copies))
    np.testing.assert_allclose(f[n:2 * n], f[:n], rtol=0, atol=TOL, err_msg="inversion with eps")
    np.testing.assert_allclose(f[2 * n:3 * n], f[:n], rtol=0, atol=TOL, err_msg="translation")
    np.testing.assert_allclose(grad[2 * n:3 * n], grad[:n], rtol=0, atol=TOL, err_msg="translation")
    np.testing.assert_allclose(grad[:n].sum(axis=1), 0.0, rtol=0, atol=TOL, err_msg="sum of forces")
    for k, p in enumerate(elements, start=3):
        np.testing.assert_allclose(f[k * n:(k + 1) * n], f[:n], rtol=0, atol=TOL, err_msg=f"permutation {p}")
        np.testing.assert_allclose(grad[k * n:(k + 1) * n], grad[:n][:, list(p)], rtol=0, atol=TOL,
                                   err_msg=f"permutation {p}")
    np.testing.assert_allclose(steps[0], grad[0], rtol=0, atol=1e-6 * max(1.0, np.abs(grad[0]).max()),
                               err_msg="finite differences")


def assert_statevector_agrees(model: Jitted, X: np.ndarray, seed: int) -> None:
    """The fast simulator equals Qiskit's Statevector of the bound circuit, with the trained observable."""
    spec = model.spec
    weights = spec.random_weights(seed)
    observable = spec.observable(weights)
    expected = [Statevector(spec.bound_circuit(weights, x)).expectation_value(observable).real for x in X]
    np.testing.assert_allclose(model(weights, X)[0], expected, rtol=0, atol=TOL)


_MODELS: dict = {}


def jitted(molecule: str, layers: int = 1, blocks: int = 1, **options) -> Jitted:
    key = (molecule, layers, blocks, tuple(sorted(options.items())))
    if key not in _MODELS:
        species, reference = MOLECULES[molecule]
        _MODELS[key] = Jitted(build_auto(species, reference, layers, blocks, "broken", name=molecule, **options))
    return _MODELS[key]


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize("molecule,origin,n_qubits,n_orbits,n_scales,widest", [
    ("nh3", 0, 6, 3, 1, 6), ("ch4", 0, 8, 3, 1, 8), ("h2o2", None, 8, 10, 2, 2), ("water_dimer", None, 12, 12, 2, 4)])
def test_frame_qubits_and_orbits(molecule, origin, n_qubits, n_orbits, n_scales, widest):
    """The atom fixed by the group (N, C) is the origin and is not encoded; without one, the centroid and every
    atom encoded. One weight per orbit of qubit pairs, one scale per orbit of encoded atoms."""
    species, reference = MOLECULES[molecule]
    layout = auto_layout(species, reference)
    spec = build_auto(species, reference, 1, 1)
    assert auto_qubits(species, reference) == spec.n_qubits == n_qubits
    assert layout.origin == origin
    assert (spec.n_weights_per_block, len(spec.observable_orbits), spec.n_scales) == (n_orbits, n_orbits, n_scales)
    assert layout.largest_gate_qubits() == widest
    pairs = [p for orbit in spec.observable_orbits for p in orbit]
    assert len(pairs) == len(set(pairs)) == n_qubits * (n_qubits - 1) // 2
    assert [c.pairs for c in spec.couplings] == list(spec.observable_orbits)
    assert not spec.symmetry_breaking and build_auto(species, reference, 1, 1, "broken").symmetry_breaking
    held = set(spec.observable_pairs)  # the trained observable starts at every encoded atom's own pair
    assert held == {(2 * k, 2 * k + 1) for k in range(n_qubits // 2)}
    assert spec.observable(spec.init_weights(0)).equiv(heisenberg_interaction(n_qubits, sorted(held)))


def test_automatic_dimer_has_the_hand_made_pair_orbits():
    """From its bond graph alone (two molecules, the hydrogen bond too long to count), the automatic dimer
    finds the group of models/water_dimer.py and the same 12 orbits of qubit pairs."""
    spec = build_auto(*DIMER, 1, 1)
    assert set(spec.observable_orbits) == set(pair_orbits(12, GROUP_GENERATORS))
    assert len(spec.observable_orbits) == 12


def test_bond_graph_groups():
    """NH3 and CH4: every permutation of the hydrogens. H2O2: only O1 <-> O2 together with H1 <-> H2; the larger
    group permutes identical atoms freely. Bonds use covalent radii times 1.2 (C-H at 1.09 Angstrom counts)."""
    assert len(group_elements(*NH3)) == 6 and len(group_elements(*CH4)) == 24
    assert set(bond_graph(*CH4).edges) == {(0, 1), (0, 2), (0, 3), (0, 4)}
    assert set(bond_graph(*H2O2).edges) == {(0, 1), (0, 2), (1, 3)}
    assert group_elements(*H2O2) == ((0, 1, 2, 3), (1, 0, 3, 2))
    assert set(group_elements(*H2O2, group="all")) == {(0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2)}
    assert set(bond_graph(*DIMER).edges) == {(0, 1), (0, 2), (3, 4), (3, 5)}


def test_bond_frame_measures_terminal_atoms_from_their_neighbour():
    species, reference = H2O2
    x = np.asarray(reference)
    vectors = build_auto(species, x, 1, 1, frame="bonds").centre(x)
    centroid = x.mean(axis=0)
    np.testing.assert_allclose(vectors, [x[0] - centroid, x[1] - centroid, x[2] - x[0], x[3] - x[1]], atol=1e-15)


def test_bad_input_is_a_one_line_error():
    with pytest.raises(SiqmlError, match="at least two atoms"):
        build_auto(("H",), [[0, 0, 0]], 1, 1)
    with pytest.raises(SiqmlError, match="frame=bonds"):
        build_auto(*H2O2, 1, 1, group="all", frame="bonds")
    with pytest.raises(SiqmlError, match="group must be one of bonds, all"):
        build_auto(*H2O2, 1, 1, group="graph")
    with pytest.raises(SiqmlError, match="symmetry must be one of full, broken"):
        build_auto(*H2O2, 1, 1, symmetry="none")
    with pytest.raises(SiqmlError, match="unknown element"):
        build_auto(("Q", "H"), [[0, 0, 0], [1, 0, 0]], 1, 1)
    with pytest.raises(SiqmlError, match="layers must be a positive integer"):
        build_auto(*H2O2, 0, 1)
    with pytest.raises(SiqmlError, match="one position per atom"):
        build_auto(("O", "H"), [[0, 0, 0]], 1, 1)


# --------------------------------------------------------------------------- symmetries and agreement


@pytest.mark.parametrize("molecule,layers", LAYERS)
def test_every_symmetry_holds_with_random_weights(molecule, layers):
    model = jitted(molecule, layers)
    assert_symmetric(model, group_elements(*MOLECULES[molecule]), perturbed(MOLECULES[molecule], 2, seed=1), seed=2)


@pytest.mark.parametrize("molecule,layers", LAYERS)
def test_simulator_matches_qiskit_statevector(molecule, layers):
    assert_statevector_agrees(jitted(molecule, layers), perturbed(MOLECULES[molecule], 1, seed=3), seed=4)


def test_exchange_outside_the_group_changes_the_energy():
    """H2O2's bond-graph group does not contain H1 <-> H2 alone (each H on its own O), so the check can fail;
    the group of all identical-atom permutations contains it, and that model keeps it."""
    X = perturbed(H2O2, 3, seed=5)
    swapped = X[:, [0, 1, 3, 2]]
    bonds = jitted("h2o2")
    weights = bonds.spec.random_weights(6)
    assert np.abs(bonds(weights, swapped)[0] - bonds(weights, X)[0]).max() > 1e-3
    free = jitted("h2o2", group="all")
    weights = free.spec.random_weights(6)
    np.testing.assert_allclose(free(weights, swapped)[0], free(weights, X)[0], rtol=0, atol=TOL)


@pytest.mark.parametrize("molecule,round_trip", [("nh3", False), ("h2o2", True)])
def test_circuit_exports_to_qpy_and_openqasm3(molecule, round_trip):
    """QPY round trip for both; OpenQASM 3 text for both, read back where the orbit gates are two-qubit gates
    (a wide exact orbit gate becomes a long generic decomposition)."""
    model = jitted(molecule, dict(LAYERS)[molecule])
    spec = model.spec
    qc, _ = spec.to_qiskit()
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    buffer.seek(0)
    (loaded,) = qpy.load(buffer)
    weights = spec.random_weights(7)
    x = perturbed(MOLECULES[molecule], 1, seed=8)
    f = model(weights, x)[0][0]
    values = dict(zip([p.name for p in qc.parameters], spec.parameter_values(qc, weights, x)[0]))
    assert abs(_statevector_of(loaded, values).expectation_value(spec.observable(weights)).real - f) <= TOL
    text = qasm3.dumps(qc)
    assert text.startswith("OPENQASM 3") and text.count("input float[64]") == qc.num_parameters
    if round_trip:
        pytest.importorskip("qiskit_qasm3_import")
        values = {_qasm_name(name): v for name, v in values.items()}
        sv = _statevector_of(qasm3.loads(text), values)
        assert abs(sv.expectation_value(spec.observable(weights)).real - f) <= TOL


# --------------------------------------------------------------------------- random molecules

ELEMENTS = ("H", "C", "N", "O")


def random_molecule(species, seed: int) -> np.ndarray:
    """Atoms in a box that shrinks with their number (so that most form bonds), no two closer than 0.8 Angstrom."""
    rng = np.random.default_rng(seed)
    side = 1.2 + 0.3 * len(species)
    while True:
        x = rng.uniform(-side / 2, side / 2, size=(len(species), 3))
        distances = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(species), 1)]
        if distances.min() >= 0.8:
            return x


@settings(max_examples=4, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(species=st.lists(st.sampled_from(ELEMENTS), min_size=2, max_size=5).map(tuple), seed=st.integers(0, 2**31),
       choice=st.sampled_from([("bonds", "auto"), ("bonds", "bonds"), ("all", "auto"), ("all", "centroid")]))
def test_random_molecules(species, seed, choice):
    group, frame = choice
    reference = random_molecule(species, seed)
    spec = build_auto(species, reference, 1, 1, "broken", group=group, frame=frame)
    assert spec.n_qubits == auto_qubits(species, reference, group, frame) <= 2 * len(species)
    model = Jitted(spec)
    molecule = (species, reference)
    elements = group_elements(species, reference, group)  # up to 5! = 120: a random dozen of them
    picked = np.random.default_rng(seed).permutation(len(elements))[:12]
    assert_symmetric(model, [elements[k] for k in picked], perturbed(molecule, 2, seed), seed)
    assert_statevector_agrees(model, perturbed(molecule, 1, seed + 1), seed)
