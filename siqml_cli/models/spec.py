"""A siVQLM written down once, as data: which qubit encodes what, which pairs share a weight.

`ModelSpec` is the single definition each molecule module fills in. The Qiskit circuit
(`to_qiskit`) and the fast simulator (`siqml_cli.simulate`) are both generated from it, so
they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from siqml_cli.errors import SiqmlError
from siqml_cli.models import blocks

#: how `ModelSpec.to_qiskit` writes an orbit gate whose pairs share qubits: exactly, or as a product formula
ORBIT_SYNTHESES = ("exact", "trotter")


@dataclass(frozen=True)
class Encoding:
    """Phi_qubit(sign * x[vector]; alpha[scale]): one equivariant encoding gate of a layer."""

    qubit: int
    vector: int
    scale: int
    sign: float = 1.0


@dataclass(frozen=True)
class Coupling:
    """exp(-i theta[weight] * sum_{(i,j) in pairs} H_ij): the pairs of one orbit share one weight."""

    pairs: tuple[tuple[int, int], ...]
    weight: int


@dataclass(frozen=True)
class ModelSpec:
    """Re-uploading siVQLM M = Phi(alpha_D) U_D ... Phi(alpha_1) U_1 Phi(alpha_0) on singlets (Eqs. 1-3).

    Gates are listed in the order they act. `centre` maps positions (A, 3) to the encoded
    vectors (V, 3) with array operations only, so autodiff carries forces through it.

    The observable is the sum of H_ij over `observable_pairs`. With `observable_orbits`
    it is trained instead: O = sum_g w_g sum_{(i,j) in orbit g} H_ij, one weight `observable[g]` per
    orbit of qubit pairs under the symmetry group (each such sum is invariant, so any weights keep
    every symmetry), starting at the fixed observable (w_g = 1 on the orbits it holds, 0 elsewhere).
    """

    name: str
    species: tuple[str, ...]
    n_qubits: int
    layers: int
    blocks: int
    symmetry: str
    centre: Callable
    singlets: tuple[tuple[int, int], ...]
    encoding: tuple[Encoding, ...]
    couplings: tuple[Coupling, ...]
    observable_pairs: tuple[tuple[int, int], ...]
    symmetry_breaking: bool = False
    #: (key, value) options that `build_model` needs to rebuild this model, saved in model.json
    build_options: tuple[tuple[str, object], ...] = ()
    #: where the encoding scales alpha start (1 in the reference construction); a training choice, not part of the model
    alpha_init: float = 1.0
    #: orbits of qubit pairs whose H sums the trained observable weighs; () = the fixed observable
    observable_orbits: tuple[tuple[tuple[int, int], ...], ...] = ()

    def __post_init__(self):
        held = set(self.observable_pairs)
        if self.observable_orbits and any(held & set(o) not in (set(), set(o)) for o in self.observable_orbits):
            raise ValueError("the fixed observable must be a union of the trained observable's orbits")

    # ------------------------------------------------------------------ sizes

    @property
    def n_scales(self) -> int:
        return 1 + max(e.scale for e in self.encoding)

    @property
    def n_weights_per_block(self) -> int:
        return 1 + max(c.weight for c in self.couplings)

    @property
    def observable_range(self) -> tuple[float, float]:
        """Spectrum bounds of the observable (each H_ij lies in [-3, 1]); sparse Lanczos beyond 8 qubits."""
        if self.n_qubits <= 8:
            eig = np.linalg.eigvalsh(blocks.heisenberg_generator(self.n_qubits, self.observable_pairs))
            return float(eig.min()), float(eig.max())
        from scipy.sparse.linalg import eigsh

        matrix = self.observable().to_matrix(sparse=True).real  # a sum of XX + YY + ZZ: real symmetric
        low, high = (float(eigsh(matrix, k=1, which=which, return_eigenvectors=False, tol=1e-12)[0])
                     for which in ("SA", "LA"))
        return low, high

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"theta": (self.layers, self.blocks, self.n_weights_per_block),
                  "alpha": (self.layers + 1, self.n_scales)}
        if self.symmetry_breaking:
            shapes["eps"] = (self.layers,)
        if self.observable_orbits:
            shapes["observable"] = (len(self.observable_orbits),)
        return shapes

    def n_trainable(self) -> int:
        return int(sum(np.prod(s) for s in self.weight_shapes().values()))

    def init_weights(self, seed: int, eps_std: float = 1e-3) -> dict[str, np.ndarray]:
        """Grant et al. 2019: first layer uniform in [0, pi), the rest 0; scales alpha_init; eps ~ N(0, eps_std);
        a trained observable starts as the fixed one."""
        rng = np.random.default_rng(seed)
        shapes = self.weight_shapes()
        theta = np.zeros(shapes["theta"])
        theta[0] = rng.uniform(0.0, np.pi, size=shapes["theta"][1:])
        weights = {"theta": theta, "alpha": np.full(shapes["alpha"], self.alpha_init)}
        if self.symmetry_breaking:
            weights["eps"] = rng.normal(0.0, eps_std, size=shapes["eps"])
        if self.observable_orbits:
            weights["observable"] = self.fixed_observable_weights()
        return weights

    def fixed_observable_weights(self) -> np.ndarray:
        """The trained observable's weights that make it the fixed one: 1 on the orbits it holds, 0 elsewhere."""
        held = set(self.observable_pairs)
        return np.array([1.0 if set(o) <= held else 0.0 for o in self.observable_orbits])

    def random_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Generic weights (not an initialisation): for testing symmetries away from the identity."""
        rng = np.random.default_rng(seed)
        out = {k: rng.uniform(-np.pi, np.pi, size=s) for k, s in self.weight_shapes().items()}
        out["alpha"] = rng.uniform(0.3, 2.0, size=self.weight_shapes()["alpha"])
        if self.symmetry_breaking:
            out["eps"] = rng.uniform(-0.5, 0.5, size=self.weight_shapes()["eps"])
        if self.observable_orbits:
            out["observable"] = rng.uniform(-1.0, 1.0, size=self.weight_shapes()["observable"])
        return out

    # ------------------------------------------------------------------ data (the interface GenericSpec shares)

    def fit(self, positions: np.ndarray) -> ModelSpec:
        """A siVQLM takes Cartesian positions as they are: nothing to fit on the training split."""
        return self

    def training_copies(self, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray | None):
        """The training set as given (the generic VQLM may add mirrored copies)."""
        return positions, energies, forces

    def options(self) -> dict:
        """Build options beyond molecule, symmetry and sizes (the water dimer's frame and atom readout)."""
        return dict(self.build_options)

    def encoding_function(self, weights: dict):
        """positions (A, 3) -> the `enc` values (in `enc` order) that `parameter_values` computes, in JAX, so
        backend forces and QNN training can differentiate them in positions and in the scales alpha."""
        import jax.numpy as jnp

        vec_index = np.array([e.vector for e in self.encoding])
        scale_index = np.array([e.scale for e in self.encoding])
        signs = jnp.asarray([e.sign for e in self.encoding])
        scales = jnp.asarray(weights["alpha"])[:, scale_index] * signs[None, :]  # (D+1, n_enc)

        def angles(positions):
            x = self.centre(positions[None])[0][vec_index]  # (n_enc, 3)
            return blocks.encoding_euler_angles_jax(scales[:, :, None] * x[None, :, :]).reshape(-1)

        return angles

    # ------------------------------------------------------------------ Qiskit

    @property
    def readout_pairs(self) -> tuple[tuple[int, int], ...]:
        """Every pair the observable reads: the fixed pairs, or those of every trained orbit in order."""
        if not self.observable_orbits:
            return self.observable_pairs
        return tuple(pair for orbit in self.observable_orbits for pair in orbit)

    @property
    def readout_orbit_index(self) -> np.ndarray:
        """For each of `readout_pairs`, the index of its term's weight in `observable_weights` (a fixed
        observable is one term of weight 1)."""
        if not self.observable_orbits:
            return np.zeros(len(self.observable_pairs), dtype=int)
        return np.array([g for g, orbit in enumerate(self.observable_orbits) for _ in orbit], dtype=int)

    def observable(self, weights: dict | None = None) -> SparsePauliOp:
        """The observable; a trained one with the `observable` weights of `weights` (without them: as it starts)."""
        if not self.observable_orbits:
            return blocks.heisenberg_interaction(self.n_qubits, self.observable_pairs)
        w = self.fixed_observable_weights() if weights is None else np.asarray(self.observable_weights(weights), float)
        return sum(w[g] * term for g, term in enumerate(self.observable_terms())).simplify()

    def observable_terms(self) -> list[SparsePauliOp]:
        """The observables that `observable_weights` weigh into `observable`: one H sum per orbit (or the fixed one)."""
        if not self.observable_orbits:
            return [self.observable()]
        return [blocks.heisenberg_interaction(self.n_qubits, orbit) for orbit in self.observable_orbits]

    def observable_weights(self, weights: dict):
        """The weights of `observable_terms` (NumPy or, inside a traced function, JAX)."""
        return weights["observable"] if self.observable_orbits else np.ones(1)

    def to_qiskit(self, orbit_synthesis: str = "exact", trotter_steps: int = 1,
                  trotter_order: int = 2) -> tuple[QuantumCircuit, SparsePauliOp]:
        """The circuit with named parameters: `theta`, `eps` (weights) and `enc` (encoding U angles), and the
        observable as it starts (`observable(weights)` gives a trained one).

        `orbit_synthesis` writes each orbit gate whose pairs share qubits exactly (`blocks.orbit_gate`, what the
        simulator computes) or as a product formula of `trotter_steps` steps of order `trotter_order`
        (`blocks.trotter_orbit_gate`; its error: `trotter_error`). Gates of single pairs are exact either way."""
        check_orbit_synthesis(orbit_synthesis, trotter_steps, trotter_order)
        shapes = self.weight_shapes()
        theta = ParameterVector("theta", int(np.prod(shapes["theta"])))
        enc = ParameterVector("enc", (self.layers + 1) * len(self.encoding) * 3)
        eps = ParameterVector("eps", self.layers) if self.symmetry_breaking else None
        qc = QuantumCircuit(self.n_qubits, name=f"siVQLM_{self.name}_{self.symmetry}")
        for i, j in self.singlets:
            blocks.singlet(qc, i, j)

        def encode(d: int) -> None:
            for k, e in enumerate(self.encoding):
                base = (d * len(self.encoding) + k) * 3
                blocks.equivariant_encoding(qc, e.qubit, enc[base:base + 3])

        encode(0)
        per_layer = self.blocks * self.n_weights_per_block
        for d in range(self.layers):
            qc.barrier()
            for b in range(self.blocks):
                for c in self.couplings:
                    w = theta[d * per_layer + b * self.n_weights_per_block + c.weight]
                    for pairs in orbit_components(c.pairs):
                        if len(pairs) == 1:
                            blocks.heisenberg_gate(qc, w, *pairs[0])
                        elif orbit_synthesis == "trotter":
                            blocks.trotter_orbit_gate(qc, w, pairs, trotter_steps, trotter_order)
                        else:
                            blocks.orbit_gate(qc, w, pairs)
            if self.symmetry_breaking:
                blocks.symmetry_breaking(qc, eps[d], range(self.n_qubits))
            qc.barrier()
            encode(d + 1)
        return qc, self.observable()

    def rotation_vectors(self, weights: dict, positions: np.ndarray) -> np.ndarray:
        """alpha * sign * x for every encoding gate: shape (N, D+1, n_encoding, 3)."""
        vectors = np.asarray(self.centre(np.asarray(positions, dtype=float)))  # (N, V, 3)
        vec_index = [e.vector for e in self.encoding]
        scale_index = [e.scale for e in self.encoding]
        signs = np.array([e.sign for e in self.encoding])
        alpha = np.asarray(weights["alpha"])[:, scale_index]  # (D+1, n_enc)
        x = vectors[:, vec_index, :]  # (N, n_enc, 3)
        return alpha[None, :, :, None] * signs[None, None, :, None] * x[:, None, :, :]

    def parameter_values(self, circuit: QuantumCircuit, weights: dict, positions: np.ndarray) -> np.ndarray:
        """Values for `circuit.parameters`, one row per configuration (Estimator V2 parameter arrays)."""
        positions = np.asarray(positions, dtype=float).reshape(-1, len(self.species), 3)
        n = len(positions)
        named = {"theta": np.broadcast_to(np.ravel(weights["theta"]), (n, np.size(weights["theta"]))),
                 "enc": blocks.encoding_euler_angles(self.rotation_vectors(weights, positions)).reshape(n, -1)}
        if self.symmetry_breaking:
            named["eps"] = np.broadcast_to(np.ravel(weights["eps"]), (n, self.layers))
        columns = []
        for p in circuit.parameters:
            columns.append(named[p.vector.name][:, p.index])
        return np.stack(columns, axis=1)

    def bound_circuit(self, weights: dict, positions: np.ndarray, **synthesis) -> QuantumCircuit:
        """The circuit for one configuration (A, 3), every parameter bound; `synthesis`: `to_qiskit`'s options."""
        qc, _ = self.to_qiskit(**synthesis)
        values = self.parameter_values(qc, weights, positions)[0]
        return qc.assign_parameters(values)


def pair_orbits(n_qubits: int, generators) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The orbits of the qubit pairs (i < j) under the group that the qubit permutations `generators`
    (each a sequence: qubit -> its image) generate, each sorted, in the order of their smallest pair."""
    remaining = {(i, j) for i in range(n_qubits) for j in range(i + 1, n_qubits)}
    orbits = []
    while remaining:
        orbit, frontier = set(), [min(remaining)]
        while frontier:
            pair = frontier.pop()
            if pair not in orbit:
                orbit.add(pair)
                frontier += [tuple(sorted((g[pair[0]], g[pair[1]]))) for g in generators]
        orbits.append(tuple(sorted(orbit)))
        remaining -= orbit
    return tuple(orbits)


def orbit_components(pairs) -> list[tuple[tuple[int, int], ...]]:
    """Split an orbit's pairs into groups linked by shared qubits.

    exp(-i theta sum H_ij) is the product of one gate per group, exactly, because groups act on
    disjoint qubits and commute; inside a group the pairs share qubits and stay one gate (the
    water dimer's three-qubit "star").
    """
    groups: list[list[tuple[int, int]]] = []
    for pair in pairs:
        linked = [g for g in groups if any(set(pair) & set(p) for p in g)]
        merged = [p for g in linked for p in g] + [tuple(pair)]
        groups = [g for g in groups if g not in linked] + [merged]
    return [tuple(g) for g in groups]


def check_orbit_synthesis(orbit_synthesis: str, trotter_steps: int, trotter_order: int) -> None:
    """A one-line SiqmlError for export options `to_qiskit` cannot follow."""
    if orbit_synthesis not in ORBIT_SYNTHESES:
        raise SiqmlError(f"orbit_synthesis must be one of {', '.join(ORBIT_SYNTHESES)}, got {orbit_synthesis!r}")
    if isinstance(trotter_steps, bool) or not isinstance(trotter_steps, int) or trotter_steps < 1:
        raise SiqmlError(f"trotter_steps must be a positive integer, got {trotter_steps!r}")
    if isinstance(trotter_order, bool) or not isinstance(trotter_order, int) or not (
            trotter_order == 1 or (trotter_order >= 2 and trotter_order % 2 == 0)):
        raise SiqmlError(f"trotter_order must be 1 (Lie-Trotter) or even (Suzuki-Trotter: 2, 4, ...), "
                         f"got {trotter_order!r}")


@dataclass(frozen=True)
class TrotterError:
    """How far a product-formula export (`to_qiskit(orbit_synthesis="trotter")`) is from the exact circuit.

    `max_gate`: the largest distance, up to a global phase, in operator norm, of one Trotterised orbit gate from
    the exact gate, over every such gate of the circuit at the given weights. `circuit_bound`: their sum, which
    bounds the distance of the whole circuit's unitary from the exact one (triangle inequality; every other gate
    is the same in both), so the model's output <O> moves by at most 2 ||O|| circuit_bound. `gates`: how many gates
    the product formula replaces (0: the export is exact)."""

    max_gate: float
    circuit_bound: float
    gates: int


def trotter_error(spec: ModelSpec, weights: dict, trotter_steps: int = 1, trotter_order: int = 2) -> TrotterError:
    """The error of `spec.to_qiskit(orbit_synthesis="trotter", ...)` against the exact export at `weights`
    (`TrotterError`): each wide orbit gate's Qiskit product formula against exp(-i theta sum H_ij) at its theta."""
    check_orbit_synthesis("trotter", trotter_steps, trotter_order)
    theta = np.asarray(weights["theta"], dtype=float)  # (D, B, weights per block)
    distances = [blocks.trotter_distance(float(value), pairs, trotter_steps, trotter_order)
                 for c in spec.couplings for pairs in orbit_components(c.pairs) if len(pairs) > 1
                 for value in theta[..., c.weight].ravel()]
    return TrotterError(max_gate=max(distances, default=0.0), circuit_bound=float(sum(distances)),
                        gates=len(distances))
