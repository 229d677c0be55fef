"""Energies and forces from expectation values alone: parameter-shift rules on the circuit's gate angles.

A device returns expectation values, not derivatives. Every parametric gate of the model's
circuit (after decomposing gates without a shift rule, e.g. `PauliEvolutionGate`) is a rotation
exp(-i a P / 2) in its angle a, or a U gate, which is RZ(phi) RY(theta) RZ(lambda) up to a phase.
For each, df/da = [f(a + pi/2) - f(a - pi/2)] / 2 exactly. So the circuit is rewritten with one
free angle per gate occurrence (shared weights appear in several gates, each shifted on its own),
and every angle is an affine function of the model's parameters. The chain rule then runs through
the encoding angles, enc = spec.encoding_function(weights)(positions) (a siVQLM's Euler angles of
alpha * centre(positions), the generic VQLM's scaled features), differentiated with JAX.

Only the gates that carry encoding angles are shifted for forces (the weights are fixed); one
configuration's unshifted and shifted angles are rows of one parameter array, so all
configurations go to the device as one PUB (Estimator V2 broadcasting).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression, ParameterVector

from siqml_cli.errors import SiqmlError
from siqml_cli.models.spec import ModelSpec
from siqml_cli.precision import double_precision

#: Gates whose every angle a enters as exp(-i a P / 2) for a Pauli string P (U and P up to a global phase).
SHIFTABLE = frozenset({"rx", "ry", "rz", "rxx", "ryy", "rzz", "rzx", "p", "u"})
SHIFT = np.pi / 2
MAX_DECOMPOSE_ROUNDS = 8


def _is_parametric(operation) -> bool:
    return any(isinstance(p, ParameterExpression) and p.parameters for p in operation.params)


def shift_ready(circuit: QuantumCircuit) -> QuantumCircuit:
    """Decompose parametric gates without a shift rule until only SHIFTABLE gates carry parameters."""
    for _ in range(MAX_DECOMPOSE_ROUNDS):
        other = sorted({inst.operation.name for inst in circuit.data
                        if _is_parametric(inst.operation) and inst.operation.name not in SHIFTABLE})
        if not other:
            return circuit
        circuit = circuit.decompose(gates_to_decompose=other)
    raise SiqmlError(f"gates {', '.join(other)} do not decompose into rotations with a parameter-shift rule; "
                     "use backend.forces=finite_difference")


@dataclass
class AngleCircuit:
    """The circuit with one free angle per gate occurrence: angles = offsets + parameters @ coefficients."""

    circuit: QuantumCircuit
    coefficients: np.ndarray  # (n_parameters, n_angles): d angle_k / d parameter_j
    offsets: np.ndarray       # (n_angles,)

    @classmethod
    def build(cls, parametric: QuantumCircuit) -> AngleCircuit:
        source = shift_ready(parametric)
        parameters = list(parametric.parameters)
        index = {p: j for j, p in enumerate(parameters)}
        expressions = [p for inst in source.data for p in inst.operation.params
                       if isinstance(p, ParameterExpression) and p.parameters]
        angles = ParameterVector("a", len(expressions))
        out = QuantumCircuit(*source.qregs, *source.cregs, name=f"{parametric.name}_angles")
        coefficients = np.zeros((len(parameters), len(expressions)))
        offsets = np.zeros(len(expressions))
        k = 0
        for inst in source.data:
            operation = inst.operation
            if _is_parametric(operation):
                operation = operation.copy()
                new_params = []
                for value in operation.params:
                    if isinstance(value, ParameterExpression) and value.parameters:
                        for p in value.parameters:
                            slope = value.gradient(p)
                            if isinstance(slope, ParameterExpression) and slope.parameters:
                                raise SiqmlError(f"gate {operation.name} has a non-linear angle {value}; "
                                                 "use backend.forces=finite_difference")
                            coefficients[index[p], k] = float(slope)
                        offsets[k] = float(value.bind({p: 0.0 for p in value.parameters}))
                        new_params.append(angles[k])
                        k += 1
                    else:
                        new_params.append(value)
                operation.params = new_params
            out.append(operation, inst.qubits, inst.clbits)
        return cls(out, coefficients, offsets)

    def angle_values(self, parameter_values: np.ndarray) -> np.ndarray:
        return parameter_values @ self.coefficients + self.offsets


@dataclass
class Derivatives:
    """f and df/dpositions in the observable's units, with standard errors from the estimator."""

    f: np.ndarray
    f_std: np.ndarray
    grad: np.ndarray | None
    grad_std: np.ndarray | None


class ShiftPlan:
    """Rows of gate angles to evaluate for each configuration, and how to turn their values into f and df/dx.

    forces: `shift` (parameter-shift on the encoding gates), `finite_difference` (central
    differences of f in each Cartesian coordinate, step `step` Å) or `none` (energies only).
    `orbit_export`: `to_qiskit`'s options for wide orbit gates (exact by default).
    """

    @double_precision
    def __init__(self, spec: ModelSpec, weights: dict, forces: str = "shift", step: float = 1e-3,
                 orbit_export: dict | None = None):
        self.spec, self.weights, self.forces, self.step = spec, weights, forces, step
        parametric, _ = spec.to_qiskit(**(orbit_export or {}))
        self.observable = spec.observable(weights)
        self.parametric = parametric
        self.angles = AngleCircuit.build(parametric)
        names = [p.vector.name for p in parametric.parameters]
        self.enc_rows = np.array([j for j, n in enumerate(names) if n == "enc"])
        self.enc_index = np.array([p.index for p in parametric.parameters if p.vector.name == "enc"])
        self.shifted = np.flatnonzero(np.any(self.angles.coefficients[self.enc_rows] != 0, axis=0))
        self._encoding_jacobian = jax.jit(jax.vmap(jax.jacfwd(spec.encoding_function(weights))))

    @property
    def circuit(self) -> QuantumCircuit:
        return self.angles.circuit

    @property
    def rows_per_configuration(self) -> int:
        n_atoms = len(self.spec.species)
        return {"shift": 1 + 2 * len(self.shifted), "finite_difference": 1 + 6 * n_atoms, "none": 1}[self.forces]

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Gate-angle values (N, rows_per_configuration, n_angles) for the PUB's parameter array."""
        positions = np.asarray(positions, dtype=float)
        n, n_atoms = len(positions), positions.shape[1]
        if self.forces == "finite_difference":
            displaced = np.repeat(positions[:, None], 1 + 6 * n_atoms, axis=1)
            for i in range(3 * n_atoms):
                atom, axis = divmod(i, 3)
                displaced[:, 1 + 2 * i, atom, axis] += self.step
                displaced[:, 2 + 2 * i, atom, axis] -= self.step
            values = self.spec.parameter_values(self.parametric, self.weights, displaced.reshape(-1, n_atoms, 3))
            return self.angles.angle_values(values).reshape(n, 1 + 6 * n_atoms, -1)
        base = self.angles.angle_values(self.spec.parameter_values(self.parametric, self.weights, positions))
        if self.forces == "none":
            return base[:, None, :]
        out = np.repeat(base[:, None, :], 1 + 2 * len(self.shifted), axis=1)
        for i, k in enumerate(self.shifted):
            out[:, 1 + 2 * i, k] += SHIFT
            out[:, 2 + 2 * i, k] -= SHIFT
        return out

    @double_precision
    def derivatives(self, positions: np.ndarray, evs: np.ndarray, stds: np.ndarray) -> Derivatives:
        """f, df/dx and their standard errors from the expectation values of `rows(positions)`."""
        positions = np.asarray(positions, dtype=float)
        evs, stds = np.asarray(evs, dtype=float), np.asarray(stds, dtype=float)
        f, f_std = evs[:, 0], stds[:, 0]
        if self.forces == "none":
            return Derivatives(f, f_std, None, None)
        plus, minus = evs[:, 1::2], evs[:, 2::2]
        pair_var = (stds[:, 1::2] ** 2 + stds[:, 2::2] ** 2)
        if self.forces == "finite_difference":
            grad = ((plus - minus) / (2 * self.step)).reshape(positions.shape)
            return Derivatives(f, f_std, grad, (np.sqrt(pair_var) / (2 * self.step)).reshape(positions.shape))
        d_enc = np.asarray(self._encoding_jacobian(jnp.asarray(positions)))  # (N, n_enc, A, 3) in `enc` order
        # weight of each shifted angle in d/dx: sum over enc parameters of (d angle / d enc) (d enc / d x)
        slopes = self.angles.coefficients[self.enc_rows][:, self.shifted]  # (n_enc in circuit order, n_shifted)
        chain = np.einsum("es,neac->nsac", slopes, d_enc[:, self.enc_index])
        grad = np.einsum("ns,nsac->nac", (plus - minus) / 2, chain)
        grad_std = np.sqrt(np.einsum("ns,nsac->nac", pair_var / 4, chain**2))
        return Derivatives(f, f_std, grad, grad_std)
