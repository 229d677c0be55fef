"""The building blocks of the siVQLMs (docs/models.md), one function each, as Qiskit gates and as matrices.

Each block has a Qiskit builder (what goes into the exported circuit) and the matrix the fast
simulator uses; `tests/test_models.py` checks that the two agree.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit.circuit.library import PauliEvolutionGate, UnitaryGate
from qiskit.quantum_info import SparsePauliOp

PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


# --------------------------------------------------------------------------- Qiskit


def singlet(qc: QuantumCircuit, i: int, j: int) -> None:
    """Prepare |S>_ij = (|01> - |10>)/sqrt(2) from |00> (Eq. 4)."""
    qc.x([i, j])
    qc.h(i)
    qc.cx(i, j)


def heisenberg_gate(qc: QuantumCircuit, theta: ParameterExpression | float, i: int, j: int) -> None:
    """RH_ij(theta) = exp(-i theta (XX + YY + ZZ)) = RXX(2 theta) RYY(2 theta) RZZ(2 theta) (Eq. 7)."""
    qc.rxx(2 * theta, i, j)
    qc.ryy(2 * theta, i, j)
    qc.rzz(2 * theta, i, j)


def orbit_gate(qc: QuantumCircuit, theta: ParameterExpression | float, pairs) -> None:
    """exp(-i theta sum_{(i,j) in pairs} H_ij) for pairs that share qubits (the water dimer's "star"), exactly.

    The generator's terms do not commute, so no product of two-qubit RH gates equals it. Instead:
    a fixed change of basis to its eigenbasis (`UnitaryGate`), the eigenphases as a
    `PauliEvolutionGate` of commuting Z strings (synthesised exactly, parameter kept symbolic), and
    the basis change back. Equal to the exponential up to a global phase (the identity term).
    """
    qubits, local_pairs = _local(pairs)
    values, vectors = np.linalg.eigh(heisenberg_generator(len(qubits), local_pairs))
    qc.append(UnitaryGate(vectors.conj().T, label="to eigenbasis"), qubits)
    qc.append(PauliEvolutionGate(diagonal_as_z_strings(values), time=theta, label="RH orbit"), qubits)
    qc.append(UnitaryGate(vectors, label="from eigenbasis"), qubits)


def trotter_orbit_gate(qc: QuantumCircuit, theta: ParameterExpression | float, pairs, steps: int,
                       order: int) -> None:
    """exp(-i theta sum_{(i,j) in pairs} H_ij) approximated by a product formula (`product_formula`).

    The exact `orbit_gate` on k qubits carries two dense 2^k x 2^k basis changes, whose synthesis on
    hardware grows as 4^k two-qubit gates (CH4: one 8-qubit gate); a product formula is RXX, RYY and
    RZZ rotations, 3 per pair and stage of each step, at an error that `trotter_distance` measures.
    Written out as the circuit Qiskit's `PauliEvolutionGate` synthesises, rather than as that gate:
    `Operator` and `Statevector` compute a `PauliEvolutionGate` as the exact exponential, ignoring its
    synthesis, so the statevector backend would run the exact gate while Aer and hardware run the formula."""
    qubits, local_pairs = _local(pairs)
    generator = heisenberg_interaction(len(qubits), local_pairs)
    gate = PauliEvolutionGate(generator, time=theta, synthesis=product_formula(steps, order))
    qc.compose(gate.definition, qubits, inplace=True)


def product_formula(steps: int, order: int):
    """Qiskit's Lie-Trotter formula (order 1) or Suzuki-Trotter formula (an even order), `steps` repetitions."""
    from qiskit.synthesis import LieTrotter, SuzukiTrotter

    return LieTrotter(reps=steps) if order == 1 else SuzukiTrotter(order=order, reps=steps)


def _local(pairs) -> tuple[list[int], list[tuple[int, int]]]:
    """The qubits the pairs act on (sorted) and the pairs renumbered onto them."""
    qubits = sorted({q for pair in pairs for q in pair})
    local = {q: k for k, q in enumerate(qubits)}
    return qubits, [(local[i], local[j]) for i, j in pairs]


def trotter_distance(theta: float, pairs, steps: int, order: int) -> float:
    """min over phi of || exp(-i theta sum H_ij) - e^(i phi) T ||_2, T the unitary of `trotter_orbit_gate`.

    With W = E^dagger T (unitary, eigenphases lambda_k), || E - e^(i phi) T || = max_k |1 - e^(i (phi + lambda_k))|;
    the best phi centres the shortest arc holding every lambda_k, of length A = 2 pi - the widest gap between
    neighbouring phases, so the distance is 2 sin(A / 4), exactly."""
    from qiskit.quantum_info import Operator

    qubits, local_pairs = _local(pairs)
    values, vectors = np.linalg.eigh(heisenberg_generator(len(qubits), local_pairs))
    exact = (vectors * np.exp(-1j * theta * values)) @ vectors.conj().T
    circuit = QuantumCircuit(len(qubits))
    trotter_orbit_gate(circuit, theta, local_pairs, steps, order)
    phases = np.sort(np.angle(np.linalg.eigvals(exact.conj().T @ Operator(circuit).data)))
    widest_gap = np.max(np.diff(np.append(phases, phases[0] + 2 * np.pi)))
    return float(2 * np.sin((2 * np.pi - widest_gap) / 4))


def diagonal_as_z_strings(values: np.ndarray) -> SparsePauliOp:
    """diag(values) = sum_S c_S prod_{q in S} Z_q (Walsh-Hadamard transform), identity term dropped."""
    k = int(np.log2(len(values)))
    index = np.arange(len(values))
    z = 1 - 2 * ((index[:, None] >> np.arange(k)[None, :]) & 1)  # (2^k, k): z_q of each basis state
    terms = []
    for subset in range(1, 2**k):
        qubits = [q for q in range(k) if subset >> q & 1]
        coefficient = float(np.mean(values * np.prod(z[:, qubits], axis=1)))
        if abs(coefficient) > 1e-12:
            terms.append(("Z" * len(qubits), qubits, coefficient))
    return SparsePauliOp.from_sparse_list(terms, num_qubits=k)


def equivariant_encoding(qc: QuantumCircuit, q: int, euler) -> None:
    """Phi_q(x; alpha) = exp(-i (alpha/2) x.sigma_q) (Eq. 8) as RZ(phi) RY(theta) RZ(lambda), i.e. Qiskit's
    U(theta, phi, lambda) up to a global phase, with Euler angles `euler` = (theta, phi, lambda).

    The angles come from `encoding_euler_angles(alpha * x)`, computed classically, so the circuit
    stays parametric (transpilable once) while its matrix is Phi_q up to a phase. Rotations rather than
    a U gate: qiskit-machine-learning's parameter-shift gradients rewrite each U gate into rotations
    plus a symbolic global phase, and binding that phase costs Qiskit 2.6's StatevectorEstimator about
    9 s per circuit on the H2O model (scripts/bench_peers.py, EstimatorQNN column).
    """
    theta, phi, lam = euler
    qc.rz(lam, q)
    qc.ry(theta, q)
    qc.rz(phi, q)


def symmetry_breaking(qc: QuantumCircuit, eps: ParameterExpression | float, qubits) -> None:
    """SB(eps) = prod_q RZ_q(eps) (Eq. 15): one angle shared by every qubit."""
    for q in qubits:
        qc.rz(eps, q)


def heisenberg_interaction(n_qubits: int, pairs) -> SparsePauliOp:
    """sum over `pairs` of H_ij = X_iX_j + Y_iY_j + Z_iZ_j (Eq. 5), as an observable."""
    terms = [(p + p, [i, j], 1.0) for i, j in pairs for p in "XYZ"]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n_qubits).simplify()


# --------------------------------------------------------------------------- matrices


def encoding_euler_angles(v: np.ndarray) -> np.ndarray:
    """Euler angles (theta, phi, lambda) of Qiskit's U gate equal to exp(-i v.sigma / 2) up to a phase.

    `v` has shape (..., 3): the rotation vector alpha * x. Vectorised closed form of
    exp(-i r/2 n.sigma) = [[a, -b*], [b, a*]], a = cos(r/2) - i sin(r/2) n_z, b = sin(r/2)(n_y - i n_x).
    """
    v = np.asarray(v, dtype=float)
    r = np.linalg.norm(v, axis=-1)
    half = r / 2
    s_over_r = np.where(r > 0, np.sin(half) / np.where(r > 0, r, 1.0), 0.5)
    a = np.cos(half) - 1j * s_over_r * v[..., 2]
    b = s_over_r * (v[..., 1] - 1j * v[..., 0])
    theta = 2 * np.arctan2(np.abs(b), np.abs(a))
    return np.stack([theta, np.angle(b) - np.angle(a), -np.angle(a) - np.angle(b)], axis=-1)


def encoding_euler_angles_jax(v):
    """JAX twin of `encoding_euler_angles` (same closed form, safe to differentiate at v = 0), so the
    chain rule of backend forces and QNN training can run through the encoding."""
    import jax.numpy as jnp

    r = jnp.linalg.norm(v, axis=-1)
    safe_r = jnp.where(r > 0, r, 1.0)
    s_over_r = jnp.where(r > 0, jnp.sin(safe_r / 2) / safe_r, 0.5)
    a = jnp.cos(r / 2) - 1j * s_over_r * v[..., 2]
    b = s_over_r * (v[..., 1] - 1j * v[..., 0])
    theta = 2 * jnp.arctan2(jnp.abs(b), jnp.abs(a))
    return jnp.stack([theta, jnp.angle(b) - jnp.angle(a), -jnp.angle(a) - jnp.angle(b)], axis=-1)


def pauli_string(n_qubits: int, ops: dict[int, str]) -> np.ndarray:
    """Dense matrix of a Pauli string in Qiskit's qubit order (qubit 0 is the last tensor factor)."""
    return reduce(np.kron, [PAULI[ops.get(q, "I")] for q in reversed(range(n_qubits))])


def heisenberg_generator(n_qubits: int, pairs) -> np.ndarray:
    """Dense sum of H_ij over `pairs`; the trainable gate of one weight is exp(-i theta * this)."""
    return sum(pauli_string(n_qubits, {i: p, j: p}) for i, j in pairs for p in "XYZ")


def singlet_state(n_qubits: int, pairs) -> np.ndarray:
    """Tensor product of singlets on `pairs` (Eqs. 12, 19), as a vector in Qiskit's ordering."""
    qc = QuantumCircuit(n_qubits)
    for i, j in pairs:
        singlet(qc, i, j)
    from qiskit.quantum_info import Statevector

    return Statevector(qc).data


def symmetry_breaking_phases(n_qubits: int) -> np.ndarray:
    """SB(eps) = diag(exp(-i eps/2 * m)), m = sum_q z_q over computational basis states; returns m."""
    index = np.arange(2**n_qubits)
    bits = (index[:, None] >> np.arange(n_qubits)[None, :]) & 1
    return (1 - 2 * bits).sum(axis=1).astype(float)
