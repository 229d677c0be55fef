"""Batched statevector simulation of a `ModelSpec` in JAX, as a short chain of real matrix products.

Why this shape (measured with XLA on CPU): a dense matrix product over the batch runs near the
machine's multiply speed, a real product about twice as fast as a complex one of the same size, and
a transpose of the state costs about a quarter of a 64 x 64 product; elementwise per-qubit updates,
small complex products and chains of them are slow, and slow to compile. So:

- the state is real, (N, 2^n * 2): each complex amplitude is an interleaved (re, im) pair, and a
  complex gate on k qubits is applied as its real 2^(k+1) x 2^(k+1) form to the k least significant
  qubits; `plan` tracks the qubit order at trace time and transposes the state only when an
  operation's qubits are not already the lowest ones (the water dimer: 3 transposes per layer);
- each trainable layer is fused, once per step, into few dense unitaries on at most `FUSE_QUBITS`
  qubits (`fuse_layer`), built by applying its gates to an identity;
- SB(eps) = prod_q RZ_q(eps) commutes with every Heisenberg gate, so it is folded into the
  per-qubit encoding gates that follow it;
- the per-configuration encoding gates are merged into gates on chunks of up to
  `MAX_ENCODING_CHUNK` qubits, one batched product each; when the state is large, the chunk on the
  first block's qubits is multiplied into that block of the next layer;
- the encoding of layer 0 (and the first block, when it acts on whole singlets) is applied to the
  factors of the initial product state, before it is expanded.
- the observable, a sum of Heisenberg terms over qubit pairs, is read from transposed copies of the
  state when it has few pairs, and from the state's probabilities in the Z, X and Y bases (two
  Hadamard transforms, matrix products) when it has many (a trained observable).

For the 12-qubit water dimer a layer is 5 products (the O-O block times the previous O encodings,
one 64 x 64 block per molecule, the H encodings of each molecule). States of at most
`SMALL_STATE_QUBITS` qubits (LiH, H2O) take a shorter road (`Simulator._final_dense`): a complex
state, one unitary per layer and a `lax.scan` over the layers. Amplitudes of `states` are indexed as
in Qiskit (qubit 0 is the least significant bit), so they equal `Statevector` of the bound circuit
(up to the global phase of its encoding rotations).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siqml_cli.models import blocks
from siqml_cli.models.spec import ModelSpec, orbit_components
from siqml_cli.precision import double_precision

#: largest support of a fused block: a 64 x 64 unitary (real 128 x 128) is the size at which the
#: products run fastest per multiply-add here, and it holds one water molecule
FUSE_QUBITS = 6
#: largest support of a merged per-configuration encoding gate: bigger ones cost more to apply than
#: the separate products they replace
MAX_ENCODING_CHUNK = 4
#: up to this many qubits the state stays complex and each layer is one unitary (`Simulator._final_dense`):
#: the state is so small that the number of operations, not their work, sets the time
SMALL_STATE_QUBITS = 4
#: up to this many observable pairs, the expectation takes one transposed copy of the state per pair;
#: beyond, it reads the state in three bases (`Simulator._expectation_by_bases`)
SWAP_READOUT_PAIRS = 24
#: I, -iX, -iY, -iZ: a one-qubit SU(2) gate is a real combination of these
QUATERNION_BASIS = np.stack([np.eye(2), -1j * blocks.PAULI["X"], -1j * blocks.PAULI["Y"], -1j * blocks.PAULI["Z"]])


def enable_compilation_cache() -> None:
    """Keep compiled steps on disk ($SIQML_JAX_CACHE, default ~/.cache/siqml/jax): a repeated run
    of the same model and batch shape skips XLA compilation."""
    folder = os.environ.get("SIQML_JAX_CACHE") or str(Path.home() / ".cache" / "siqml" / "jax")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@dataclass
class FusedBlock:
    """Consecutive gates of a layer fused into one unitary on `qubits` (sorted).

    `gates` lists (block repetition b, weight index, pairs of the gate's orbit component) in the
    order applied.
    """

    qubits: tuple[int, ...]
    gates: list


def fuse_layer(spec: ModelSpec, max_qubits: int = FUSE_QUBITS) -> list[FusedBlock]:
    """Group the gates of one trainable layer into few blocks of at most `max_qubits` qubits.

    A gate joins the last block it overlaps when the union stays small enough (gates on disjoint
    qubits commute, so it may pass the blocks in between); then each block is merged forward into
    the next block it overlaps, when that fits. The product of the blocks is exactly the layer.
    """
    fused: list[tuple[set, list]] = []
    for b in range(spec.blocks):
        for coupling in spec.couplings:
            for pairs in orbit_components(coupling.pairs):
                support = {q for pair in pairs for q in pair}
                overlapping = [k for k, (qubits, _) in enumerate(fused) if qubits & support]
                last = overlapping[-1] if overlapping else None
                if last is not None and len(fused[last][0] | support) <= max_qubits:
                    fused[last][0].update(support)
                    fused[last][1].append((b, coupling.weight, pairs))
                else:
                    fused.append((set(support), [(b, coupling.weight, pairs)]))
    merged = True
    while merged:
        merged = False
        for k in reversed(range(len(fused))):  # small trailing blocks join their successors first
            qubits, gates = fused[k]
            later = next((m for m in range(k + 1, len(fused)) if fused[m][0] & qubits), None)
            if later is not None and len(fused[later][0] | qubits) <= max_qubits:
                fused[later] = (fused[later][0] | qubits, gates + fused[later][1])
                del fused[k]
                merged = True
                break
    return [FusedBlock(tuple(sorted(qubits)), gates) for qubits, gates in fused]


@dataclass(frozen=True)
class Op:
    """One matrix product on the state. `kind`: block (fused block `index` of trainable layer
    `layer`), chunk (the encoding gates of layer `layer` on chunk `index`) or merged (block 0 of
    layer `layer` after the encoding of the layer before on its qubits). The matrix takes its qubits
    in the order `inputs` to the order `outputs` (least significant first); `perm` is the state
    transpose before it, or None."""

    kind: str
    index: int
    layer: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    perm: tuple[int, ...] | None


def plan(steps, order: tuple[int, ...]) -> tuple[list[Op], tuple[int, ...]]:
    """Place each step's qubits as the least significant ones (a transpose, when they are not) and
    let its matrix write them back in the order that puts the next step's qubits lowest, so that
    one often needs no transpose (the water dimer: 3 per layer).

    `steps` lists (kind, index, layer, qubits); `order[p]` is the qubit at position p
    (0 = least significant). Returns the ops and the final order.
    """
    ops = []
    for i, (kind, index, layer, qubits) in enumerate(steps):
        k = len(qubits)
        perm = None
        if set(order[:k]) != set(qubits):
            new = tuple(q for q in order if q in qubits) + tuple(q for q in order if q not in qubits)
            perm = transpose_between(order, new)
            order = new
        following = set(steps[i + 1][3]) if i + 1 < len(steps) else set()
        outputs = tuple(sorted(order[:k], key=lambda q: q not in following))
        ops.append(Op(kind, index, layer, order[:k], outputs, perm))
        order = outputs + order[k:]
    return ops, order


def transpose_between(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """Axes permutation of the state tensor (N, 2 [position n-1], ..., 2 [position 0], 2 [re, im])
    that takes qubit order `old` to `new`."""
    n = len(old)
    return (0,) + tuple(n - old.index(new[n - a]) for a in range(1, n + 1)) + (n + 1,)


def permute_qubits(matrix, qubits: tuple[int, ...], rows: tuple[int, ...], cols: tuple[int, ...]):
    """(..., 2^k, 2^k) on `qubits` (least significant first) -> the same operator with its rows
    indexed in the qubit order `rows` and its columns in the order `cols` (a transpose, not a gather)."""
    k = len(qubits)
    lead = matrix.shape[:-2]
    tensor = matrix.reshape(lead + (2,) * (2 * k))  # row axes, then column axes, most significant first
    axis = {q: k - 1 - i for i, q in enumerate(qubits)}
    order = [axis[q] for q in reversed(rows)] + [k + axis[q] for q in reversed(cols)]
    tensor = jnp.transpose(tensor, tuple(range(len(lead))) + tuple(len(lead) + a for a in order))
    return tensor.reshape(matrix.shape)


def realify(u):
    """Complex (..., K, K) -> real (..., 2K, 2K) acting on interleaved (re, im) pairs:
    Re(u) x I + Im(u) x [[0, -1], [1, 0]] (Kronecker products)."""
    dtype = jnp.finfo(u.dtype).dtype
    eye, turn = jnp.eye(2, dtype=dtype), jnp.array([[0.0, -1.0], [1.0, 0.0]], dtype=dtype)
    out = (jnp.real(u)[..., :, None, :, None] * eye[:, None, :] + jnp.imag(u)[..., :, None, :, None] * turn[:, None, :])
    size = 2 * u.shape[-1]
    return out.reshape(u.shape[:-2] + (size, size))


def apply_to_rows(matrix, gate, positions: list[int]):
    """gate (..., 2^g, 2^g) on the local qubits `positions` (least significant first) of the rows
    of `matrix` (..., 2^k, M)."""
    lead, size, cols = matrix.shape[:-2], matrix.shape[-2], matrix.shape[-1]
    k, g = size.bit_length() - 1, len(positions)
    t = matrix.reshape(lead + (2,) * k + (cols,))
    axes = [len(lead) + k - 1 - p for p in reversed(positions)]  # most significant gate qubit first
    front = list(range(len(lead), len(lead) + g))
    t = jnp.moveaxis(t, axes, front)
    moved = t.shape
    t = jnp.matmul(gate, t.reshape(lead + (2**g, -1)))
    return jnp.moveaxis(t.reshape(moved), front, axes).reshape(matrix.shape)


def kron_gate(gates, rows: tuple[int, ...], cols: tuple[int, ...]):
    """The product of one-qubit gates `gates[q]` (..., 2, 2) as a (..., 2^k, 2^k) matrix with its rows
    indexed in the qubit order `rows` and its columns in the order `cols` (least significant first),
    built by broadcasting (a batched Kronecker product by matrix products is far slower)."""
    k = len(rows)
    out = 1.0
    for q in rows:
        shape = [1] * (2 * k)
        shape[k - 1 - rows.index(q)] = shape[2 * k - 1 - cols.index(q)] = 2
        out = out * gates[q].reshape(gates[q].shape[:-2] + tuple(shape))
    return out.reshape(out.shape[:-2 * k] + (2**k, 2**k))


def precision_dtypes(precision: str) -> tuple:
    """(real, complex) JAX dtypes of a simulator precision, 'double' or 'single'."""
    if precision not in ("double", "single"):
        raise ValueError("precision must be 'double' or 'single'")
    return (jnp.float64, jnp.complex128) if precision == "double" else (jnp.float32, jnp.complex64)


class Simulator:
    """Energies f(X; weights) of the observable, in its own units, for a batch of configurations."""

    @double_precision
    def __init__(self, spec: ModelSpec, precision: str = "double"):
        self.spec = spec
        self.real, self.complex = precision_dtypes(precision)
        n = spec.n_qubits
        self.dim = 2**n
        self.fused = fuse_layer(spec)
        self._group_gates()
        n_vectors = int(np.asarray(spec.centre(np.zeros((1, len(spec.species), 3)))).shape[1])
        signs = np.array([e.sign for e in spec.encoding])
        self.enc_vector_select = jnp.asarray(_one_hot([e.vector for e in spec.encoding], n_vectors), dtype=self.real)
        self.enc_scale_select = jnp.asarray(_one_hot([e.scale for e in spec.encoding], spec.n_scales) * signs[:, None],
                                            dtype=self.real)
        self.dense = n <= SMALL_STATE_QUBITS
        if self.dense:
            self.initial_state = jnp.asarray(blocks.singlet_state(n, spec.singlets), dtype=self.complex)
            self.sb_phases = jnp.asarray(blocks.symmetry_breaking_phases(n), dtype=self.real)
        else:
            paired = {q for pair in spec.singlets for q in pair}
            #: the initial product state's factors: (qubits, state in their order), a singlet or |0>
            self.factors = [(tuple(pair), blocks.singlet_state(2, [(0, 1)])) for pair in spec.singlets]
            self.factors += [((q,), np.array([1.0, 0.0])) for q in range(n) if q not in paired]
            self._plan()
        self.readout_by_bases = not self.dense and len(spec.readout_pairs) > SWAP_READOUT_PAIRS
        if self.readout_by_bases:
            self._readout_bases()

    def _group_gates(self) -> None:
        """Gates with the same generator on their own qubits are exponentiated together: one
        `gate_kinds` entry each, (eigenvalues, eigenvectors, one-hot selection of
        their weights); `block_gates[j]` lists block j's gates in order as (qubits, kind, index)."""
        kinds, weights = [], []
        self.block_gates = []
        for block in self.fused:
            listed = []
            for b, w, pairs in block.gates:
                qubits = tuple(sorted({q for pair in pairs for q in pair}))
                local = {q: i for i, q in enumerate(qubits)}
                generator = blocks.heisenberg_generator(len(qubits), [(local[i], local[j]) for i, j in pairs])
                same = (k for k, g in enumerate(kinds) if g.shape == generator.shape and np.allclose(g, generator))
                kind = next(same, None)
                if kind is None:
                    kind = len(kinds)
                    kinds.append(generator)
                    weights.append([])
                weights[kind].append(b * self.spec.n_weights_per_block + w)
                listed.append((qubits, kind, len(weights[kind]) - 1))
            self.block_gates.append(listed)
        n_weights = self.spec.blocks * self.spec.n_weights_per_block
        self.gate_kinds = []
        for generator, index in zip(kinds, weights):
            values, vectors = np.linalg.eigh(generator)
            self.gate_kinds.append((jnp.asarray(values, dtype=self.real), jnp.asarray(vectors, dtype=self.complex),
                                    jnp.asarray(_one_hot(index, n_weights).T, dtype=self.real)))

    # ------------------------------------------------------------------ plan

    def _plan(self) -> None:
        """The static sequence of products (`ops`) after the initial product state.

        The encoding of layer 0 acts on the product state's factors, and so does the first block of
        layer 1 when its qubits are whole factors (`first_block_on_factors`), before the state is
        expanded. When the state is large next to the first block, the encoding chunk on that
        block's qubits is multiplied into the block of the next layer ("merged"): one product less
        per layer, since their per-configuration product (2^3k) costs less than applying either to
        the state (2^(n+k)).
        """
        spec, n, layers = self.spec, self.spec.n_qubits, self.spec.layers
        first = self.fused[0].qubits if self.fused else ()
        self.merge = bool(first) and len(first) <= MAX_ENCODING_CHUNK and 2 * len(first) < n
        self.first_block_on_factors = bool(first) and layers > 0 and all(
            set(qubits) <= set(first) or not set(qubits) & set(first) for qubits, _ in self.factors)
        encoded = {e.qubit for e in spec.encoding} | (set(range(n)) if spec.symmetry_breaking else set())
        rest = sorted(encoded - set(first)) if self.merge else sorted(encoded)
        size = max(c for c in range(1, MAX_ENCODING_CHUNK + 1) if 4**c <= self.dim)
        self.chunks = ([first] if self.merge else []) + [tuple(rest[i:i + size]) for i in range(0, len(rest), size)]
        own = range(1 if self.merge else 0, len(self.chunks))  # chunks applied on their own in every layer

        def last_block(chunk):
            return max((j for j, b in enumerate(self.fused) if set(b.qubits) & set(chunk)), default=-1)

        steps = []
        for d in range(1, layers + 1):
            steps += [("chunk", c, d, self.chunks[c]) for c in own if last_block(self.chunks[c]) < 0]
            for j, block in enumerate(self.fused):
                if j == 0 and self.merge and d > 1:
                    steps.append(("merged", 0, d, block.qubits))
                elif j > 0 or d > 1 or not self.first_block_on_factors:
                    steps.append(("block", j, d, block.qubits))
                steps += [("chunk", c, d, self.chunks[c]) for c in own if last_block(self.chunks[c]) == j]
        if self.merge and layers > 0:
            steps.append(("chunk", 0, layers, first))
        low = set(steps[0][3]) if steps else set()
        self.start = tuple(sorted(low)) + tuple(q for q in range(n) if q not in low)
        self.ops, self.final_order = plan(steps, self.start)

    def _readout_bases(self) -> None:
        """Constants of the observable's expectation on the general path (`expectation`): the Hadamard
        transform as two Kronecker powers (on the most and the least significant qubits), the phases of
        S^dagger on every qubit, (-i)^(number of ones), as (cos, sin), and the diagonal of
        sum_(i,j) Z_i Z_j over the observable's pairs in the final qubit order: one column per orbit of
        a trained observable, else one column."""
        n = self.spec.n_qubits
        low = n // 2
        hadamard = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)
        self.hadamard_high, self.hadamard_low = (jnp.asarray(reduce_kron(hadamard, k), dtype=self.real)
                                                 for k in (n - low, low))
        bits = (np.arange(self.dim)[:, None] >> np.arange(n)[None, :]) & 1  # bits[b, position]
        phase = (-1j) ** bits.sum(axis=1)
        self.s_dagger = (jnp.asarray(phase.real, dtype=self.real), jnp.asarray(phase.imag, dtype=self.real))
        z = 1 - 2 * bits[:, [self.final_order.index(q) for q in range(n)]]  # z[b, qubit]
        zz = np.stack([z[:, i] * z[:, j] for i, j in self.spec.readout_pairs], axis=1)
        orbit = self.spec.readout_orbit_index
        self.readout_diagonals = jnp.asarray(zz @ _one_hot(orbit, 1 + orbit.max()), dtype=self.real)

    # ------------------------------------------------------------------ matrices

    @double_precision
    def block_unitaries(self, weights) -> list:
        """For each fused block, (D, 2^k, 2^k) complex: the product of its gates in every trainable
        layer (qubits in sorted order), built by applying them one by one to the identity."""
        theta = jnp.asarray(weights["theta"], dtype=self.real)
        theta = theta.reshape(theta.shape[0], -1)  # (D, B * T)
        # exp(-i theta G) = V diag(exp(-i theta lambda)) V^dagger for every gate of each kind: 4^k entries per
        # gate, where a sum over the 2^k eigenprojectors would hold 8^k (a wide orbit gate of the automatic models)
        gates = []
        for values, vectors, select in self.gate_kinds:
            phases = jnp.exp(-1j * (theta @ select)[..., None] * values).astype(self.complex)  # (D, G, 2^g)
            gates.append(jnp.unstack(jnp.einsum("ij,...j,kj->...ik", vectors, phases, vectors.conj()), axis=1))
        out = []
        for block, listed in zip(self.fused, self.block_gates):
            size = 2 ** len(block.qubits)
            unitary = jnp.broadcast_to(jnp.eye(size, dtype=self.complex), (theta.shape[0], size, size))
            for qubits, kind, i in listed:
                unitary = apply_to_rows(unitary, gates[kind][i], [block.qubits.index(q) for q in qubits])
            out.append(unitary)
        return out

    @staticmethod
    def encoding_gate(v) -> jnp.ndarray:
        """exp(-i v.sigma/2) = cos(r/2) I - i sin(r/2)/r v.sigma for rotation vectors v (..., 3): (..., 2, 2)."""
        r = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + jnp.finfo(v.dtype).tiny)
        coefficients = jnp.concatenate([jnp.cos(r / 2), jnp.sin(r / 2) / r * v], axis=-1)
        basis = jnp.asarray(QUATERNION_BASIS, dtype=jnp.result_type(v.dtype, jnp.complex64))
        return jnp.sum(coefficients[..., None, None] * basis, axis=-3)

    @staticmethod
    def encoding_gate_entries(v) -> jnp.ndarray:
        """`encoding_gate` with its four entries written out: on H2O (batch 256, energy+force) a step
        takes a third of the time it takes with the basis sum, on the water dimer 2% longer (and
        compiles 4% slower), so only the small-state path uses it."""
        r = jnp.sqrt(jnp.sum(v * v, axis=-1) + jnp.finfo(v.dtype).tiny)
        c, s = jnp.cos(r / 2), jnp.sin(r / 2) / r
        x, y, z = s * v[..., 0], s * v[..., 1], s * v[..., 2]
        entries = jnp.stack([c - 1j * z, -y - 1j * x, y - 1j * x, c + 1j * z], axis=-1)
        return entries.reshape(v.shape[:-1] + (2, 2))

    def qubit_gates(self, weights, positions) -> list:
        """For every qubit, (D+1, N, 2, 2): its encoding gates in each layer, after SB(eps) of that
        layer (which commutes with the Heisenberg gates before it)."""
        x = jnp.einsum("kv,nvc->nkc", self.enc_vector_select, self.spec.centre(positions))  # (N, n_enc, 3)
        scales = jnp.asarray(weights["alpha"], dtype=self.real) @ self.enc_scale_select.T  # (D+1, n_enc)
        encodings = self.encoding_gate(scales[:, None, :, None] * x[None]).astype(self.complex)  # (D+1, N, n_enc, 2, 2)
        gates = [None] * self.spec.n_qubits
        for e, gate in zip(self.spec.encoding, jnp.unstack(encodings, axis=2)):
            before = gates[e.qubit]
            # a 2 x 2 product as multiply-and-sum: as a batched matrix product it is far slower
            gates[e.qubit] = gate if before is None else jnp.sum(gate[..., None] * before[..., None, :, :], axis=-2)
        eye = jnp.broadcast_to(jnp.eye(2, dtype=self.complex), encodings.shape[:2] + (2, 2))
        gates = [eye if g is None else g for g in gates]
        if self.spec.symmetry_breaking:
            eps = jnp.concatenate([jnp.zeros(1, self.real), jnp.asarray(weights["eps"], dtype=self.real)])
            # RZ's diagonal
            rz = jnp.exp(-0.5j * eps[:, None] * jnp.array([1.0, -1.0], dtype=self.real))[:, None, None, :]
            gates = [g * rz.astype(self.complex) for g in gates]
        return gates

    # ------------------------------------------------------------------ model

    def _initial(self, gates, first_block):
        """The state after the encoding of layer 0 (and the first block, if it acts on whole factors),
        computed on the factors of the initial product state and then expanded: real (N, 2^(n+1))
        with the qubit order `start`."""
        factors = []
        for qubits, state in self.factors:
            gate = kron_gate({q: gates[q][0] for q in qubits}, qubits, qubits)  # (N, 2^k, 2^k)
            factors.append((qubits, jnp.sum(gate * jnp.asarray(state, dtype=self.complex), axis=-1)))
        if first_block is not None:
            inside = [f for f in factors if set(f[0]) <= set(self.fused[0].qubits)]
            qubits, vector = inside[0]
            for more, v in inside[1:]:  # later factors are the more significant qubits
                qubits += more
                vector = (v[:, :, None] * vector[:, None, :]).reshape(v.shape[0], -1)
            factors = [f for f in factors if f not in inside] + [(qubits, vector @ first_block(qubits).T)]
        n, order = self.spec.n_qubits, self.start
        state = 1.0
        for qubits, vector in factors:
            k = len(qubits)
            tensor = vector.reshape((-1,) + (2,) * k)  # axis a holds qubits[k - a]
            ordered = sorted(qubits, key=order.index, reverse=True)  # as they lie in the state, most significant first
            tensor = jnp.transpose(tensor, (0,) + tuple(k - qubits.index(q) for q in ordered))
            state = state * tensor.reshape((-1,) + tuple(2 if order[n - a] in qubits else 1 for a in range(1, n + 1)))
        return jnp.stack([state.real, state.imag], axis=-1).reshape(state.shape[0], -1)

    def _transpose(self, psi, perm):
        if perm is None:
            return psi
        psi = jnp.transpose(psi.reshape((psi.shape[0],) + (2,) * (self.spec.n_qubits + 1)), perm)
        return psi.reshape(psi.shape[0], -1)

    def _apply(self, psi, matrix, perm):
        """psi (N, 2^(n+1)) <- matrix on its least significant qubits (after the transpose `perm`):
        (2K, 2K) shared by the batch, or (N, 2K, 2K) per configuration."""
        psi = self._transpose(psi, perm)
        size = matrix.shape[-1]
        if matrix.ndim == 2:
            return (psi.reshape(-1, size) @ matrix.T).reshape(psi.shape)
        shaped = psi.reshape(psi.shape[0], -1, size)
        return jnp.einsum("nab,nhb->nha", matrix, shaped).reshape(psi.shape)

    @double_precision
    def layer_unitaries(self, weights):
        """(D, 2^n, 2^n) complex: each trainable layer's fused blocks, then SB(eps) as its diagonal phase."""
        out = jnp.broadcast_to(jnp.eye(self.dim, dtype=self.complex), (self.spec.layers, self.dim, self.dim))
        for block, unitary in zip(self.fused, self.block_unitaries(weights)):
            out = apply_to_rows(out, unitary, list(block.qubits))
        if self.spec.symmetry_breaking:  # SB(eps) = diag(exp(-i eps m / 2))
            eps = jnp.asarray(weights["eps"], dtype=self.real)
            out = jnp.exp(-0.5j * eps[:, None] * self.sb_phases).astype(self.complex)[:, :, None] * out
        return out

    def _final_dense(self, weights, positions):
        """Final states, complex (N, 2^n) in Qiskit's order, of a state of at most SMALL_STATE_QUBITS qubits.

        At this size the number of operations, not their work, sets both the time and the compile
        time, so: a complex state, one product with each layer's unitary (shared by the batch), each
        encoding gate as an elementwise multiply-and-sum with its own (D+1, N, 2, 2) array (split
        off before the loop), and the layers as a `lax.scan` (layer 0: the identity, then its
        encoding), so the traced graph is one layer whatever D. H2O (D=6, batch 256, single precision,
        energy+force; docs/benchmarks.md): 3.1 ms per step against 16 ms for the general path, compiled (first
        call) in 3.4 s against 4.1 s; unrolled over the layers it ran 2.8 ms but compiled in 6.0 s.
        """
        n = self.spec.n_qubits
        x = jnp.einsum("kv,nvc->nkc", self.enc_vector_select, self.spec.centre(positions))  # (N, n_enc, 3)
        scales = jnp.asarray(weights["alpha"], dtype=self.real) @ self.enc_scale_select.T  # (D+1, n_enc)
        encodings = self.encoding_gate_entries(scales[:, None, :, None] * x[None]).astype(self.complex)
        gates = jnp.split(encodings, len(self.spec.encoding), axis=2)

        def layer(psi, inputs):
            transposed, gates = inputs
            psi = psi @ transposed
            for e, gate in zip(self.spec.encoding, gates):
                shaped = psi.reshape(psi.shape[0], 2 ** (n - 1 - e.qubit), 1, 2, 2**e.qubit)
                psi = jnp.sum(gate[..., None] * shaped, axis=-2).reshape(psi.shape)
            return psi, None

        eye = jnp.eye(self.dim, dtype=self.complex)[None]
        transposed = jnp.concatenate([eye, jnp.swapaxes(self.layer_unitaries(weights), -1, -2)])
        psi = jnp.broadcast_to(self.initial_state, (positions.shape[0], self.dim))
        return jax.lax.scan(layer, psi, (transposed, gates))[0]

    def _final(self, weights, positions):
        """Final states, real (N, 2^(n+1)) (complex (N, 2^n) when `dense`), and the qubit order they are left in."""
        positions = jnp.asarray(positions, dtype=self.real)
        if self.dense:
            return self._final_dense(weights, positions), tuple(range(self.spec.n_qubits))
        gates = self.qubit_gates(weights, positions)
        unitaries = self.block_unitaries(weights)
        built = {}

        def matrices(index, rows, cols):
            """Real matrices of block `index` (D, ...) or, for index None, of the encoding (D+1, N, ...),
            with the given row and column qubit orders; each variant built once, for every layer."""
            if (index, rows, cols) not in built:
                if index is None:
                    matrix = kron_gate({q: gates[q] for q in rows}, rows, cols)
                else:
                    matrix = permute_qubits(unitaries[index], self.fused[index].qubits, rows, cols)
                built[index, rows, cols] = jnp.unstack(realify(matrix))  # one per layer
            return built[index, rows, cols]

        def first_block(qubits):
            return permute_qubits(unitaries[0][0], self.fused[0].qubits, qubits, qubits)  # of layer 1

        psi = self._initial(gates, first_block if self.first_block_on_factors else None)
        for op in self.ops:
            if op.kind == "block":
                matrix = matrices(op.index, op.outputs, op.inputs)[op.layer - 1]
            elif op.kind == "chunk":
                matrix = matrices(None, op.outputs, op.inputs)[op.layer]
            else:  # the block after the previous layer's encoding on its qubits, one matrix per configuration
                matrix = jnp.einsum("ab,nbc->nac", matrices(op.index, op.outputs, op.inputs)[op.layer - 1],
                                    matrices(None, op.inputs, op.inputs)[op.layer - 1])
            psi = self._apply(psi, matrix, op.perm)
        return psi, self.final_order

    @double_precision
    def states(self, weights, positions) -> jnp.ndarray:
        """Final statevectors (N, 2^n) for positions (N, A, 3), complex, in Qiskit's order."""
        psi, order = self._final(weights, positions)
        if self.dense:
            return psi
        psi = self._transpose(psi, transpose_between(order, tuple(range(self.spec.n_qubits))))
        psi = psi.reshape(psi.shape[0], self.dim, 2)
        return psi[..., 0] + 1j * psi[..., 1]

    @double_precision
    def expectation(self, weights, positions) -> jnp.ndarray:
        """<psi|O|psi> for O = sum of c_ij H_ij over the observable's pairs (c = 1, or a trained
        observable's orbit weights). Shape (N,). Few pairs: one transposed copy of the state each
        (`_expectation_by_swaps`); many (a trained observable): three bases (`_expectation_by_bases`)."""
        psi, order = self._final(weights, positions)
        if self.readout_by_bases:
            return self._expectation_by_bases(psi, weights)
        return self._expectation_by_swaps(psi, order, weights)

    def _expectation_by_swaps(self, psi, order, weights) -> jnp.ndarray:
        """O = sum c_ij (2 SWAP_ij - 1): one transposed copy of the state per pair, no matrix products."""
        n = self.spec.n_qubits
        tensor = psi.reshape((psi.shape[0],) + (2,) * (n + (not self.dense)))  # real: the (re, im) axis last
        axis = {q: n - p for p, q in enumerate(order)}
        c = jnp.asarray(self.spec.observable_weights(weights), dtype=self.real)[self.spec.readout_orbit_index]
        swapped = sum(c[k] * jnp.swapaxes(tensor, axis[i], axis[j]) for k, (i, j) in enumerate(self.spec.readout_pairs))
        products = jnp.conj(tensor) * (2 * swapped - jnp.sum(c) * tensor)
        return jnp.sum(jnp.real(products).reshape(psi.shape[0], -1), axis=-1)

    def _expectation_by_bases(self, psi, weights) -> jnp.ndarray:
        """H_ij = X_iX_j + Y_iY_j + Z_iZ_j, so <O> = sum_b D(b) (|psi(b)|^2 + |(H psi)(b)|^2 + |(H S^dag psi)(b)|^2)
        with D = sum c_ij z_i z_j, H the Hadamard and S^dag the phase gate on every qubit (S X S^dag = Y):
        three probability vectors from two real Hadamard transforms, matrix products whatever the number
        of pairs. Water dimer, batch 32, single precision, energy loss (docs/benchmarks.md): the 66 pairs of a
        trained observable 47 ms per step against 63 ms with one copy per pair; the 16 fixed pairs 44 ms
        against 35 ms, hence `SWAP_READOUT_PAIRS`."""
        n_configs = psi.shape[0]
        re, im = psi[:, 0::2], psi[:, 1::2]  # (N, 2^n) in the final qubit order
        cos, sin = self.s_dagger
        parts = jnp.stack([re, im, re * cos - im * sin, re * sin + im * cos], axis=1)
        parts = parts.reshape(n_configs, 4, len(self.hadamard_high), len(self.hadamard_low))
        rotated = jnp.einsum("ab,nkbc,dc->nkad", self.hadamard_high, parts, self.hadamard_low)
        probabilities = re * re + im * im + jnp.sum(rotated * rotated, axis=1).reshape(n_configs, -1)
        c = jnp.asarray(self.spec.observable_weights(weights), dtype=self.real)
        return probabilities @ (self.readout_diagonals @ c)


def reduce_kron(matrix: np.ndarray, power: int) -> np.ndarray:
    """matrix x matrix x ... (`power` factors; the 1 x 1 identity for none)."""
    return reduce(np.kron, [matrix] * power, np.ones((1, 1)))


def _one_hot(index, size: int) -> np.ndarray:
    out = np.zeros((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


@double_precision
def expectation_and_gradient(sim: Simulator, weights, positions):
    """f (N,) and df/dpositions (N, A, 3): each configuration's f depends only on its own positions,
    so the gradient of the batch sum gives every configuration's gradient in one reverse pass."""
    f, vjp = jax.vjp(lambda x: sim.expectation(weights, x), positions)
    return f, vjp(jnp.ones_like(f))[0]
