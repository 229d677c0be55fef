"""The generic VQLM of any molecule (siqml_cli/models/generic.py `build_auto`): the Z-matrix its features come from,
and, for NH3, CH4, H2O2 and the water dimer with random weights and a fitted scaling, rotation and translation
invariance, forces against finite differences, and the fast simulator against Qiskit's Statevector (NH3 and H2O2
on the dense path, 7 qubits; CH4 and the dimer gate by gate, 11 and 15 qubits).
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from qiskit.quantum_info import Statevector
from scipy.spatial.transform import Rotation
from test_auto import CH4, DIMER, H2O2, MOLECULES, NH3, Jitted, perturbed
from test_models import central_differences

from siqml_cli.config import parse_model
from siqml_cli.errors import SiqmlError
from siqml_cli.models import generic
from siqml_cli.simulate.generic import DENSE_QUBITS

TOL = 1e-10


def fitted(molecule: str, layers: int = 2, blocks: int = 1):
    """The automatic generic model, its scaling fitted on 40 configurations around the reference."""
    species, reference = MOLECULES[molecule]
    spec = generic.build_auto(molecule, species, reference, layers, blocks)
    return spec.fit(perturbed(MOLECULES[molecule], 40, seed=11))


_MODELS: dict = {}


def jitted(molecule: str) -> Jitted:
    if molecule not in _MODELS:
        _MODELS[molecule] = Jitted(fitted(molecule))
    return _MODELS[molecule]


@pytest.mark.parametrize("molecule,rows,n_features", [
    ("nh3", ((0,), (1, 0), (2, 0, 1), (3, 0, 1, 2)), 7),
    ("ch4", ((0,), (1, 0), (2, 0, 1), (3, 0, 1, 2), (4, 0, 1, 2)), 11),
    ("h2o2", ((0,), (1, 0), (2, 0, 1), (3, 1, 0, 2)), 7),
    # the second water joins at its O, bonded to the nearest placed atom (the donated H); O3-H1-O0 is a straight
    # line (the hydrogen bond), so its angle and the next dihedral take the other H
    ("water_dimer", ((0,), (1, 0), (2, 0, 1), (3, 1, 2, 0), (4, 3, 1, 2), (5, 3, 1, 2)), 15),
])
def test_zmatrix_rows_and_feature_count(molecule, rows, n_features):
    """3A - 6 internal coordinates, each dihedral as two features (cos, sin); one qubit per feature."""
    species, reference = MOLECULES[molecule]
    assert generic.zmatrix(species, reference) == rows
    spec = generic.build_auto(molecule, species, reference, 1, 1)
    n_dihedrals = sum(len(r) == 4 for r in rows)
    assert spec.n_features == 3 * len(species) - 6 + n_dihedrals == n_features == spec.n_qubits
    assert spec.feature_map.rotations and not spec.feature_map.reflections


def test_feature_names_and_values_at_the_reference():
    spec = generic.build_auto("h2o2", *H2O2, 1, 1)
    assert spec.feature_map.names == ("r(O1-O0)", "r(H2-O0)", "angle(H2-O0-O1)", "r(H3-O1)", "angle(H3-O1-O0)",
                                      "cos dihedral(H3-O1-O0-H2)", "sin dihedral(H3-O1-O0-H2)")
    x = np.asarray(H2O2[1])
    features = np.asarray(spec.feature_map.raw(x))
    u, v = x[2] - x[0], x[1] - x[0]
    assert features[0] == pytest.approx(np.linalg.norm(x[1] - x[0]), abs=1e-14)
    assert features[2] == pytest.approx(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)), abs=1e-12)
    b0, b1, b2 = x[3] - x[1], x[0] - x[1], x[2] - x[0]  # the dihedral from its textbook formula
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    phi = np.arctan2(np.cross(n1, n2) @ b1 / np.linalg.norm(b1), n1 @ n2)
    np.testing.assert_allclose(features[5:], [np.cos(phi), np.sin(phi)], atol=1e-14)


@pytest.mark.parametrize("molecule", ["ch4", "water_dimer"])
def test_reflection_flips_the_sines_only(molecule):
    """A reflection keeps every distance, angle and cosine and changes the sign of every sine; a triatomic
    (no dihedral) keeps all its features."""
    spec = generic.build_auto(molecule, *MOLECULES[molecule], 1, 1)
    x = perturbed(MOLECULES[molecule], 3, seed=4)
    mirror = np.diag([1.0, -1.0, 1.0])
    sign = np.array([-1.0 if name.startswith("sin") else 1.0 for name in spec.feature_map.names])
    np.testing.assert_allclose(np.asarray(spec.feature_map.raw(x @ mirror)), sign * np.asarray(spec.feature_map.raw(x)),
                               rtol=0, atol=1e-12)
    water = generic.build_auto("h2o", ("O", "H", "H"), DIMER[1][:3], 1, 1)
    assert water.feature_map.reflections and water.n_features == 3
    y = perturbed((("O", "H", "H"), DIMER[1][:3]), 3, seed=5)
    np.testing.assert_allclose(np.asarray(water.feature_map.raw(y @ mirror)), np.asarray(water.feature_map.raw(y)),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("molecule", ["nh3", "ch4", "h2o2", "water_dimer"])
def test_rotation_translation_invariance_and_forces(molecule):
    """With random weights: energies invariant and forces equivariant under a random rotation and translation to
    1e-10, forces sum to zero and equal minus the finite differences; a reflection changes the energy (the sines)."""
    model = jitted(molecule)
    weights = model.spec.random_weights(3)
    X = perturbed(MOLECULES[molecule], 2, seed=12)
    n = len(X)
    rotation = Rotation.random(random_state=13).as_matrix()
    shift = np.random.default_rng(14).uniform(-3, 3, size=3)
    f, grad = model(weights, np.concatenate([X, X @ rotation.T + shift, X @ np.diag([-1.0, 1.0, 1.0])]))
    np.testing.assert_allclose(f[n:2 * n], f[:n], rtol=0, atol=TOL)
    np.testing.assert_allclose(grad[n:2 * n], grad[:n] @ rotation.T, rtol=0, atol=TOL)
    np.testing.assert_allclose(grad[:n].sum(axis=1), 0.0, rtol=0, atol=TOL)
    assert np.abs(f[2 * n:] - f[:n]).max() > 1e-4  # reflections are not built in
    steps = central_differences(lambda Y: model(weights, Y)[0], X[:1])
    np.testing.assert_allclose(steps[0], grad[0], rtol=0, atol=1e-6 * max(1.0, np.abs(grad[0]).max()))
    assert np.abs(grad[0]).max() > 1e-3  # not vacuous


@pytest.mark.parametrize("molecule", ["nh3", "ch4", "h2o2", "water_dimer"])
def test_simulator_equals_qiskit_statevector(molecule):
    model = jitted(molecule)
    spec = model.spec
    assert model.sim.dense == (spec.n_qubits <= DENSE_QUBITS)
    weights = spec.random_weights(5)
    X = perturbed(MOLECULES[molecule], 2, seed=15)
    observable = spec.observable()
    expected = [Statevector(spec.bound_circuit(weights, x)).expectation_value(observable).real for x in X]
    np.testing.assert_allclose(model(weights, X)[0], expected, rtol=0, atol=TOL)


def test_options_rebuild_the_model():
    """model.json holds species and reference geometry (JSON lists); `build_auto` from them and the fitted scaling
    gives the same features and energies."""
    spec = fitted("nh3")
    options = json.loads(json.dumps(spec.options()))
    assert options["species"] == list(NH3[0]) and np.allclose(options["reference_geometry"], NH3[1])
    model = parse_model({k: options[k] for k in ("features", "feature_range", "periodize")})
    rebuilt = generic.build_auto("nh3", options["species"], options["reference_geometry"], spec.layers, spec.blocks,
                                 model, options["feature_min"], options["feature_max"])
    x = perturbed(NH3, 3, seed=16)
    np.testing.assert_array_equal(np.asarray(rebuilt.scaled_features(x)), np.asarray(spec.scaled_features(x)))
    assert rebuilt.options() == spec.options()
    assert "species" not in generic.build("h2o", 1, 1).options()  # the paper's models save what they did


def test_bad_settings_are_one_line_errors():
    with pytest.raises(SiqmlError, match="model.periodize=true needs mirrored geometries.*periodize=false"):
        generic.build_auto("ch4", *CH4, 1, 1, parse_model({"periodize": True}))
    with pytest.raises(SiqmlError, match="model.features=cartesian exists for h2o, lih only"):
        generic.build_auto("ch4", *CH4, 1, 1, parse_model({"features": "cartesian"}))
    with pytest.raises(SiqmlError, match="feature_min has 3 entries, the Z-matrix features of ch4 are 11"):
        generic.build_auto("ch4", *CH4, 1, 1, feature_min=[0, 1, 2], feature_max=[1] * 11)
    with pytest.raises(SiqmlError, match="one position per atom"):
        generic.build_auto("nh3", NH3[0], NH3[1][:3], 1, 1)
    with pytest.raises(SiqmlError, match="layers must be a positive integer"):
        generic.build_auto("nh3", *NH3, 0, 1)


def test_wide_models_compile_one_layer():
    """The gate-by-gate path scans over layers: a deeper model traces no more operations."""
    spec = fitted("ch4", layers=1)
    deeper = fitted("ch4", layers=4)
    x = perturbed(CH4, 1, seed=17)

    def equations(s):
        sim = Jitted(s).sim
        return len(jax.make_jaxpr(lambda w: sim.expectation(w, x))(s.random_weights(0)).eqns)

    assert equations(deeper) == equations(spec)
