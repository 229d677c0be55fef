"""The generic VQLM of Kiss et al. 2022 (docs/models.md, "The generic baseline"): no symmetry built in.

The paper's point of comparison. Classically computed features -- internal coordinates (rotation
and translation invariant by construction, but not exchange invariant) or the Cartesian components
of the vectors the siVQLM encodes (translation invariant only) -- are min-max scaled (fitted on the
training split) to RY angles and re-uploaded into a hardware-efficient circuit on |0...0>:

    M = E(x) U_D ... E(x) U_1 E(x),   E(x) = prod_q RY_q(x_{q mod F}),
    U_d = prod_b [CNOT ring] prod_q RZ_q(theta_{d,b,q,1}) RY_q(theta_{d,b,q,0}),   O = Z_0.

`GenericSpec` offers the interface of `ModelSpec` that the rest of the code uses (sizes, weights,
`to_qiskit`, `parameter_values`, `encoding_function`, `fit`, `training_copies`, `options`), so
training, evaluation, backends and the ASE calculator treat both alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from siqml_cli.config import ModelConfig
from siqml_cli.errors import SiqmlError
from siqml_cli.models import h2o, lih
from siqml_cli.molecules import species_of
from siqml_cli.precision import double_precision

#: what a trained model adds to its options: the feature scaling fitted on its training split
FITTED = ("feature_min", "feature_max")
#: the siVQLMs' width: internal and Cartesian models get at least as many qubits, for a like-for-like baseline
MIN_QUBITS = 4
#: mirrored copies must reproduce their mirrored features to this (relative) accuracy
ROUND_TRIP_TOL = 1e-9


# --------------------------------------------------------------------------- features


def _norm(v):
    return jnp.sqrt(jnp.sum(v * v, axis=-1))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def lih_bond(positions):
    """The bond length: (..., 2, 3) -> (..., 1)."""
    return _norm(positions[..., 1, :] - positions[..., 0, :])[..., None]


def lih_bond_geometry(raw: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """H moved along its bond to the length raw[:, 0], Li kept."""
    direction = _unit(positions[:, 1] - positions[:, 0])
    return np.stack([positions[:, 0], positions[:, 0] + raw[:, :1] * direction], axis=1)


def h2o_internal(positions):
    """r1, r2 (the O-H distances) and the H-O-H angle in radians: (..., 3, 3) -> (..., 3).

    atan2(|x1 x x2|, x1.x2) rather than arccos, whose derivative is unstable near 0 and pi."""
    x = h2o.centre(positions)
    x1, x2 = x[..., 0, :], x[..., 1, :]
    angle = jnp.arctan2(_norm(jnp.cross(x1, x2)), jnp.sum(x1 * x2, axis=-1))
    return jnp.stack([_norm(x1), _norm(x2), angle], axis=-1)


def h2o_internal_geometry(raw: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """A water with internal coordinates `raw`, in the plane and at the oxygen of `positions`."""
    oxygen, x1, x2 = positions[:, 0], positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0]
    e1 = _unit(x1)
    e2 = _unit(x2 - np.sum(x2 * e1, axis=-1, keepdims=True) * e1)
    r1, r2, angle = raw[:, :1], raw[:, 1:2], raw[:, 2:3]
    return np.stack([oxygen, oxygen + r1 * e1, oxygen + r2 * (np.cos(angle) * e1 + np.sin(angle) * e2)], axis=1)


def lih_cartesian(positions):
    """x_H, centred on the bond midpoint as the siVQLM centres it (x_Li = -x_H adds nothing): (..., 3)."""
    return lih.centre(positions)[..., 1, :]


def lih_cartesian_geometry(raw: np.ndarray, positions: np.ndarray) -> np.ndarray:
    middle = positions.mean(axis=1)
    return np.stack([middle - raw, middle + raw], axis=1)


def h2o_cartesian(positions):
    """x_1, x_2 relative to the oxygen, as the siVQLM encodes them, flattened: (..., 6)."""
    x = h2o.centre(positions)
    return x.reshape(x.shape[:-2] + (6,))


def h2o_cartesian_geometry(raw: np.ndarray, positions: np.ndarray) -> np.ndarray:
    oxygen = positions[:, 0]
    return np.stack([oxygen, oxygen + raw[:, :3], oxygen + raw[:, 3:]], axis=1)


@dataclass(frozen=True)
class FeatureMap:
    """`raw`: positions (..., A, 3) -> features (..., F), array operations only (autodiff gives forces);
    `geometry`: features (N, F) and positions (N, A, 3) -> positions with those features (mirrored copies)."""

    names: tuple[str, ...]
    raw: Callable
    geometry: Callable


FEATURE_MAPS = {
    ("lih", "internal"): FeatureMap(("d",), lih_bond, lih_bond_geometry),
    ("h2o", "internal"): FeatureMap(("r1", "r2", "angle"), h2o_internal, h2o_internal_geometry),
    ("lih", "cartesian"): FeatureMap(("x_H", "y_H", "z_H"), lih_cartesian, lih_cartesian_geometry),
    ("h2o", "cartesian"): FeatureMap(("x_1", "y_1", "z_1", "x_2", "y_2", "z_2"), h2o_cartesian,
                                     h2o_cartesian_geometry),
}
MOLECULES = tuple(sorted({molecule for molecule, _ in FEATURE_MAPS}))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class GenericSpec:
    """Generic re-uploading VQLM on `max(4, F)` qubits; qubit q encodes feature q mod F.

    The features are raw internal or Cartesian coordinates min-max scaled from [feature_min,
    feature_max] (fitted on the training split by `fit`, saved with the run) onto `feature_range`.
    """

    name: str
    species: tuple[str, ...]
    layers: int
    blocks: int
    features: str
    feature_map: FeatureMap
    feature_range: tuple[float, float] = (0.0, math.pi)
    periodize: bool = False
    feature_min: tuple[float, ...] | None = None
    feature_max: tuple[float, ...] | None = None
    symmetry: str = "none"

    # ------------------------------------------------------------------ sizes

    @property
    def n_features(self) -> int:
        return len(self.feature_map.names)

    @property
    def n_qubits(self) -> int:
        return max(MIN_QUBITS, self.n_features)

    @property
    def qubit_features(self) -> tuple[int, ...]:
        """The feature each qubit encodes (cyclic: LiH d on all 4 qubits; H2O r1, r2, angle, r1)."""
        return tuple(q % self.n_features for q in range(self.n_qubits))

    @property
    def observable_range(self) -> tuple[float, float]:
        return -1.0, 1.0

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """theta[d, b, q] = (RY angle, RZ angle) of qubit q in block b of layer d."""
        return {"theta": (self.layers, self.blocks, self.n_qubits, 2)}

    def n_trainable(self) -> int:
        return int(np.prod(self.weight_shapes()["theta"]))

    def init_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Grant et al. 2019: the first layer's angles uniform over a full period
        [0, 2 pi), later layers 0. A zero layer is not the identity here but its CNOT ring, a fixed
        permutation of basis states that adds no randomness, so the circuit starts as one random layer
        among fixed gates and encodings -- far from the deep random circuits that have barren plateaus."""
        theta = np.zeros(self.weight_shapes()["theta"])
        theta[0] = np.random.default_rng(seed).uniform(0.0, 2 * np.pi, size=theta.shape[1:])
        return {"theta": theta}

    def random_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Generic weights (not an initialisation): for testing away from the identity."""
        return {"theta": np.random.default_rng(seed).uniform(-np.pi, np.pi, size=self.weight_shapes()["theta"])}

    # ------------------------------------------------------------------ features

    @double_precision
    def fit(self, positions: np.ndarray) -> GenericSpec:
        """This model with the min-max feature scaling fitted on `positions` (the training split)."""
        raw = np.asarray(self.feature_map.raw(jnp.asarray(np.asarray(positions, dtype=float))))
        low, high = raw.min(axis=0), raw.max(axis=0)
        flat = [n for n, lo, hi in zip(self.feature_map.names, low, high) if not hi > lo]
        if flat:
            raise SiqmlError(f"feature {', '.join(flat)} of the generic VQLM is the same in every training "
                             f"configuration, so it cannot be scaled; use other data or model.features=internal")
        return dataclasses.replace(self, feature_min=tuple(map(float, low)), feature_max=tuple(map(float, high)))

    @double_precision
    def scaled_features(self, positions):
        """Positions (..., A, 3) -> the RY angles of the F features (..., F), in JAX."""
        if self.feature_min is None:
            raise SiqmlError("the generic VQLM's feature scaling is not fitted; train the model "
                             "(or call spec.fit(positions)) before evaluating it")
        lo, hi = self.feature_range
        low, high = jnp.asarray(self.feature_min), jnp.asarray(self.feature_max)
        return lo + (hi - lo) * (self.feature_map.raw(positions) - low) / (high - low)

    def encoding_function(self, weights: dict):
        """positions (A, 3) -> the `enc` parameter values (the scaled features), in JAX. The encoding
        reads no weights; `weights` is taken for the interface `ModelSpec` shares."""
        return lambda positions: self.scaled_features(positions[None])[0]

    @double_precision
    def training_copies(self, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray | None):
        """The training set, and with `periodize` its mirrored copies (Kiss et al. 2022's "periodized" data).

        The circuit is 2 pi-periodic in every RY angle. Features fill [lo, lo + pi]; each copy
        reflects a subset of the features about the upper end, x -> 2 hi - x (2^F copies, all subsets),
        with the same energy, so the labels become an even, continuous, 2 pi-periodic function of every
        feature. Copies are real geometries (raw feature u -> 2 max(u) - u), built in each configuration's
        own frame, so the simulator needs nothing special. Energy labels only: the copies have no
        reference forces.
        """
        if not self.periodize:
            return positions, energies, forces
        if forces is not None:
            raise SiqmlError("model.periodize=true trains on energies only (the mirrored copies have no reference "
                             "forces); add loss=energy")
        raw = np.asarray(self.feature_map.raw(jnp.asarray(positions)))
        mirrored_raw = 2 * np.asarray(self.feature_max) - raw
        copies = []
        for mask in itertools.product((False, True), repeat=self.n_features):
            target = np.where(mask, mirrored_raw, raw)
            copy = self.feature_map.geometry(target, positions) if any(mask) else positions
            got = np.asarray(self.feature_map.raw(jnp.asarray(copy)))
            if not np.allclose(got, target, rtol=ROUND_TRIP_TOL, atol=ROUND_TRIP_TOL):
                raise SiqmlError("model.periodize=true: a mirrored copy is not a valid geometry (e.g. an H-O-H "
                                 "angle past 180 degrees); use model.periodize=false or model.features=cartesian")
            copies.append(copy)
        n = len(copies)
        return np.concatenate(copies), np.tile(energies, n), None

    def options(self) -> dict:
        """What `build_model` needs besides molecule, symmetry and sizes to rebuild this model (model.json)."""
        return {"features": self.features, "feature_range": list(self.feature_range), "periodize": self.periodize,
                "feature_min": None if self.feature_min is None else list(self.feature_min),
                "feature_max": None if self.feature_max is None else list(self.feature_max)}

    # ------------------------------------------------------------------ Qiskit

    def observable(self, weights: dict | None = None) -> SparsePauliOp:
        """Z_0, the first qubit's polarisation; nothing in it is trained, so `weights` changes nothing."""
        return SparsePauliOp.from_sparse_list([("Z", [0], 1.0)], num_qubits=self.n_qubits)

    def observable_terms(self) -> list[SparsePauliOp]:
        return [self.observable()]

    def observable_weights(self, weights: dict) -> np.ndarray:
        return np.ones(1)

    def to_qiskit(self) -> tuple[QuantumCircuit, SparsePauliOp]:
        """The circuit with named parameters: `theta` (weights, flattened) and `enc` (the F scaled features)."""
        n = self.n_qubits
        theta = ParameterVector("theta", self.n_trainable())
        enc = ParameterVector("enc", self.n_features)
        qc = QuantumCircuit(n, name=f"VQLM_{self.name}_{self.features}")

        def encode() -> None:
            for q, k in enumerate(self.qubit_features):
                qc.ry(enc[k], q)

        encode()
        for d in range(self.layers):
            qc.barrier()
            for b in range(self.blocks):
                base = (d * self.blocks + b) * n * 2
                for q in range(n):
                    qc.ry(theta[base + 2 * q], q)
                    qc.rz(theta[base + 2 * q + 1], q)
                cnot_ring(qc)
            qc.barrier()
            encode()
        return qc, self.observable()

    @double_precision
    def parameter_values(self, circuit: QuantumCircuit, weights: dict, positions: np.ndarray) -> np.ndarray:
        """Values for `circuit.parameters`, one row per configuration (Estimator V2 parameter arrays)."""
        positions = np.asarray(positions, dtype=float).reshape(-1, len(self.species), 3)
        n = len(positions)
        named = {"theta": np.broadcast_to(np.ravel(weights["theta"]), (n, self.n_trainable())),
                 "enc": np.asarray(self.scaled_features(jnp.asarray(positions)))}
        return np.stack([named[p.vector.name][:, p.index] for p in circuit.parameters], axis=1)

    def bound_circuit(self, weights: dict, positions: np.ndarray) -> QuantumCircuit:
        """The circuit for one configuration (A, 3), every parameter bound."""
        qc, _ = self.to_qiskit()
        return qc.assign_parameters(self.parameter_values(qc, weights, positions)[0])


def cnot_ring(qc: QuantumCircuit) -> None:
    """CX(0, 1) CX(1, 2) ... CX(n-1, 0): the entangler of the hardware-efficient ansatz."""
    n = qc.num_qubits
    for q in range(n):
        qc.cx(q, (q + 1) % n)


def build(molecule: str, layers: int, blocks: int, model: ModelConfig | None = None,
          feature_min=None, feature_max=None) -> GenericSpec:
    """The generic VQLM for `molecule`; `model` (checked settings) gives features, feature_range and periodize,
    and a trained model its fitted feature_min / feature_max."""
    model = model or ModelConfig()
    features = model.features.value
    feature_map = FEATURE_MAPS[(molecule, features)]
    fitted = {}
    for key, value in (("feature_min", feature_min), ("feature_max", feature_max)):
        if value is not None:
            fitted[key] = tuple(float(v) for v in value)
            if len(fitted[key]) != len(feature_map.names):
                raise SiqmlError(f"{key} has {len(fitted[key])} entries, the {features} features of {molecule} "
                                 f"are {len(feature_map.names)}; the run's model.json does not match this model")
    low, high = (float(v) for v in model.feature_range)
    return GenericSpec(name=molecule, species=species_of(molecule), layers=layers, blocks=blocks,
                       features=features, feature_map=feature_map, feature_range=(low, high), periodize=model.periodize,
                       **fitted)
