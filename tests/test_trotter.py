"""Product-formula export of wide orbit gates (ModelSpec.to_qiskit(orbit_synthesis="trotter"), spec.trotter_error).

The exact export stays the default and equal to the fast simulator; the measured error is the distance, up to a
global phase, of Qiskit's Lie-Trotter / Suzuki-Trotter circuit from the exact gate, it falls as 1/steps (order 1)
and 1/steps^2 (order 2), it bounds what the exported circuit computes, and the circuits of the automatic NH3, CH4
and H2O2 models, bound with random weights, export to QPY and OpenQASM 3 and read back unchanged.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.linalg
from qiskit import QuantumCircuit, qasm3, qpy
from qiskit.quantum_info import Operator, Statevector
from scipy.optimize import minimize_scalar
from test_auto import MOLECULES, assert_statevector_agrees, jitted, perturbed

from siqml_cli.errors import SiqmlError
from siqml_cli.models import blocks
from siqml_cli.models.auto import build_auto
from siqml_cli.models.spec import trotter_error

TOL = 1e-10


def auto(molecule: str, layers: int = 1):
    return build_auto(*MOLECULES[molecule], layers, 1, "broken", name=molecule)


def small_weights(spec, seed: int, scale: float = 0.1) -> dict:
    """Random weights with the Heisenberg angles shrunk into the regime where product formulae converge."""
    weights = spec.random_weights(seed)
    return dict(weights, theta=scale * weights["theta"])


def phase_free_distance(a: np.ndarray, b: np.ndarray) -> float:
    """min over phi of ||a - e^(i phi) b||_2 by search: a grid, then a bounded minimisation around its best."""
    def distance(phi):
        return np.linalg.norm(a - np.exp(1j * phi) * b, ord=2)

    grid = np.linspace(-np.pi, np.pi, 721)
    best = grid[np.argmin([distance(phi) for phi in grid])]
    return float(minimize_scalar(distance, bounds=(best - 0.01, best + 0.01), method="bounded",
                                 options={"xatol": 1e-10}).fun)


def same_circuit(a: QuantumCircuit, b: QuantumCircuit) -> bool:
    """The same gates on the same qubits with the same parameters (each `to_qiskit` call makes its own
    `ParameterVector`s, so the circuits are compared by names and values, not by `==`)."""
    def gates(qc):
        return [(i.operation.name, [qc.find_bit(q).index for q in i.qubits],
                 [str(p) if not isinstance(p, np.ndarray) else p.tobytes() for p in i.operation.params])
                for i in qc.data]

    return gates(a) == gates(b)


def test_exact_is_the_default_and_equals_the_simulator():
    spec = auto("nh3")
    assert same_circuit(spec.to_qiskit()[0], spec.to_qiskit(orbit_synthesis="exact", trotter_steps=5)[0])
    assert not same_circuit(spec.to_qiskit()[0], spec.to_qiskit(orbit_synthesis="trotter")[0])
    assert_statevector_agrees(jitted("nh3", 2), perturbed(MOLECULES["nh3"], 1, seed=3), seed=4)


@pytest.mark.parametrize("theta", [0.05, 0.4, -1.3])
def test_gate_distance_is_the_phase_free_operator_norm_distance(theta):
    """The closed form (the arc of the eigenphases of E^dagger T) equals a direct minimisation over the phase."""
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3)]
    exact = scipy.linalg.expm(-1j * theta * blocks.heisenberg_generator(4, pairs))
    circuit = QuantumCircuit(4)
    blocks.trotter_orbit_gate(circuit, theta, pairs, 1, 1)
    expected = phase_free_distance(exact, Operator(circuit).data)
    assert expected > 1e-3
    assert blocks.trotter_distance(theta, pairs, 1, 1) == pytest.approx(expected, abs=1e-8)
    assert blocks.trotter_distance(theta, pairs[:1], 1, 1) < 1e-12  # one pair: XX, YY, ZZ commute


@pytest.mark.parametrize("molecule", ["nh3", "ch4"])
def test_error_falls_with_steps(molecule):
    """Doubling the steps halves the error of Lie-Trotter and quarters that of second-order Suzuki-Trotter."""
    spec = auto(molecule)
    weights = small_weights(spec, 1)
    for order, ratio in ((1, 0.5), (2, 0.25)):
        errors = [trotter_error(spec, weights, steps, order) for steps in (1, 2, 4)]
        assert all(e.gates == 3 for e in errors)  # every orbit of NH3 and CH4 is one wide gate
        maxima = np.array([e.max_gate for e in errors])
        assert maxima[0] > 1e-2
        np.testing.assert_allclose(maxima[1:] / maxima[:-1], ratio, rtol=0.2)
        assert all(e.circuit_bound >= e.max_gate for e in errors)
    assert trotter_error(spec, weights, 4, 2).max_gate < trotter_error(spec, weights, 4, 1).max_gate / 5


def test_error_bounds_the_exported_circuit():
    """The whole Trotterised circuit is within `circuit_bound` of the exact one (up to a phase), and its energy
    within 2 ||O|| circuit_bound of the fast simulator, and differs from it (the check is not vacuous)."""
    model = jitted("nh3", 2)
    spec = model.spec
    weights = small_weights(spec, 2, scale=0.3)
    x = perturbed(MOLECULES["nh3"], 1, seed=5)
    error = trotter_error(spec, weights, 2, 1)
    exact = Operator(spec.bound_circuit(weights, x[0])).data
    trotter = Operator(spec.bound_circuit(weights, x[0], orbit_synthesis="trotter", trotter_steps=2,
                                          trotter_order=1)).data
    assert blocks.trotter_distance(0.0, [(0, 1), (0, 2)], 1, 1) < 1e-12
    assert phase_free_distance(exact, trotter) <= error.circuit_bound + 1e-9
    observable = spec.observable(weights)
    norm = np.abs(np.linalg.eigvalsh(observable.to_matrix())).max()
    simulated = model(weights, x)[0][0]
    exported = Statevector(spec.bound_circuit(weights, x[0], orbit_synthesis="trotter", trotter_steps=2,
                                              trotter_order=1)).expectation_value(observable).real
    assert 1e-6 < abs(exported - simulated) <= 2 * norm * error.circuit_bound


@pytest.mark.parametrize("molecule", ["nh3", "ch4", "h2o2"])
def test_trotter_circuits_export_to_qpy_and_openqasm3(molecule):
    """Bound with random weights: QPY reads back to the same state, OpenQASM 3 to it up to a global phase.
    H2O2's orbit gates are single pairs, so its Trotter export is its exact one."""
    spec = auto(molecule)
    weights = spec.random_weights(6)
    x = perturbed(MOLECULES[molecule], 1, seed=7)[0]
    qc = spec.bound_circuit(weights, x, orbit_synthesis="trotter", trotter_steps=2)
    assert qc.num_parameters == 0 and not {"unitary", "PauliEvolution"} & set(qc.count_ops())
    state = Statevector(qc)
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    buffer.seek(0)
    (loaded,) = qpy.load(buffer)
    np.testing.assert_allclose(Statevector(loaded).data, state.data, rtol=0, atol=TOL)
    text = qasm3.dumps(qc)
    assert text.startswith("OPENQASM 3")
    read = Statevector(qasm3.loads(text))  # OpenQASM 3 text drops the global phase
    assert abs(abs(np.vdot(read.data, state.data)) - 1) < TOL
    if molecule == "h2o2":
        assert same_circuit(spec.to_qiskit("trotter", 3, 4)[0], spec.to_qiskit()[0])
        assert trotter_error(spec, weights).gates == 0


def test_bad_options_are_one_line_errors():
    spec = auto("nh3")
    with pytest.raises(SiqmlError, match="orbit_synthesis must be one of exact, trotter, got 'pade'"):
        spec.to_qiskit("pade")
    with pytest.raises(SiqmlError, match="trotter_steps must be a positive integer, got 0"):
        spec.to_qiskit("trotter", 0)
    with pytest.raises(SiqmlError, match=r"trotter_order must be 1 \(Lie-Trotter\) or even"):
        trotter_error(spec, spec.random_weights(0), 1, 3)


def test_backend_runs_the_trotterised_circuit_and_records_its_error():
    """backend.orbit_synthesis=trotter: exact Aer runs the product formula, whose energies differ from the fast
    simulator's by no more than the recorded bound allows; the label and the record say so."""
    from siqml_cli.backends.forcefield import BackendForceField
    from siqml_cli.backends.settings import backend_settings
    from siqml_cli.forcefield import ForceField, LabelScaler

    spec = auto("nh3")
    weights = small_weights(spec, 8, scale=0.3)
    forcefield = ForceField(spec, weights, LabelScaler(e_min=-8.0, e_max=-7.0, out_lo=-0.8, out_hi=0.8))
    x = perturbed(MOLECULES["nh3"], 2, seed=9)
    exact = forcefield.predict(x).energies
    settings = backend_settings({"kind": "aer", "forces": "none", "orbit_synthesis": "trotter", "trotter_steps": 2})
    assert settings.label == "aer-exact-trotter2x2"
    on_aer = BackendForceField(forcefield, settings)
    recorded = on_aer.record()["trotter_error"]
    assert recorded == {"max_gate": on_aer.trotter.max_gate, "circuit_bound": on_aer.trotter.circuit_bound,
                        "gates": 3}
    assert recorded == vars(trotter_error(spec, weights, 2, 2))
    assert on_aer.trotter_line().startswith("aer-exact-trotter2x2: 3 orbit gates as product formulae (order 2, "
                                            f"2 steps): largest gate error {recorded['max_gate']:.2e}, whole circuit")
    norm = np.abs(np.linalg.eigvalsh(spec.observable(weights).to_matrix())).max()
    difference = np.abs(on_aer.predict(x).energies - exact)
    assert np.all(difference > 1e-8)
    assert np.all(difference <= forcefield.scaler.slope * 2 * norm * recorded["circuit_bound"])
    exact_export = BackendForceField(forcefield, backend_settings({"kind": "aer", "forces": "none"}))
    assert exact_export.trotter is None and exact_export.trotter_line() is None
    assert exact_export.record()["trotter_error"] is None
    with pytest.raises(SiqmlError, match=r"backend.trotter_order must be 1 \(Lie-Trotter\) or even"):
        backend_settings({"kind": "aer", "orbit_synthesis": "trotter", "trotter_order": 3})
