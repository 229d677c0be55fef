"""Batched statevector simulation of a `ModelSpec` in JAX, as a short chain of real matrix products.

Why this shape (measured with XLA on CPU): a dense matrix product over the batch runs near the
machine's multiply speed, a real product about twice as fast as a complex one of the same size, a
product with a real matrix of width up to 64 costs about one pass over the state, and a transpose of
the state two to five such passes (`grouped_transpose` keeps it near two); elementwise per-qubit updates,
small complex products and chains of them are slow, and slow to compile. So:

- the state is real, (N, 2^n * 2): each complex amplitude is an interleaved (re, im) pair, and a
  complex gate on k qubits is applied as its real 2^(k+1) x 2^(k+1) form to the k least significant
  qubits; `plan` tracks the qubit order at trace time and transposes the state only when an
  operation's qubits are not already the lowest ones (the water dimer: 3 transposes per layer);
- each trainable layer is fused, once per step, into dense unitaries on at most k qubits
  (`fuse_layer`), built by applying its gates to an identity; k is chosen per model and batch by a
  cost model (`choose_layout`, `layout_seconds`): fewer, wider blocks mean fewer passes over the state
  and fewer transposes, but each product does 2^(k+1) multiply-adds per amplitude and each block
  costs 8^k to build. k = 2 is the unfused circuit: one product per gate. Every trainable layer has
  the same gates, so one k serves every layer;
- a gate of an orbit sum whose component spans more qubits than k is a block of its own, applied
  exactly: exp(-i theta G) = V diag(exp(-i theta lambda)) V^dagger with the eigenvectors V of its
  generator G restricted to the qubits it touches, computed once; only the phases are traced;
- when the states reverse mode keeps for a batch would pass MICRO_BATCH_BYTES, the batch runs in
  micro-batches (`micro_batch`, `in_micro_batches`): a `lax.map` over equal chunks, each under
  `jax.checkpoint`, so the backward pass recomputes one chunk at a time and the memory of a
  derivative, the force loss's mixed second derivatives included, is one chunk's. (Recomputing each
  layer instead, `jax.checkpoint` per layer, left the peak memory where it was: XLA may schedule the
  recomputation early; the chunks are a loop, which it cannot reorder);
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

`Simulator.plan_summary` says which of these paths a batch takes. States of at most
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

#: the widest fused block the cost model considers: a 1024 x 1024 unitary per layer (wider orbit gates
#: are blocks of their own whatever the choice)
FUSION_LIMIT = 10
#: largest support of a merged per-configuration encoding gate: bigger ones cost more to apply than
#: the separate products they replace
MAX_ENCODING_CHUNK = 4
#: up to this many qubits the state stays complex and each layer is one unitary (`Simulator._final_dense`):
#: the state is so small that the number of operations, not their work, sets the time
SMALL_STATE_QUBITS = 4
#: up to this many observable pairs, the expectation takes one transposed copy of the state per pair;
#: beyond, it reads the state in three bases (`Simulator._expectation_by_bases`)
SWAP_READOUT_PAIRS = 24
#: the most bytes of state vectors that reverse mode may keep for one batch (`kept_states`); beyond, the
#: batch runs in micro-batches, each recomputed in the backward pass (`micro_batch`). 2.5 GiB: with the
#: interpreter and the compilation a step stays within 4 GiB, and the 16-qubit ring with forces at batch
#: 32 (2.1 GiB of states, 2.4 GB peak RSS measured) runs whole: 4.1 s a step against 9.5 s in two
#: halves of 16 (1.5 GB), both measured on the loaded 2-core machine
MICRO_BATCH_BYTES = 5 * 2**29
#: how many more states the force loss keeps than the energy loss (`kept_states`)
FORCE_LOSS_STATES = 2.3
#: the cost model (`layout_seconds`), measured with XLA on this project's 2-core CPU (batch 32, 14
#: qubits, single precision): an operation's fixed cost; one pass over the state (a product with a
#: real matrix of at most 32 x 32 reads and writes the state at this rate); a transpose of the
#: state, in passes; dense products on the state, FLOP/s (single; double at half the rate); building
#: block unitaries from gates (small batched complex products), FLOP/s
OP_SECONDS = 25e-6
PASS_SECONDS_PER_BYTE = 2.0e-10
TRANSPOSE_PASSES = 2.5
PRODUCT_FLOPS = 145e9
BUILD_FLOPS = 20e9
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


def fuse_layer(spec: ModelSpec, max_qubits: int) -> list[FusedBlock]:
    """Group the gates of one trainable layer into few blocks of at most `max_qubits` qubits.

    A gate joins the last block it overlaps when the union stays small enough (gates on disjoint
    qubits commute, so it may pass the blocks in between); then each block is merged forward into
    the next block it overlaps, when that fits. The product of the blocks is exactly the layer. A gate
    wider than `max_qubits` is a block of its own.
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


def grouped_transpose(psi, shape: tuple[int, ...], perm: tuple[int, ...]):
    """`jnp.transpose(psi.reshape(shape), perm)`, flattened back to psi's shape, with each run of axes that
    stays together merged into one axis first: XLA transposes a few large axes about twice as fast as many
    axes of 2."""
    groups = [[perm[0]]]
    for axis in perm[1:]:
        if axis == groups[-1][-1] + 1:
            groups[-1].append(axis)
        else:
            groups.append([axis])
    by_input = sorted(range(len(groups)), key=lambda g: groups[g][0])
    merged = tuple(int(np.prod([shape[a] for a in groups[g]])) for g in by_input)
    return jnp.transpose(psi.reshape(merged), tuple(by_input.index(g) for g in range(len(groups)))).reshape(psi.shape)


@dataclass
class Layout:
    """One exact way to run the general path: the trainable layer fused into blocks of at most `fusion`
    qubits, the encoding chunks, and the planned products (`ops`) with the qubit orders they leave."""

    fusion: int
    fused: list[FusedBlock]
    #: the encoding chunk on the first block's qubits is multiplied into that block of the next layer
    merge: bool
    #: the first block of layer 1 acts on whole factors of the initial product state
    first_block_on_factors: bool
    chunks: list[tuple[int, ...]]
    start: tuple[int, ...]
    ops: list[Op]
    final_order: tuple[int, ...]

    def describe(self) -> str:
        """One line: the block sizes and the products and transposes of a layer."""
        sizes = ", ".join(str(len(b.qubits)) for b in self.fused)
        layers = max(1, max((op.layer for op in self.ops), default=1))
        transposes = sum(op.perm is not None for op in self.ops)
        return (f"blocks of at most {self.fusion} qubits ({len(self.fused)} per layer: {sizes}), "
                f"{len(self.ops) / layers:.3g} products and {transposes / layers:.3g} transposes of the state "
                "per layer")


def factors_of(spec: ModelSpec) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The initial product state's factors: (qubits, state in their order), a singlet or |0>."""
    paired = {q for pair in spec.singlets for q in pair}
    factors = [(tuple(pair), blocks.singlet_state(2, [(0, 1)])) for pair in spec.singlets]
    return factors + [((q,), np.array([1.0, 0.0])) for q in range(spec.n_qubits) if q not in paired]


def make_layout(spec: ModelSpec, fusion: int) -> Layout:
    """The static sequence of products after the initial product state, with blocks of at most `fusion` qubits.

    The encoding of layer 0 acts on the product state's factors, and so does the first block of
    layer 1 when its qubits are whole factors (`first_block_on_factors`), before the state is
    expanded. When the state is large next to the first block, the encoding chunk on that
    block's qubits is multiplied into the block of the next layer ("merged"): one product less
    per layer, since their per-configuration product (2^3k) costs less than applying either to
    the state (2^(n+k)).
    """
    n, layers = spec.n_qubits, spec.layers
    fused = fuse_layer(spec, fusion)
    first = fused[0].qubits if fused else ()
    merge = bool(first) and len(first) <= MAX_ENCODING_CHUNK and 2 * len(first) < n
    first_block_on_factors = bool(first) and layers > 0 and all(
        set(qubits) <= set(first) or not set(qubits) & set(first) for qubits, _ in factors_of(spec))
    encoded = {e.qubit for e in spec.encoding} | (set(range(n)) if spec.symmetry_breaking else set())
    rest = sorted(encoded - set(first)) if merge else sorted(encoded)
    size = max(c for c in range(1, MAX_ENCODING_CHUNK + 1) if 4**c <= 2**n)
    chunks = ([first] if merge else []) + [tuple(rest[i:i + size]) for i in range(0, len(rest), size)]
    own = range(1 if merge else 0, len(chunks))  # chunks applied on their own in every layer

    def last_block(chunk):
        return max((j for j, b in enumerate(fused) if set(b.qubits) & set(chunk)), default=-1)

    steps = []
    for d in range(1, layers + 1):
        steps += [("chunk", c, d, chunks[c]) for c in own if last_block(chunks[c]) < 0]
        for j, block in enumerate(fused):
            if j == 0 and merge and d > 1:
                steps.append(("merged", 0, d, block.qubits))
            elif j > 0 or d > 1 or not first_block_on_factors:
                steps.append(("block", j, d, block.qubits))
            steps += [("chunk", c, d, chunks[c]) for c in own if last_block(chunks[c]) == j]
    if merge and layers > 0:
        steps.append(("chunk", 0, layers, first))
    low = set(steps[0][3]) if steps else set()
    start = tuple(sorted(low)) + tuple(q for q in range(n) if q not in low)
    ops, final_order = plan(steps, start)
    return Layout(fusion, fused, merge, first_block_on_factors, chunks, start, ops, final_order)


def layout_seconds(spec: ModelSpec, layout: Layout, batch: int, precision: str) -> float:
    """The cost model: estimated seconds of one forward pass of `batch` configurations along `layout`.

    Each product on the state costs a fixed OP_SECONDS plus the larger of one pass over the state and its
    multiply-adds at PRODUCT_FLOPS (a product with a per-configuration matrix: twice that); a transpose,
    TRANSPOSE_PASSES passes. Building each block's unitary for every layer, gate by gate, costs its
    complex multiply-adds at BUILD_FLOPS, and each order a block is used in one more copy of it. Reverse
    mode repeats the same operations about twice over, so the forward pass ranks the layouts.
    """
    itemsize = 8 if precision == "double" else 4
    floats = batch * 2 ** (spec.n_qubits + 1)
    state_pass = PASS_SECONDS_PER_BYTE * floats * itemsize
    rate = PRODUCT_FLOPS / (2 if precision == "double" else 1)
    seconds = 0.0
    for op in layout.ops:
        flops = 2 * 2 ** (len(op.inputs) + 1) * floats
        seconds += OP_SECONDS + max(state_pass, flops / rate) * (1 if op.kind == "block" else 2)
        if op.perm is not None:
            seconds += OP_SECONDS + TRANSPOSE_PASSES * state_pass
    for block in layout.fused:
        k = len(block.qubits)
        widths = [len({q for pair in pairs for q in pair}) for _, _, pairs in block.gates]
        built = 0 if widths == [k] else sum(8 * 4**k * 2**g for g in widths)
        seconds += OP_SECONDS * len(widths) + spec.layers * built / BUILD_FLOPS
    variants = {(op.index, op.inputs, op.outputs) for op in layout.ops if op.kind != "chunk"}
    for _, inputs, _ in variants:
        copy = spec.layers * 4 ** (len(inputs) + 1) * itemsize
        seconds += OP_SECONDS + TRANSPOSE_PASSES * PASS_SECONDS_PER_BYTE * copy
    return seconds


def fusion_candidates(spec: ModelSpec) -> range:
    """The block sizes the cost model compares: 2 (one product per gate) up to the state or FUSION_LIMIT."""
    return range(2, max(2, min(spec.n_qubits, FUSION_LIMIT)) + 1)


def choose_layout(spec: ModelSpec, batch: int, precision: str) -> Layout:
    """The layout of least `layout_seconds` among `fusion_candidates` (the smaller block on a tie)."""
    layouts = [make_layout(spec, k) for k in fusion_candidates(spec)]
    return min(layouts, key=lambda layout: (layout_seconds(spec, layout, batch, precision), layout.fusion))


def kept_states(spec: ModelSpec, layout: Layout, force_loss: bool) -> float:
    """State vectors (of 2^n amplitudes) that reverse mode keeps per configuration.

    The energy loss keeps the output of every product and transpose, plus the initial state and the
    readout's; the force loss, which differentiates a reverse pass, FORCE_LOSS_STATES times as many.
    Measured (peak RSS less the process before compiling): the water dimer (D=4, blocks of 6 qubits, batch
    256, single precision) 34 states for the energy loss, 78 with forces; the 16-qubit ring (D=4, blocks
    of 5, batch 32, single) about 120 with forces, 131 estimated.
    """
    kept = sum(1 + (op.perm is not None) for op in layout.ops) + 2.0
    return FORCE_LOSS_STATES * kept if force_loss else kept


def micro_batch(spec: ModelSpec, layout: Layout, batch: int, precision: str, force_loss: bool) -> int:
    """How many configurations reverse mode runs at once: the whole batch, or, when the states it keeps
    (`kept_states`) would pass MICRO_BATCH_BYTES, the size of the fewest equal micro-batches that stay
    below it (at least one configuration)."""
    amplitude = 16 if precision == "double" else 8
    most = max(1, int(MICRO_BATCH_BYTES // (kept_states(spec, layout, force_loss) * 2**spec.n_qubits * amplitude)))
    if batch <= most:
        return batch
    return -(-batch // -(-batch // most))


def in_micro_batches(function, positions, size: int):
    """function(positions) for positions (N, A, 3), computed `size` configurations at a time, each chunk
    under `jax.checkpoint` in a `lax.map` (the last chunk padded with copies of the first configuration,
    whose results are dropped): reverse mode then keeps one chunk's states at a time."""
    batch = positions.shape[0]
    if size >= batch:
        return function(positions)
    parts = -(-batch // size)
    padding = jnp.broadcast_to(positions[:1], (parts * size - batch,) + positions.shape[1:])
    chunks = jnp.concatenate([positions, padding]).reshape((parts, size) + positions.shape[1:])
    out = jax.lax.map(jax.checkpoint(function), chunks)
    return jax.tree_util.tree_map(lambda a: a.reshape((parts * size,) + a.shape[2:])[:batch], out)


class Simulator:
    """Energies f(X; weights) of the observable, in its own units, for a batch of configurations.

    `fusion` fixes the largest fused block (qubits) instead of the cost model's choice, and `micro_batch`
    the configurations reverse mode runs at once instead of `micro_batch`'s choice; both for tests and
    benchmarks: every choice computes the same states and derivatives.
    """

    @double_precision
    def __init__(self, spec: ModelSpec, precision: str = "double", fusion: int | None = None,
                 micro_batch: int | None = None):
        self.spec = spec
        self.precision = precision
        self.real, self.complex = precision_dtypes(precision)
        n = spec.n_qubits
        self.dim = 2**n
        self.fusion, self.fixed_micro_batch = fusion, micro_batch
        self._group_gates()
        n_vectors = int(np.asarray(spec.centre(np.zeros((1, len(spec.species), 3)))).shape[1])
        signs = np.array([e.sign for e in spec.encoding])
        self.enc_vector_select = jnp.asarray(_one_hot([e.vector for e in spec.encoding], n_vectors), dtype=self.real)
        self.enc_scale_select = jnp.asarray(_one_hot([e.scale for e in spec.encoding], spec.n_scales) * signs[:, None],
                                            dtype=self.real)
        self.dense = n <= SMALL_STATE_QUBITS
        self.factors = factors_of(spec)
        #: layouts by block size, built when a batch first needs one; the cost model's block size by batch
        self._layouts: dict[int, Layout] = {}
        self._chosen: dict[int, int] = {}
        if self.dense:
            self.initial_state = jnp.asarray(blocks.singlet_state(n, spec.singlets), dtype=self.complex)
            self.sb_phases = jnp.asarray(blocks.symmetry_breaking_phases(n), dtype=self.real)
        self.readout_by_bases = not self.dense and len(spec.readout_pairs) > SWAP_READOUT_PAIRS
        if self.readout_by_bases:
            self._readout_bases()

    def _group_gates(self) -> None:
        """Gates with the same generator on their own qubits are exponentiated together: one
        `gate_kinds` entry each, (eigenvalues, eigenvectors, one-hot selection of their weights);
        `gate_of[(b, weight, pairs)]` is a gate's (qubits, kind, index among its kind's gates)."""
        kinds, weights = [], []
        self.gate_of = {}
        for b in range(self.spec.blocks):
            for coupling in self.spec.couplings:
                for pairs in orbit_components(coupling.pairs):
                    qubits = tuple(sorted({q for pair in pairs for q in pair}))
                    local = {q: i for i, q in enumerate(qubits)}
                    generator = blocks.heisenberg_generator(len(qubits), [(local[i], local[j]) for i, j in pairs])
                    same = (k for k, g in enumerate(kinds) if g.shape == generator.shape and np.allclose(g, generator))
                    kind = next(same, None)
                    if kind is None:
                        kind = len(kinds)
                        kinds.append(generator)
                        weights.append([])
                    weights[kind].append(b * self.spec.n_weights_per_block + coupling.weight)
                    self.gate_of[b, coupling.weight, pairs] = (qubits, kind, len(weights[kind]) - 1)
        n_weights = self.spec.blocks * self.spec.n_weights_per_block
        self.gate_kinds = []
        for generator, index in zip(kinds, weights):
            values, vectors = np.linalg.eigh(generator)
            self.gate_kinds.append((jnp.asarray(values, dtype=self.real), jnp.asarray(vectors, dtype=self.complex),
                                    jnp.asarray(_one_hot(index, n_weights).T, dtype=self.real)))

    # ------------------------------------------------------------------ plan

    def layout(self, batch: int) -> Layout:
        """The general path's layout for a batch: `fusion` if set, else the cost model's (`choose_layout`);
        the small-state path fuses each layer into one block."""
        if self.dense:
            fusion = self.spec.n_qubits
        elif self.fusion is not None:
            fusion = self.fusion
        else:
            if batch not in self._chosen:
                self._chosen[batch] = choose_layout(self.spec, batch, self.precision).fusion
            fusion = self._chosen[batch]
        if fusion not in self._layouts:
            self._layouts[fusion] = make_layout(self.spec, fusion)
        return self._layouts[fusion]

    def micro_batch(self, batch: int, force_loss: bool) -> int:
        """The configurations reverse mode runs at once for this batch and loss (`micro_batch`)."""
        if self.fixed_micro_batch is not None:
            return min(self.fixed_micro_batch, batch)
        if self.dense:
            return batch
        return micro_batch(self.spec, self.layout(batch), batch, self.precision, force_loss)

    def plan_summary(self, batch: int) -> str:
        """One line saying how a batch is simulated: the path, the fused block sizes, the products and
        transposes per layer, and the micro-batches of reverse mode."""
        n = self.spec.n_qubits
        if self.dense:
            return (f"{n} qubits, batch {batch}: small-state path, each layer one {self.dim} x {self.dim} unitary, "
                    "complex state, layers in a scan")
        layout = self.layout(batch)
        candidates = fusion_candidates(self.spec)
        how = "fixed" if self.fusion is not None else f"cost model over {candidates[0]}..{candidates[-1]}"
        energy, force = self.micro_batch(batch, False), self.micro_batch(batch, True)
        chunks = ("whole batch at once" if force == batch else
                  f"micro-batches of {energy} (energy loss) / {force} (energy + force loss) configurations")
        return (f"{n} qubits, batch {batch}, {self.precision} precision: general path, {layout.describe()} "
                f"({how}); reverse mode: {chunks}")

    def _readout_bases(self) -> None:
        """Constants of the observable's expectation in three bases (`_expectation_by_bases`): the Hadamard
        transform as two Kronecker powers (on the most and the least significant qubits), the phases of
        S^dagger on every qubit, (-i)^(number of ones), as (cos, sin), and the bits of every basis state."""
        n = self.spec.n_qubits
        low = n // 2
        hadamard = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)
        self.hadamard_high, self.hadamard_low = (jnp.asarray(reduce_kron(hadamard, k), dtype=self.real)
                                                 for k in (n - low, low))
        self.bits = (np.arange(self.dim)[:, None] >> np.arange(n)[None, :]) & 1  # bits[b, position]
        phase = (-1j) ** self.bits.sum(axis=1)
        self.s_dagger = (jnp.asarray(phase.real, dtype=self.real), jnp.asarray(phase.imag, dtype=self.real))

    def readout_diagonals(self, order: tuple[int, ...]):
        """The diagonal of sum_(i,j) Z_i Z_j over the observable's pairs in the qubit order `order`: one
        column per orbit of a trained observable, else one column."""
        z = 1 - 2 * self.bits[:, [order.index(q) for q in range(self.spec.n_qubits)]]  # z[b, qubit]
        zz = np.stack([z[:, i] * z[:, j] for i, j in self.spec.readout_pairs], axis=1)
        orbit = self.spec.readout_orbit_index
        return jnp.asarray(zz @ _one_hot(orbit, 1 + orbit.max()), dtype=self.real)

    # ------------------------------------------------------------------ matrices

    @double_precision
    def block_unitaries(self, weights, layout: Layout) -> list:
        """For each fused block of `layout`, (D, 2^k, 2^k) complex: the product of its gates in every
        trainable layer (qubits in sorted order), built by applying them one by one to the identity (a
        block of one gate on all its qubits is that gate)."""
        theta = jnp.asarray(weights["theta"], dtype=self.real)
        theta = theta.reshape(theta.shape[0], -1)  # (D, B * T)
        # exp(-i theta G) = V diag(exp(-i theta lambda)) V^dagger for every gate of each kind: 4^k entries per
        # gate, where a sum over the 2^k eigenprojectors would hold 8^k (a wide orbit gate of the automatic models)
        gates = []
        for values, vectors, select in self.gate_kinds:
            phases = jnp.exp(-1j * (theta @ select)[..., None] * values).astype(self.complex)  # (D, G, 2^g)
            gates.append(jnp.unstack(jnp.einsum("ij,...j,kj->...ik", vectors, phases, vectors.conj()), axis=1))
        out = []
        for block in layout.fused:
            listed = [self.gate_of[gate] for gate in block.gates]
            if len(listed) == 1 and listed[0][0] == block.qubits:
                out.append(gates[listed[0][1]][listed[0][2]])
                continue
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

    def _initial(self, gates, layout: Layout, first_block):
        """The state after the encoding of layer 0 (and the first block, if it acts on whole factors),
        computed on the factors of the initial product state and then expanded: real (N, 2^(n+1))
        with the qubit order `layout.start`."""
        factors = []
        for qubits, state in self.factors:
            gate = kron_gate({q: gates[q][0] for q in qubits}, qubits, qubits)  # (N, 2^k, 2^k)
            factors.append((qubits, jnp.sum(gate * jnp.asarray(state, dtype=self.complex), axis=-1)))
        if first_block is not None:
            inside = [f for f in factors if set(f[0]) <= set(layout.fused[0].qubits)]
            qubits, vector = inside[0]
            for more, v in inside[1:]:  # later factors are the more significant qubits
                qubits += more
                vector = (v[:, :, None] * vector[:, None, :]).reshape(v.shape[0], -1)
            factors = [f for f in factors if f not in inside] + [(qubits, vector @ first_block(qubits).T)]
        n, order = self.spec.n_qubits, layout.start
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
        return grouped_transpose(psi, (psi.shape[0],) + (2,) * (self.spec.n_qubits + 1), perm)

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
        layout = self.layout(1)
        for block, unitary in zip(layout.fused, self.block_unitaries(weights, layout)):
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
        layout = self.layout(positions.shape[0])
        gates = self.qubit_gates(weights, positions)
        unitaries = self.block_unitaries(weights, layout)
        built = {}

        def matrices(index, rows, cols):
            """Real matrices of block `index` (D, ...) or, for index None, of the encoding (D+1, N, ...),
            with the given row and column qubit orders; each variant built once, for every layer."""
            if (index, rows, cols) not in built:
                if index is None:
                    matrix = kron_gate({q: gates[q] for q in rows}, rows, cols)
                else:
                    matrix = permute_qubits(unitaries[index], layout.fused[index].qubits, rows, cols)
                built[index, rows, cols] = jnp.unstack(realify(matrix))  # one per layer
            return built[index, rows, cols]

        def first_block(qubits):
            return permute_qubits(unitaries[0][0], layout.fused[0].qubits, qubits, qubits)  # of layer 1

        def matrix_of(op):
            if op.kind == "block":
                return matrices(op.index, op.outputs, op.inputs)[op.layer - 1]
            if op.kind == "chunk":
                return matrices(None, op.outputs, op.inputs)[op.layer]
            # the block after the previous layer's encoding on its qubits, one matrix per configuration
            return jnp.einsum("ab,nbc->nac", matrices(op.index, op.outputs, op.inputs)[op.layer - 1],
                              matrices(None, op.inputs, op.inputs)[op.layer - 1])

        psi = self._initial(gates, layout, first_block if layout.first_block_on_factors else None)
        for op in layout.ops:
            psi = self._apply(psi, matrix_of(op), op.perm)
        return psi, layout.final_order

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
        (`_expectation_by_swaps`); many (a trained observable): three bases (`_expectation_by_bases`).
        In micro-batches when the batch's states would not fit (`micro_batch`)."""
        positions = jnp.asarray(positions, dtype=self.real)
        size = self.micro_batch(positions.shape[0], force_loss=False)
        return in_micro_batches(lambda x: self.expectation_at_once(weights, x), positions, size)

    def expectation_at_once(self, weights, positions) -> jnp.ndarray:
        """`expectation` of the whole batch in one pass."""
        psi, order = self._final(weights, positions)
        if self.readout_by_bases:
            return self._expectation_by_bases(psi, order, weights)
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

    def _expectation_by_bases(self, psi, order, weights) -> jnp.ndarray:
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
        return probabilities @ (self.readout_diagonals(order) @ c)


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
    so the gradient of the batch sum gives every configuration's gradient in one reverse pass. `Simulator`
    runs it in micro-batches when the states of the force loss's derivative would not fit (`micro_batch`)."""
    energy = sim.expectation_at_once if isinstance(sim, Simulator) else sim.expectation

    def value_and_forces(x):
        f, vjp = jax.vjp(lambda y: energy(weights, y), x)
        return f, vjp(jnp.ones_like(f))[0]

    if not isinstance(sim, Simulator):
        return value_and_forces(positions)
    positions = jnp.asarray(positions, dtype=sim.real)
    return in_micro_batches(value_and_forces, positions, sim.micro_batch(positions.shape[0], force_loss=True))
