"""Numerical checks of the siVQLMs (docs/models.md, "What is checked").

For LiH and H2O, with random weights (and the initialisation) and random configurations:
rotation / reflection / translation invariance of f and the matching equivariance of its
gradient, the H1 <-> H2 exchange, symmetry breaking by SB(eps), finite differences, agreement of
the JAX simulator with Qiskit (Statevector and Aer), the circuit exports, and the building blocks.
Tests that show a symmetry check *can* fail sit next to the checks they validate.

Speed: each model's f-and-gradient is jitted once (one XLA compile per model) and always called
on a batch padded to `BATCH` configurations, so hypothesis examples cost milliseconds after the
first. The un-jitted public calls (`Simulator.expectation`, `Simulator.states`) are exercised by
the Qiskit and Aer comparisons; the un-jitted `expectation_and_gradient` by a `slow` test.
"""

from __future__ import annotations

import dataclasses
import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from qiskit import QuantumCircuit, qasm3, qpy
from qiskit.circuit.library import UGate
from qiskit.quantum_info import Operator, Statevector
from scipy.spatial.transform import Rotation
from scipy.stats import unitary_group

from siqml_cli.models import blocks, build_model
from siqml_cli.models.spec import Coupling, Encoding
from siqml_cli.simulate import Simulator, expectation_and_gradient

LAYERS, BLOCKS = 2, 2
BATCH = 48  # every jitted call sees exactly this batch size: one compile per model
K = 16  # configurations per hypothesis example (with its transformed copies, within one BATCH)
TOL = 1e-10

#: models whose symmetry claims hold with eps = 0 (for 'broken', eps is set to zero)
EPS0_MODELS = [("lih", "full"), ("lih", "broken"), ("h2o", "full"), ("h2o", "broken"), ("h2o", "rotation")]
#: the same models, for properties that hold for any eps ('broken' keeps its random nonzero eps)
ALL_MODELS = EPS0_MODELS
EXCHANGE_MODELS = [("h2o", "full"), ("h2o", "broken")]
BROKEN_MODELS = [("lih", "broken"), ("h2o", "broken")]
N_ATOMS = {"lih": 2, "h2o": 3}

SETTINGS = settings(max_examples=15, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHEAP = settings(max_examples=40, deadline=None, database=None)

seeds = st.integers(0, 2**32 - 1)
#: which weights an example uses: generic random draws mostly, the initialisation sometimes
weight_choice = st.tuples(st.sampled_from(["random", "random", "random", "init"]), seeds)


def positions(molecule: str, k: int = K):
    """k configurations in a 6 Angstrom box; every coordinate drawn (no fill value), so
    hypothesis also tries coincident atoms, atoms on the axes and other special cases."""
    coord = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float64, (k, N_ATOMS[molecule], 3), elements=coord, fill=st.nothing())


def generic_configs(molecule: str, k: int, seed: int) -> np.ndarray:
    """Generic (non-degenerate) configurations: bonds of 0.7-2.5 A in random directions."""
    rng = np.random.default_rng(seed)
    origin = rng.uniform(-2, 2, size=(k, 1, 3))
    bonds = rng.normal(size=(k, N_ATOMS[molecule] - 1, 3))
    bonds *= rng.uniform(0.7, 2.5, size=(k, N_ATOMS[molecule] - 1, 1)) / np.linalg.norm(bonds, axis=-1, keepdims=True)
    return np.concatenate([origin, origin + bonds], axis=1)


# --------------------------------------------------------------------------- models


class Model:
    """One spec, its Simulator and a jitted f-and-gradient over fixed-size batches."""

    def __init__(self, molecule: str, symmetry: str, layers: int = LAYERS, n_blocks: int = BLOCKS):
        self.molecule, self.symmetry = molecule, symmetry
        self.spec = build_model(molecule, symmetry, layers, n_blocks)
        self.sim = Simulator(self.spec)
        self._fg = jax.jit(lambda w, x: expectation_and_gradient(self.sim, w, x))

    def weights(self, choice, eps_zero: bool = False) -> dict:
        kind, seed = choice
        w = self.spec.random_weights(seed) if kind == "random" else self.spec.init_weights(seed)
        if "eps" in w and eps_zero:
            w = dict(w, eps=np.zeros_like(w["eps"]))
        return w

    def f_grad(self, weights, X) -> tuple[np.ndarray, np.ndarray]:
        """f (N,) and df/dX (N, A, 3) for any N, evaluated in chunks of exactly BATCH."""
        return batched(self._fg, weights, X)

    def f(self, weights, X) -> np.ndarray:
        return self.f_grad(weights, X)[0]


def batched(fn, weights, X):
    """Apply a jitted fn(weights, X) -> tuple of per-configuration arrays in chunks of exactly
    BATCH configurations (the last one padded), so that fn compiles once."""
    X = np.asarray(X, dtype=float)
    parts = []
    for start in range(0, len(X), BATCH):
        chunk = X[start:start + BATCH]
        n = len(chunk)
        padded = np.concatenate([chunk, np.repeat(chunk[:1], BATCH - n, axis=0)]) if n < BATCH else chunk
        parts.append([np.asarray(out)[:n] for out in fn(weights, padded)])
    return tuple(np.concatenate(outs) for outs in zip(*parts))


_MODELS: dict = {}


@pytest.fixture(scope="module")
def model():
    """model(molecule, symmetry) -> Model, built once per module."""

    def get(molecule: str, symmetry: str) -> Model:
        key = (molecule, symmetry)
        if key not in _MODELS:
            _MODELS[key] = Model(molecule, symmetry)
        return _MODELS[key]

    return get


def assert_close(actual, expected, tol: float = TOL, what: str = "") -> None:
    """max |actual - expected| <= tol * max(1, max |expected|) (relative, floored at 1)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = float(np.max(np.abs(actual - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert err <= tol * scale, f"{what}: max deviation {err:.3e} > {tol:.0e} * {scale:.3g}"


def apply(matrices, X) -> np.ndarray:
    """Apply a 3x3 matrix (one, or one per configuration) to every atom: X (N, A, 3)."""
    matrices = np.broadcast_to(matrices, (len(X), 3, 3))
    return np.einsum("nij,naj->nai", matrices, X)


def exchange(X) -> np.ndarray:
    """H2O with H1 and H2 relabelled (atom order O, H, H)."""
    return np.asarray(X)[:, [0, 2, 1], :]


_FAST_F: dict = {}


def fast_expectation(sim: Simulator):
    """sim.expectation, jitted once per Simulator (reusing a Model's compiled f-and-gradient)."""
    for m in _MODELS.values():
        if m.sim is sim:
            return m.f
    if id(sim) not in _FAST_F or _FAST_F[id(sim)][0] is not sim:
        jitted = jax.jit(lambda w, x: (sim.expectation(w, x),))
        _FAST_F[id(sim)] = (sim, lambda w, X: batched(jitted, w, X)[0])
    return _FAST_F[id(sim)][1]


def exchange_error(sim: Simulator, weights, X) -> float:
    """max over configurations of |f(X) - f(X with H1 <-> H2)| for the model simulated by `sim`."""
    X = np.asarray(X, dtype=float)
    f = fast_expectation(sim)(weights, np.concatenate([X, exchange(X)]))
    return float(np.max(np.abs(f[:len(X)] - f[len(X):])))


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("molecule,symmetry,n_theta,n_alpha,n_eps", [
    ("lih", "full", 4, 4, 0), ("lih", "broken", 4, 4, 1), ("lih", "rotation", 4, 4, 0),
    ("h2o", "full", 3, 2, 0), ("h2o", "broken", 3, 2, 1), ("h2o", "rotation", 4, 4, 0)])
def test_weight_counts(molecule, symmetry, n_theta, n_alpha, n_eps):
    """LiH has 4 D B angles and 4 (D+1) scales; H2O shares weights over P's orbits."""
    layers, n_blocks = 3, 2
    spec = build_model(molecule, symmetry, layers, n_blocks)
    shapes = spec.weight_shapes()
    assert shapes["theta"] == (layers, n_blocks, n_theta)
    assert shapes["alpha"] == (layers + 1, n_alpha)
    assert shapes.get("eps", (0,)) == ((layers,) if n_eps else (0,))
    assert spec.n_trainable() == layers * n_blocks * n_theta + (layers + 1) * n_alpha + n_eps * layers
    qc, _ = spec.to_qiskit()
    assert qc.num_parameters == spec.n_trainable() - (layers + 1) * n_alpha + (layers + 1) * 4 * 3
    assert qc.count_ops()["rxx"] == layers * n_blocks * 4


def test_lih_rotation_is_lih_full():
    """LiH has no identical atoms, so symmetry='rotation' must be the same model as 'full'
    (which is why the simulation tests below do not repeat it)."""
    full, rot = build_model("lih", "full", 2, 2), build_model("lih", "rotation", 2, 2)
    assert dataclasses.replace(rot, symmetry="full") == full


# --------------------------------------------------------------------------- 1. rotations


@pytest.mark.parametrize("molecule,symmetry", EPS0_MODELS)
def test_rotation_invariance_and_force_equivariance(model, molecule, symmetry):
    m = model(molecule, symmetry)

    @SETTINGS
    @given(choice=weight_choice, X=positions(molecule), rot_seed=seeds)
    def check(choice, X, rot_seed):
        w = m.weights(choice, eps_zero=True)
        R = Rotation.random(len(X), random_state=rot_seed).as_matrix()
        f, g = m.f_grad(w, np.concatenate([X, apply(R, X)]))
        n = len(X)
        assert_close(f[n:], f[:n], what="f(RX) vs f(X)")
        assert_close(g[n:], apply(R, g[:n]), what="grad f(RX) vs R grad f(X)")

    check()


# --------------------------------------------------------------------------- 2. reflections


@pytest.mark.parametrize("molecule,symmetry", EPS0_MODELS)
def test_reflection_invariance(model, molecule, symmetry):
    """Mirror x -> -x, inversion X -> -X and a mirror through a random plane through the origin."""
    m = model(molecule, symmetry)
    k = K // 2

    @SETTINGS
    @given(choice=weight_choice, X=positions(molecule, k), normal=hnp.arrays(np.float64, 3, elements=st.floats(-1, 1)))
    def check(choice, X, normal):
        w = m.weights(choice, eps_zero=True)
        if np.linalg.norm(normal) < 1e-3:
            normal = np.array([0.3, -0.5, 0.8])
        normal = normal / np.linalg.norm(normal)
        maps = [np.diag([-1.0, 1.0, 1.0]), -np.eye(3), np.eye(3) - 2 * np.outer(normal, normal)]
        f, g = m.f_grad(w, np.concatenate([X] + [apply(P, X) for P in maps]))
        for i, P in enumerate(maps, start=1):
            assert_close(f[i * k:(i + 1) * k], f[:k], what=f"f under reflection {i}")
            assert_close(g[i * k:(i + 1) * k], apply(P, g[:k]), what=f"grad under reflection {i}")

    check()


# --------------------------------------------------------------------------- 3. H1 <-> H2


@pytest.mark.parametrize("molecule,symmetry", EXCHANGE_MODELS)
def test_h2o_exchange_invariance(model, molecule, symmetry):
    """f(P X) = f(X) and grad f(P X) = P grad f(X), with any eps (random, nonzero, for 'broken')."""
    m = model(molecule, symmetry)

    @SETTINGS
    @given(choice=weight_choice, X=positions(molecule))
    def check(choice, X):
        w = m.weights(choice)
        if "eps" in w:
            assert np.all(w["eps"] != 0)
        assert exchange_error(m.sim, w, X) <= TOL
        f, g = m.f_grad(w, np.concatenate([X, exchange(X)]))
        n = len(X)
        assert_close(f[n:], f[:n], what="f(PX)")
        assert_close(g[n:], exchange(g[:n]), what="grad f(PX) vs P grad f(X)")

    check()


# --------------------------------------------------------------------------- 4. SB(eps)


@pytest.mark.parametrize("molecule,symmetry", BROKEN_MODELS)
def test_broken_z_rotation_invariance(model, molecule, symmetry):
    """With eps != 0, rotations about z remain exact symmetries (SB commutes with them)."""
    m = model(molecule, symmetry)

    @SETTINGS
    @given(choice=st.tuples(st.just("random"), seeds), X=positions(molecule),
           angles=hnp.arrays(np.float64, K, elements=st.floats(-np.pi, np.pi)))
    def check(choice, X, angles):
        w = m.weights(choice)
        assert np.all(np.abs(w["eps"]) > 0)
        R = Rotation.from_rotvec(angles[:, None] * np.array([0.0, 0.0, 1.0])).as_matrix()
        f, g = m.f_grad(w, np.concatenate([X, apply(R, X)]))
        n = len(X)
        assert_close(f[n:], f[:n], what="f(R_z X)")
        assert_close(g[n:], apply(R, g[:n]), what="grad f(R_z X) vs R_z grad f(X)")

    check()


@pytest.mark.parametrize("molecule,symmetry", BROKEN_MODELS)
@pytest.mark.parametrize("seed", range(4))
def test_broken_generic_rotation_changes_f(model, molecule, symmetry, seed):
    """The rotation tests are meaningful: with eps != 0 a generic rotation changes f (for every
    configuration), and the very same weights with eps = 0 are invariant again."""
    m = model(molecule, symmetry)
    X = generic_configs(molecule, 12, seed=100 + seed)
    R = Rotation.from_rotvec([0.9, -0.4, 0.3]).as_matrix()
    w = m.spec.random_weights(seed)
    assert np.min(np.abs(w["eps"])) > 0
    f = m.f(w, np.concatenate([X, apply(R, X)]))
    change = np.abs(f[12:] - f[:12])
    assert np.min(change) > 1e-6, change
    f0 = m.f(dict(w, eps=np.zeros_like(w["eps"])), np.concatenate([X, apply(R, X)]))
    assert np.max(np.abs(f0[12:] - f0[:12])) <= TOL


# --------------------------------------------------------------------------- 5. translations


@pytest.mark.parametrize("molecule,symmetry", ALL_MODELS)
def test_translation_invariance_and_zero_net_force(model, molecule, symmetry):
    """f(X + t) = f(X), grad f(X + t) = grad f(X) and sum_atoms grad f = 0 (with eps as drawn)."""
    m = model(molecule, symmetry)

    @SETTINGS
    @given(choice=weight_choice, X=positions(molecule),
           t=hnp.arrays(np.float64, (K, 1, 3), elements=st.floats(-10, 10), fill=st.nothing()))
    def check(choice, X, t):
        w = m.weights(choice)
        f, g = m.f_grad(w, np.concatenate([X, X + t]))
        n = len(X)
        assert_close(f[n:], f[:n], what="f(X + t)")
        assert_close(g[n:], g[:n], tol=1e-9, what="grad f(X + t)")  # t up to 10 A: rounding of X + t
        net = g.sum(axis=1)
        assert np.max(np.abs(net)) <= TOL * max(1.0, np.max(np.abs(g))), net

    check()


# --------------------------------------------------------------------------- 6. finite differences


def central_differences(f, X, h: float = 1e-5) -> np.ndarray:
    """(f(X + h e) - f(X - h e)) / 2h for every coordinate of every configuration, one batch."""
    n, a, _ = X.shape
    steps = np.eye(a * 3).reshape(a * 3, a, 3) * h
    shifted = np.concatenate([X[:, None] + steps[None], X[:, None] - steps[None]], axis=1)  # (n, 6a, a, 3)
    values = f(shifted.reshape(-1, a, 3)).reshape(n, 2, a * 3)
    return ((values[:, 0] - values[:, 1]) / (2 * h)).reshape(n, a, 3)


@pytest.mark.parametrize("molecule,symmetry", ALL_MODELS)
def test_gradient_matches_finite_differences(model, molecule, symmetry):
    m = model(molecule, symmetry)

    @SETTINGS
    @given(choice=weight_choice, X=positions(molecule, 2))
    def check(choice, X):
        w = m.weights(choice)
        _, g = m.f_grad(w, X)
        fd = central_differences(lambda Y: m.f(w, Y), X)
        assert_close(g, fd, tol=1e-6, what="autodiff vs central differences")

    check()


@pytest.mark.slow  # ~7 s: the first un-jitted reverse pass compiles every primitive op
def test_public_gradient_matches_finite_differences_unjitted():
    """The same check through the public, un-jitted `expectation_and_gradient` (H2O with eps)."""
    spec = build_model("h2o", "broken", LAYERS, BLOCKS)
    sim = Simulator(spec)
    w = spec.random_weights(7)
    X = generic_configs("h2o", 2, seed=7)
    f, g = expectation_and_gradient(sim, w, X)
    assert f.shape == (2,) and g.shape == X.shape
    fd = central_differences(lambda Y: np.asarray(sim.expectation(w, Y)), X)
    assert_close(np.asarray(g), fd, tol=1e-6, what="expectation_and_gradient vs central differences")
    assert np.max(np.abs(fd)) > 1e-3  # a nonzero gradient was compared


# --------------------------------------------------------------------------- 7. Qiskit / Aer


def special_configs(molecule: str) -> np.ndarray:
    """Cases where the Euler angles degenerate: bonds along +-z, along x, coincident atoms."""
    out = [np.zeros((N_ATOMS[molecule], 3))]
    for bond in ([0, 0, 1.1], [0, 0, -0.9], [1.3, 0, 0], [0, 0, 2 * np.pi / 1.7]):
        x = np.zeros((N_ATOMS[molecule], 3))
        x[1:] = bond
        if molecule == "h2o":
            x[2] = [0.0, 0.0, -1.0]
        out.append(x)
    return np.stack(out)


QISKIT_CASES = [("lih", "full", 2, 2), ("lih", "broken", 3, 1), ("h2o", "full", 2, 2),
                ("h2o", "broken", 2, 2), ("h2o", "rotation", 1, 2)]


@pytest.mark.parametrize("molecule,symmetry,layers,n_blocks,kind",
                         [case + ("random",) for case in QISKIT_CASES] +
                         [("lih", "broken", 3, 1, "init"), ("h2o", "broken", 2, 2, "init")])
def test_simulator_matches_qiskit_statevector(molecule, symmetry, layers, n_blocks, kind):
    """Un-jitted `Simulator.expectation` (and the states) against Qiskit's Statevector of the
    bound circuit, on generic and degenerate configurations (init: eps drawn with std 0.3)."""
    spec = build_model(molecule, symmetry, layers, n_blocks)
    w = spec.random_weights(11) if kind == "random" else spec.init_weights(11, eps_std=0.3)
    X = np.concatenate([generic_configs(molecule, 3, seed=5), special_configs(molecule)])
    sim = Simulator(spec)
    f = np.asarray(sim.expectation(w, X))
    states = np.asarray(sim.states(w, X))
    _, obs = spec.to_qiskit()
    for i, x in enumerate(X):
        sv = Statevector(spec.bound_circuit(w, x))
        ref = sv.expectation_value(obs)
        assert abs(ref.imag) < 1e-12
        assert abs(f[i] - ref.real) <= TOL, (i, f[i], ref)
        # the states themselves agree up to a global phase (the encoding's Euler rotations drop one)
        assert abs(abs(np.vdot(sv.data, states[i])) - 1) <= TOL
    assert np.ptp(f) > 1e-3  # not a constant function


@pytest.mark.parametrize("molecule,symmetry,layers,n_blocks", QISKIT_CASES)
def test_simulator_matches_aer_estimator(molecule, symmetry, layers, n_blocks):
    """One Aer EstimatorV2 PUB (parametric circuit, parameter array of several configurations);
    precision 0 (Aer's default) gives exact expectation values from the statevector."""
    from qiskit_aer.primitives import EstimatorV2

    spec = build_model(molecule, symmetry, layers, n_blocks)
    w = spec.random_weights(23)
    X = np.concatenate([generic_configs(molecule, 5, seed=9), special_configs(molecule)])
    qc, obs = spec.to_qiskit()
    values = spec.parameter_values(qc, w, X)
    assert values.shape == (len(X), qc.num_parameters)
    estimator = EstimatorV2(options={"default_precision": 0.0, "backend_options": {"method": "statevector"}})
    result = estimator.run([(qc, obs, values)]).result()[0]
    evs = np.asarray(result.data.evs)
    assert evs.shape == (len(X),)
    assert np.all(np.asarray(result.data.stds) == 0)
    f = np.asarray(Simulator(spec).expectation(w, X))
    assert_close(evs, f, what="Aer EstimatorV2 vs simulator")
    assert np.ptp(f) > 1e-3


# --------------------------------------------------------------------------- 8. checks can fail


@pytest.mark.parametrize("seed", range(4))
def test_exchange_check_detects_unshared_weights(model, seed):
    """symmetry='rotation' (per-qubit scales, separate RH_12 / RH_30 weights) is not exchange
    invariant: the exchange check of test_h2o_exchange_invariance must report it."""
    m = model("h2o", "rotation")
    w = m.spec.random_weights(seed)
    X = generic_configs("h2o", 8, seed=200 + seed)
    assert exchange_error(m.sim, w, X) > 1e-3
    # ... while the same weights are still rotation invariant
    R = Rotation.random(random_state=seed).as_matrix()
    f = m.f(w, np.concatenate([X, apply(R, X)]))
    assert_close(f[8:], f[:8], what="rotation model, f(RX)")


def _broken_encoding(spec):
    """Qubit 1 (carrying x_2) gets its own scale instead of sharing qubit 0's."""
    enc = tuple(Encoding(e.qubit, e.vector, spec.n_scales if e.qubit == 1 else e.scale, e.sign)
                for e in spec.encoding)
    return dataclasses.replace(spec, encoding=enc)


def _broken_coupling(spec):
    """RH_30 gets its own weight instead of sharing RH_12's (the public implementation's bug)."""
    new = spec.n_weights_per_block
    couplings = tuple(Coupling(c.pairs, new) if c.pairs == ((3, 0),) else c for c in spec.couplings)
    assert couplings != spec.couplings
    return dataclasses.replace(spec, couplings=couplings)


@pytest.mark.parametrize("symmetry", ["full", "broken"])
@pytest.mark.parametrize("breaker", [_broken_encoding, _broken_coupling])
def test_exchange_check_detects_broken_sharing(symmetry, breaker):
    spec = breaker(build_model("h2o", symmetry, LAYERS, BLOCKS))
    sim = Simulator(spec)
    X = generic_configs("h2o", 8, seed=31)
    for seed in range(3):
        w = spec.random_weights(seed)
        assert exchange_error(sim, w, X) > 1e-3
    # control: equal values in the unshared slots restore the symmetry, so the failure above
    # comes from the broken sharing alone, not from the check itself
    w = spec.random_weights(0)
    if breaker is _broken_encoding:
        w["alpha"][:, -1] = w["alpha"][:, 0]
    else:
        w["theta"][..., -1] = w["theta"][..., 2]
    assert exchange_error(sim, w, X) <= TOL


# --------------------------------------------------------------------------- 9. exports


EXPORT_CASES = [("lih", "full"), ("h2o", "broken"), ("h2o", "rotation")]


def _statevector_of(qc: QuantumCircuit, values_by_name: dict) -> Statevector:
    return Statevector(qc.assign_parameters({p: values_by_name[p.name] for p in qc.parameters}))


@pytest.mark.parametrize("molecule,symmetry", EXPORT_CASES)
def test_qpy_round_trip(model, molecule, symmetry):
    m = model(molecule, symmetry)
    spec = m.spec
    qc, obs = spec.to_qiskit()
    buffer = io.BytesIO()
    qpy.dump(qc, buffer)
    buffer.seek(0)
    (loaded,) = qpy.load(buffer)
    assert loaded == qc
    assert [p.name for p in loaded.parameters] == [p.name for p in qc.parameters]
    w = spec.random_weights(3)
    X = generic_configs(molecule, 1, seed=3)
    values = dict(zip([p.name for p in qc.parameters], spec.parameter_values(qc, w, X)[0]))
    a, b = _statevector_of(qc, values), _statevector_of(loaded, values)
    assert np.allclose(a.data, b.data, atol=1e-12)
    f = float(m.f(w, X)[0])
    assert abs(b.expectation_value(obs).real - f) <= TOL


def _qasm_name(name: str) -> str:
    """Qiskit's OpenQASM 3 identifier for a parameter name such as 'theta[3]' ('_theta_3_')."""
    return "_" + re.sub(r"\W", "_", name)


@pytest.mark.parametrize("molecule,symmetry", EXPORT_CASES)
def test_openqasm3_export(model, molecule, symmetry):
    m = model(molecule, symmetry)
    spec = m.spec
    qc, obs = spec.to_qiskit()
    text = qasm3.dumps(qc)
    assert text.startswith("OPENQASM 3")
    assert text.count("input float[64]") == qc.num_parameters
    assert len(re.findall(r"^rxx\(", text, flags=re.MULTILINE)) == LAYERS * BLOCKS * 4
    pytest.importorskip("qiskit_qasm3_import")
    loaded = qasm3.loads(text)
    assert loaded.num_qubits == qc.num_qubits and loaded.num_parameters == qc.num_parameters
    w = spec.random_weights(4)
    X = generic_configs(molecule, 1, seed=4)
    values = dict(zip([_qasm_name(p.name) for p in qc.parameters], spec.parameter_values(qc, w, X)[0]))
    assert set(values) == {p.name for p in loaded.parameters}
    sv = _statevector_of(loaded, values)
    f = float(m.f(w, X)[0])
    assert abs(sv.expectation_value(obs).real - f) <= TOL


@pytest.mark.parametrize("molecule,symmetry", [("lih", "full"), ("h2o", "full"), ("h2o", "broken")])
def test_observable_hermitian_with_range(model, molecule, symmetry):
    spec = build_model(molecule, symmetry, LAYERS, BLOCKS)
    _, obs = spec.to_qiskit()
    mat = obs.to_matrix()
    assert np.allclose(mat, mat.conj().T, atol=0)
    assert np.allclose(obs.coeffs.imag, 0)
    eig = np.linalg.eigvalsh(mat)
    assert np.isclose(eig.min(), -3) and np.isclose(eig.max(), 1)
    lo, hi = spec.observable_range
    assert np.isclose(lo, -3) and np.isclose(hi, 1)
    # O = H_01 = 2 SWAP_01 - 1
    swap = QuantumCircuit(spec.n_qubits)
    swap.swap(0, 1)
    assert np.allclose(mat, 2 * Operator(swap).data - np.eye(2**spec.n_qubits), atol=1e-14)
    # the model's predictions stay in the range
    m = model(molecule, symmetry)
    f = m.f(m.spec.random_weights(0), generic_configs(molecule, BATCH, seed=0))
    assert np.all(f >= lo - 1e-12) and np.all(f <= hi + 1e-12)


# --------------------------------------------------------------------------- 10. blocks


def _swap_matrix(n: int, i: int, j: int) -> np.ndarray:
    qc = QuantumCircuit(n)
    qc.swap(i, j)
    return Operator(qc).data


def _sigma_dot(v) -> np.ndarray:
    return sum(c * blocks.PAULI[p] for c, p in zip(v, "XYZ"))


def _random_su2(seed: int) -> np.ndarray:
    u = unitary_group.rvs(2, random_state=seed)
    return u / np.sqrt(np.linalg.det(u))


pairs3 = st.permutations(range(3)).map(lambda p: (p[0], p[1]))


@CHEAP
@given(theta=st.floats(-2 * np.pi, 2 * np.pi), pair=pairs3)
@example(theta=np.pi / 4, pair=(2, 0))
def test_heisenberg_gate_is_exponential(theta, pair):
    i, j = pair
    qc = QuantumCircuit(3)
    blocks.heisenberg_gate(qc, theta, i, j)
    H = blocks.heisenberg_generator(3, [(i, j)])
    assert np.allclose(Operator(qc).data, scipy.linalg.expm(-1j * theta * H), atol=1e-12)
    # and the generator is the Heisenberg interaction 2 SWAP - 1 (Eq. 5)
    assert np.allclose(H, 2 * _swap_matrix(3, i, j) - np.eye(8), atol=1e-14)
    assert np.allclose(blocks.heisenberg_interaction(3, [(i, j)]).to_matrix(), H, atol=1e-14)


def test_heisenberg_generator_spectrum():
    eig = np.linalg.eigvalsh(blocks.heisenberg_generator(2, [(0, 1)]))
    assert np.allclose(eig, [-3, 1, 1, 1])


vectors = hnp.arrays(np.float64, 3, elements=st.floats(-10, 10, allow_subnormal=False))


@CHEAP
@given(v=vectors)
@example(v=np.zeros(3))
@example(v=np.array([0.0, 0.0, 1.0]))
@example(v=np.array([0.0, 0.0, -np.pi]))
@example(v=np.array([np.pi, 0.0, 0.0]))
@example(v=np.array([0.0, 2 * np.pi, 0.0]))
@example(v=np.array([0.0, 0.0, 2 * np.pi]))
@example(v=np.array([1e-9, -1e-9, 0.0]))
def test_encoding_euler_angles(v):
    """U(theta, phi, lambda) = exp(-i v.sigma / 2) up to a global phase; the simulator's own
    gate entries equal it exactly."""
    target = scipy.linalg.expm(-0.5j * _sigma_dot(v))
    angles = blocks.encoding_euler_angles(v)
    u = UGate(*angles).to_matrix()
    phase = np.vdot(u.ravel(), target.ravel()) / 2  # |phase| = 1 iff equal up to a phase
    assert abs(abs(phase) - 1) < 1e-12
    assert np.allclose(u * phase, target, atol=1e-12)
    qc = QuantumCircuit(1)
    blocks.equivariant_encoding(qc, 0, angles)  # RZ RY RZ: U up to the phase e^{-i (phi + lambda) / 2}
    assert np.allclose(Operator(qc).data * np.exp(0.5j * (angles[1] + angles[2])), u, atol=1e-14)
    for gate in (Simulator.encoding_gate, Simulator.encoding_gate_entries):
        assert np.allclose(np.asarray(gate(jnp.asarray(v[None, :]))[0]), target, atol=1e-12)


def test_encoding_euler_angles_vectorised():
    v = np.random.default_rng(0).normal(size=(4, 5, 3)) * 3
    batched = blocks.encoding_euler_angles(v)
    assert batched.shape == (4, 5, 3)
    single = np.array([[blocks.encoding_euler_angles(x) for x in row] for row in v])
    assert np.allclose(batched, single, atol=0)


@CHEAP
@given(seed=seeds)
def test_encoding_is_rotation_equivariant(seed):
    """Phi(R x) = U_R Phi(x) U_R^dagger with U_R the SU(2) element of R (Eq. 8)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=3) * 2
    U = _random_su2(seed)
    # the rotation R of space with U sigma_k U^dagger = sum_l R_lk sigma_l
    R = np.array([[0.5 * np.trace(blocks.PAULI[a] @ U @ blocks.PAULI[b] @ U.conj().T).real
                   for b in "XYZ"] for a in "XYZ"])
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    lhs = scipy.linalg.expm(-0.5j * _sigma_dot(R @ v))
    rhs = U @ scipy.linalg.expm(-0.5j * _sigma_dot(v)) @ U.conj().T
    assert np.allclose(lhs, rhs, atol=1e-12)


@CHEAP
@given(seed=seeds)
def test_singlet_invariance_and_antisymmetry(seed):
    psi = blocks.singlet_state(2, [(0, 1)])
    U = _random_su2(seed)
    assert np.allclose(np.kron(U, U) @ psi, psi, atol=1e-12)
    assert np.allclose(_swap_matrix(2, 0, 1) @ psi, -psi, atol=1e-14)
    # a generic unitary that is not U (x) U does change it: the check can fail
    V = _random_su2((seed + 1) % 2**32)
    assert np.linalg.norm(np.kron(U, V) @ psi - psi) > 1e-6 or np.allclose(U, V)
    # the model's initial state |S>_01 |S>_23: invariant under U^{x4} and under P = SWAP_01 SWAP_23
    psi4 = blocks.singlet_state(4, [(0, 1), (2, 3)])
    U4 = np.kron(np.kron(U, U), np.kron(U, U))
    assert np.allclose(U4 @ psi4, psi4, atol=1e-12)
    P = _swap_matrix(4, 0, 1) @ _swap_matrix(4, 2, 3)
    assert np.allclose(P @ psi4, psi4, atol=1e-14)
    assert np.allclose(_swap_matrix(4, 0, 1) @ psi4, -psi4, atol=1e-14)


def test_singlet_state_explicit():
    """(|01> - |10>)/sqrt2 on (i, j), up to sign, in Qiskit's ordering (qubit 0 least significant)."""
    psi = blocks.singlet_state(3, [(2, 0)])
    expected = np.zeros(8)
    expected[0b001], expected[0b100] = 1 / np.sqrt(2), -1 / np.sqrt(2)
    assert np.isclose(abs(np.vdot(expected, psi)), 1)


@CHEAP
@given(eps=st.floats(-np.pi, np.pi))
def test_symmetry_breaking_phases(eps):
    qc = QuantumCircuit(3)
    blocks.symmetry_breaking(qc, eps, range(3))
    diag = np.exp(-0.5j * eps * blocks.symmetry_breaking_phases(3))
    assert np.allclose(Operator(qc).data, np.diag(diag), atol=1e-12)
