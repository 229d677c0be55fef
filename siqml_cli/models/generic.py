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
from siqml_cli.models.graph import bond_graph
from siqml_cli.models.spec import check_orbit_synthesis
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
    `geometry`: features (N, F) and positions (N, A, 3) -> positions with those features (mirrored copies),
    or None where the map has none (automatic maps: `model.periodize` is refused for them).
    `rotations` / `reflections`: whether the features are invariant under them (all are under translations)."""

    names: tuple[str, ...]
    raw: Callable
    geometry: Callable | None
    rotations: bool = True
    reflections: bool = True


FEATURE_MAPS = {
    ("lih", "internal"): FeatureMap(("d",), lih_bond, lih_bond_geometry),
    ("h2o", "internal"): FeatureMap(("r1", "r2", "angle"), h2o_internal, h2o_internal_geometry),
    ("lih", "cartesian"): FeatureMap(("x_H", "y_H", "z_H"), lih_cartesian, lih_cartesian_geometry,
                                     rotations=False, reflections=False),
    ("h2o", "cartesian"): FeatureMap(("x_1", "y_1", "z_1", "x_2", "y_2", "z_2"), h2o_cartesian,
                                     h2o_cartesian_geometry, rotations=False, reflections=False),
}
MOLECULES = tuple(sorted({molecule for molecule, _ in FEATURE_MAPS}))


# --------------------------------------------------------------------------- any molecule: a Z-matrix

#: a triple (i, a, b) spans no plane for a dihedral when its reference angle at `a` lies within this many
#: degrees of 0 or 180 (room for the bends that sampled configurations make around the reference)
COLLINEAR_DEGREES = 25.0


def zmatrix(species, reference_positions) -> tuple[tuple[int, ...], ...]:
    """The Z-matrix of a molecule: one row per atom in placement order, (atom,), (atom, a), (atom, a, b) or
    (atom, a, b, c) -- the atom's distance to `a`, its angle at `a` with `b`, its dihedral about a-b with `c`.

    Placement: a breadth-first traversal of the covalent bond graph (`graph.bond_graph`) from the heaviest
    atom (the first on a tie), neighbours heaviest first, then by index; each atom's `a` is the atom it
    was reached from. A disconnected graph (a cluster) continues from the heaviest atom not yet placed,
    whose `a` is the nearest placed atom in the reference geometry. `b` is `a`'s own `a`, else the
    earliest placed atom; `c` likewise `b`'s own `a`, else the earliest placed atom -- in each case the
    first candidate whose triple ((i, a, b), resp. (a, b, c)) is not collinear in the reference geometry
    (`COLLINEAR_DEGREES`). An atom whose triples are all collinear (a linear chain) keeps the first
    candidate for its angle and has no dihedral.
    """
    from ase.data import atomic_numbers

    species = tuple(str(s) for s in species)
    x = np.asarray(reference_positions, dtype=float)
    graph = bond_graph(species, x)  # also checks the shape and the elements

    def heaviest_first(atom: int):
        return -atomic_numbers[species[atom]], atom

    def bent(i: int, a: int, b: int) -> bool:
        u, v = x[i] - x[a], x[b] - x[a]
        angle = math.degrees(math.atan2(np.linalg.norm(np.cross(u, v)), float(u @ v)))
        return COLLINEAR_DEGREES < angle < 180.0 - COLLINEAR_DEGREES

    order: list[int] = []
    parent: dict[int, int] = {}
    while len(order) < len(species):
        root = min((a for a in range(len(species)) if a not in order), key=heaviest_first)
        if order:
            parent[root] = min(order, key=lambda a: np.linalg.norm(x[a] - x[root]))
        order.append(root)
        queue = [root]
        while queue:
            atom = queue.pop(0)
            for neighbour in sorted(graph.neighbors(atom), key=heaviest_first):
                if neighbour not in order:
                    parent[neighbour] = atom
                    order.append(neighbour)
                    queue.append(neighbour)

    def candidates(first: int | None, placed: list[int], exclude: set[int]) -> list[int]:
        found = [first] if first is not None else []
        return [c for c in dict.fromkeys(found + placed) if c not in exclude]

    rows = []
    for k, i in enumerate(order):
        if k < 2:
            rows.append((i,) if k == 0 else (i, parent[i]))
            continue
        a = parent[i]
        choices = candidates(parent.get(a), order[:k], {i, a})
        b = next((c for c in choices if bent(i, a, c)), choices[0])
        c = None
        if k >= 3 and bent(i, a, b):
            c = next((c for c in candidates(parent.get(b), order[:k], {i, a, b}) if bent(a, b, c)), None)
        rows.append((i, a, b) if c is None else (i, a, b, c))
    return tuple(rows)


def _pairs(x, first, second):
    return x[..., first, :] - x[..., second, :]


def zmatrix_feature_map(species, reference_positions) -> FeatureMap:
    """The internal coordinates of `zmatrix`, row by row: each distance |r_i - r_a|, each angle at a (by atan2, as
    `h2o_internal`), each dihedral about a-b as its cosine and sine.

    cos and sin rather than the angle: a dihedral jumps from pi to -pi where the torsion passes through a
    planar configuration (H2O2's trans geometry is sampled at 1000 K), and |dihedral| has a kink there;
    cos and sin are smooth everywhere the dihedral is defined, and together they fix the geometry up to a
    rotation and a translation. So the features are rotation and translation invariant; a reflection
    changes the sign of every sine (the energy is reflection invariant, so the model must learn that, as it
    must learn the exchange of identical atoms). Without a dihedral (three atoms, linear chains) they are
    invariant under reflections too.
    """
    species = tuple(str(s) for s in species)
    rows = zmatrix(species, reference_positions)
    label = [f"{element}{k}" for k, element in enumerate(species)]
    distances = [r[:2] for r in rows[1:]]
    angles = [r[:3] for r in rows if len(r) >= 3]
    dihedrals = [r for r in rows if len(r) == 4]
    kinds = (("r", 2, distances), ("angle", 3, angles), ("cos dihedral", 4, dihedrals),
             ("sin dihedral", 4, dihedrals))
    computed = [(kind, r[0]) for kind, _, kind_rows in kinds for r in kind_rows]  # the order `raw` computes
    names, columns = [], []
    for r in rows:  # the features in row order
        for kind, size, _ in kinds:
            if len(r) >= size:
                names.append(f"{kind}({'-'.join(label[a] for a in r[:size])})")
                columns.append(computed.index((kind, r[0])))
    index = {size: np.array([r[:size] for r in kind_rows], dtype=int).reshape(-1, size).T
             for _, size, kind_rows in kinds}
    columns = np.array(columns)

    def raw(positions):
        d_i, d_a = index[2]
        a_i, a_a, a_b = index[3]
        t_i, t_a, t_b, t_c = index[4]
        u, v = _pairs(positions, a_i, a_a), _pairs(positions, a_b, a_a)
        b0, b1, b2 = _pairs(positions, t_i, t_a), _pairs(positions, t_b, t_a), _pairs(positions, t_c, t_b)
        n1, n2 = jnp.cross(b0, b1), jnp.cross(b1, b2)
        scale = _norm(n1) * _norm(n2)
        features = [_norm(_pairs(positions, d_i, d_a)),
                    jnp.arctan2(_norm(jnp.cross(u, v)), jnp.sum(u * v, axis=-1)),
                    jnp.sum(n1 * n2, axis=-1) / scale,
                    jnp.sum(jnp.cross(n1, n2) * b1, axis=-1) / (scale * _norm(b1))]
        return jnp.concatenate(features, axis=-1)[..., columns]

    return FeatureMap(tuple(names), raw, None, rotations=True, reflections=not dihedrals)


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
    #: the reference geometry an automatic feature map (`build_auto`) was built from; None for the paper's maps
    reference_geometry: tuple[tuple[float, ...], ...] | None = None

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
        """What `build_model` needs besides molecule, symmetry and sizes to rebuild this model (model.json); an
        automatic model adds its species and reference geometry, from which `build_auto` rebuilds its features."""
        options = {"features": self.features, "feature_range": list(self.feature_range), "periodize": self.periodize,
                   "feature_min": None if self.feature_min is None else list(self.feature_min),
                   "feature_max": None if self.feature_max is None else list(self.feature_max)}
        if self.reference_geometry is not None:
            options |= {"construction": "auto", "species": list(self.species),
                        "reference_geometry": [list(r) for r in self.reference_geometry]}
        return options

    # ------------------------------------------------------------------ Qiskit

    def observable(self, weights: dict | None = None) -> SparsePauliOp:
        """Z_0, the first qubit's polarisation; nothing in it is trained, so `weights` changes nothing."""
        return SparsePauliOp.from_sparse_list([("Z", [0], 1.0)], num_qubits=self.n_qubits)

    def observable_terms(self) -> list[SparsePauliOp]:
        return [self.observable()]

    def observable_weights(self, weights: dict) -> np.ndarray:
        return np.ones(1)

    def to_qiskit(self, orbit_synthesis: str = "exact", trotter_steps: int = 1,
                  trotter_order: int = 2) -> tuple[QuantumCircuit, SparsePauliOp]:
        """The circuit with named parameters: `theta` (weights, flattened) and `enc` (the F scaled features).

        It has no orbit gates, so the synthesis options (checked and taken for the interface `ModelSpec` shares)
        change nothing."""
        check_orbit_synthesis(orbit_synthesis, trotter_steps, trotter_order)
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

    def bound_circuit(self, weights: dict, positions: np.ndarray, **synthesis) -> QuantumCircuit:
        """The circuit for one configuration (A, 3), every parameter bound; `synthesis`: `to_qiskit`'s options."""
        qc, _ = self.to_qiskit(**synthesis)
        return qc.assign_parameters(self.parameter_values(qc, weights, positions)[0])


def cnot_ring(qc: QuantumCircuit) -> None:
    """CX(0, 1) CX(1, 2) ... CX(n-1, 0): the entangler of the hardware-efficient ansatz."""
    n = qc.num_qubits
    for q in range(n):
        qc.cx(q, (q + 1) % n)


def _fitted(feature_map: FeatureMap, description: str, feature_min, feature_max) -> dict:
    """A trained model's saved feature scaling, checked against the features it scales."""
    fitted = {}
    for key, value in (("feature_min", feature_min), ("feature_max", feature_max)):
        if value is not None:
            fitted[key] = tuple(float(v) for v in value)
            if len(fitted[key]) != len(feature_map.names):
                raise SiqmlError(f"{key} has {len(fitted[key])} entries, the {description} are "
                                 f"{len(feature_map.names)}; the run's model.json does not match this model")
    return fitted


def build(molecule: str, layers: int, blocks: int, model: ModelConfig | None = None,
          feature_min=None, feature_max=None) -> GenericSpec:
    """The generic VQLM for `molecule`; `model` (checked settings) gives features, feature_range and periodize,
    and a trained model its fitted feature_min / feature_max."""
    model = model or ModelConfig()
    features = model.features.value
    feature_map = FEATURE_MAPS[(molecule, features)]
    fitted = _fitted(feature_map, f"{features} features of {molecule}", feature_min, feature_max)
    low, high = (float(v) for v in model.feature_range)
    return GenericSpec(name=molecule, species=species_of(molecule), layers=layers, blocks=blocks,
                       features=features, feature_map=feature_map, feature_range=(low, high), periodize=model.periodize,
                       **fitted)


def build_auto(name: str, species, reference_positions, layers: int, blocks: int, model: ModelConfig | None = None,
               feature_min=None, feature_max=None) -> GenericSpec:
    """The generic VQLM of any molecule, on the internal coordinates of its Z-matrix (`zmatrix_feature_map`) built
    from `species` and `reference_positions` (A, 3) in Angstrom; `model` gives feature_range, and a trained model
    its fitted feature_min / feature_max. `name` is the model's molecule name."""
    model = model or ModelConfig()
    if model.features != "internal":
        raise SiqmlError(f"model.features={model.features.value} exists for {', '.join(MOLECULES)} only; the generic "
                         f"VQLM of {name} reads the internal coordinates of its Z-matrix: use model.features=internal")
    if model.periodize:
        raise SiqmlError(f"model.periodize=true needs mirrored geometries, which the automatic Z-matrix features of "
                         f"{name} do not build: use model.periodize=false")
    for option, value in (("layers", layers), ("blocks", blocks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SiqmlError(f"{option} must be a positive integer, got {value!r}")
    species = tuple(str(s) for s in species)
    reference = np.asarray(reference_positions, dtype=float)
    feature_map = zmatrix_feature_map(species, reference)
    fitted = _fitted(feature_map, f"Z-matrix features of {name}", feature_min, feature_max)
    low, high = (float(v) for v in model.feature_range)
    return GenericSpec(name=name, species=species, layers=layers, blocks=blocks, features="internal",
                       feature_map=feature_map, feature_range=(low, high),
                       reference_geometry=tuple(tuple(float(v) for v in r) for r in reference), **fitted)
