"""Batched statevector simulation of a `ModelSpec` in JAX.

Structure used for speed: the trainable layers do not depend on the data, so the gates of each
layer (all its orbit gates, over its B blocks) are fused, once per step, into a few dense unitaries
on at most `FUSE_QUBITS` qubits each (`fuse_layer`): for the 4-qubit models that is one 16 x 16
matrix per layer, for the 12-qubit water dimer one 16 x 16 on the oxygens and one 64 x 64 per
molecule. Each is applied to the whole batch as one matrix product. The encoding gates differ per
configuration and are applied qubit by qubit as fused elementwise updates. Amplitudes are indexed
as in Qiskit (qubit 0 is the least significant bit), so the state equals `Statevector` of the
bound circuit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siqml_cli.models import blocks
from siqml_cli.models.spec import ModelSpec, orbit_components

jax.config.update("jax_enable_x64", True)

#: largest support of a fused block: a 64 x 64 unitary costs 64 multiply-adds per amplitude, which
#: is less than the memory passes of the separate gates it replaces
FUSE_QUBITS = 6
#: at most this many neighbouring qubits' encoding gates are applied as one per-configuration gate
MAX_ENCODING_CHUNK = 4


def enable_compilation_cache() -> None:
    """Keep compiled steps on disk ($SIQML_JAX_CACHE, default ~/.cache/siqml/jax): a repeated run
    of the same model and batch shape skips XLA compilation."""
    folder = os.environ.get("SIQML_JAX_CACHE") or str(Path.home() / ".cache" / "siqml" / "jax")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@dataclass
class FusedBlock:
    """Consecutive gates of a layer fused into one unitary on `qubits` (sorted).

    `gates` lists (block repetition b, weight index, generator on these qubits) in the order applied.
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
    out = []
    for qubits, gates in fused:
        order = tuple(sorted(qubits))
        local = {q: i for i, q in enumerate(order)}
        out.append(FusedBlock(order, [(b, w, blocks.heisenberg_generator(
            len(order), [(local[i], local[j]) for i, j in pairs])) for b, w, pairs in gates]))
    return out


def group_pairs(pairs, supports) -> list[tuple[tuple[int, ...], list]]:
    """Pairs of a sum (the observable) grouped by the first of `supports` (the fused blocks' qubits)
    that holds them, so each group's part of <psi|O|psi> costs one matrix product, not one pass per pair."""
    groups: dict[tuple[int, ...], list] = {}
    for pair in pairs:
        home = next((q for q in supports if set(pair) <= set(q)), tuple(sorted(pair)))
        groups.setdefault(home, []).append(pair)
    return list(groups.items())


class Simulator:
    """Energies f(X; weights) of the observable, in its own units, for a batch of configurations."""

    def __init__(self, spec: ModelSpec, precision: str = "double"):
        if precision not in ("double", "single"):
            raise ValueError("precision must be 'double' or 'single'")
        self.spec = spec
        self.real = jnp.float64 if precision == "double" else jnp.float32
        self.complex = jnp.complex128 if precision == "double" else jnp.complex64
        n = spec.n_qubits
        self.dim = 2**n
        self.psi0 = jnp.asarray(blocks.singlet_state(n, spec.singlets), dtype=self.complex)
        # exp(-i theta G) = V diag(exp(-i theta lam)) V^dagger for each gate's generator G on its block
        self.fused = fuse_layer(spec)
        self.block_eig = []
        for block in self.fused:
            eig = [np.linalg.eigh(g) for _, _, g in block.gates]
            # one-hot selections instead of gathers: their gradients are matrix products, not scatters
            self.block_eig.append((jnp.asarray(np.stack([e[0] for e in eig]), dtype=self.real),
                                   jnp.asarray(np.stack([e[1] for e in eig]), dtype=self.complex),
                                   jnp.asarray(_one_hot([b * spec.n_weights_per_block + w for b, w, _ in block.gates],
                                                        spec.blocks * spec.n_weights_per_block).T, dtype=self.real)))
        self.sb_m = jnp.asarray(blocks.symmetry_breaking_phases(n), dtype=self.real)
        n_vectors = int(np.asarray(spec.centre(np.zeros((1, len(spec.species), 3)))).shape[1])
        signs = np.array([e.sign for e in spec.encoding])
        self.enc_vector_select = jnp.asarray(_one_hot([e.vector for e in spec.encoding], n_vectors), dtype=self.real)
        self.enc_scale_select = jnp.asarray(_one_hot([e.scale for e in spec.encoding], spec.n_scales) * signs[:, None],
                                            dtype=self.real)
        self.enc_qubit = [e.qubit for e in spec.encoding]
        # largest chunk whose per-configuration gate (4^c entries) is no bigger than the state (2^n)
        self.encoding_chunk = max(c for c in range(1, MAX_ENCODING_CHUNK + 1) if 4**c <= self.dim)
        self.observable_blocks = [(qubits, jnp.asarray(blocks.heisenberg_generator(
            len(qubits), [(qubits.index(i), qubits.index(j)) for i, j in pairs]), dtype=self.complex))
            for qubits, pairs in group_pairs(spec.observable_pairs, [b.qubits for b in self.fused])]

    # ------------------------------------------------------------------ pieces

    def block_unitaries(self, weights) -> list[jnp.ndarray]:
        """For each fused block, (D, 2^k, 2^k): the product of its gates in every trainable layer."""
        theta = jnp.asarray(weights["theta"], dtype=self.real)
        theta = theta.reshape(theta.shape[0], -1)  # (D, B * T)
        out = []
        for values, vectors, select in self.block_eig:
            angles = theta @ select  # (D, G): each gate's weight
            phases = jnp.exp(-1j * angles[..., None] * values)  # (D, G, 2^k)
            gates = jnp.einsum("gij,dgj,gkj->dgik", vectors, phases, vectors.conj())
            unitary = gates[:, 0]
            for g in range(1, gates.shape[1]):
                unitary = gates[:, g] @ unitary
            out.append(unitary)
        return out

    def _apply_block(self, psi, unitary, qubits: tuple[int, ...]):
        """psi (N, 2^n) <- the block unitary (2^k x 2^k, local qubit 0 = qubits[0]) on `qubits`.

        Contiguous qubits are one (batched) matrix product; others need axes moved around it.
        """
        n, k, low = self.spec.n_qubits, len(qubits), qubits[0]
        if qubits == tuple(range(low, low + k)):
            if low == 0:
                return (psi.reshape(-1, 2**k) @ unitary.T).reshape(psi.shape)
            return jnp.matmul(unitary, psi.reshape(-1, 2**k, 2**low)).reshape(psi.shape)
        tensor = psi.reshape((psi.shape[0],) + (2,) * n)  # axis n - q holds qubit q
        axes = [n - q for q in reversed(qubits)]  # most significant local qubit first
        moved = jnp.tensordot(tensor, unitary.reshape((2,) * (2 * k)), axes=(axes, list(range(k, 2 * k))))
        return jnp.moveaxis(moved, list(range(n + 1 - k, n + 1)), axes).reshape(psi.shape)

    @staticmethod
    def encoding_gate(v) -> jnp.ndarray:
        """exp(-i v.sigma/2) for rotation vectors v of shape (N, 3): (N, 2, 2)."""
        r = jnp.sqrt(jnp.sum(v * v, axis=-1) + jnp.finfo(v.dtype).tiny)
        c, s = jnp.cos(r / 2), jnp.sin(r / 2) / r
        vx, vy, vz = v[:, 0], v[:, 1], v[:, 2]
        return jnp.stack([jnp.stack([c - 1j * s * vz, -s * vy - 1j * s * vx], axis=-1),
                          jnp.stack([s * vy - 1j * s * vx, c + 1j * s * vz], axis=-1)], axis=-2)

    def _encode(self, psi, scales, x):
        """Phi(X; alpha_d): `scales` (n_enc,) with signs folded in, `x` (N, n_enc, 3).

        The one-qubit gates of neighbouring qubits are merged per configuration into one gate on
        `encoding_chunk` qubits (a Kronecker product), so the state is read and written once per
        chunk instead of once per qubit, which matters most for the gradient.
        """
        n, batch = self.spec.n_qubits, psi.shape[0]
        per_qubit = [None] * n
        for k, q in enumerate(self.enc_qubit):
            gate = self.encoding_gate(scales[k] * x[:, k, :])
            per_qubit[q] = gate if per_qubit[q] is None else gate @ per_qubit[q]
        for low in range(0, n, self.encoding_chunk):
            chunk = [g for g in per_qubit[low:low + self.encoding_chunk]]
            if all(g is None for g in chunk):
                continue
            eye = jnp.broadcast_to(jnp.eye(2, dtype=self.complex), (batch, 2, 2))
            chunk = [eye if g is None else g for g in chunk]
            gate = chunk[0]
            for g in chunk[1:]:  # the higher qubit is the left Kronecker factor (Qiskit's order)
                size = gate.shape[-1]
                gate = jnp.einsum("nab,ncd->nacbd", g, gate).reshape(batch, 2 * size, 2 * size)
            shaped = psi.reshape(batch, -1, gate.shape[-1], 2**low)
            psi = jnp.einsum("nab,nhbl->nhal", gate, shaped).reshape(psi.shape)
        return psi

    # ------------------------------------------------------------------ model

    def states(self, weights, positions) -> jnp.ndarray:
        """Final statevectors (N, 2^n) for positions (N, A, 3)."""
        positions = jnp.asarray(positions, dtype=self.real)
        x = jnp.einsum("kv,nvc->nkc", self.enc_vector_select, self.spec.centre(positions))  # (N, n_enc, 3)
        scales = jnp.asarray(weights["alpha"], dtype=self.real) @ self.enc_scale_select.T  # (D+1, n_enc)
        unitaries = self.block_unitaries(weights)
        if self.spec.symmetry_breaking:
            eps = jnp.asarray(weights["eps"], dtype=self.real)
            sb = jnp.exp(-0.5j * eps[:, None] * self.sb_m)  # (D, 2^n): SB(eps) is diagonal
        else:
            sb = jnp.zeros((self.spec.layers, 0), dtype=self.complex)
        psi = jnp.broadcast_to(self.psi0, (positions.shape[0], self.dim))
        psi = self._encode(psi, scales[0], x)

        def layer(psi, per_layer):
            layer_unitaries, layer_sb, layer_scales = per_layer
            for unitary, block in zip(layer_unitaries, self.fused):
                psi = self._apply_block(psi, unitary, block.qubits)
            if self.spec.symmetry_breaking:
                psi = psi * layer_sb
            return self._encode(psi, layer_scales, x), None

        # fully unrolled: compiles in twice the time of a rolled scan, runs the force loss ~25% faster
        psi, _ = jax.lax.scan(layer, psi, (unitaries, sb, scales[1:]), unroll=True)
        return psi

    def expectation(self, weights, positions) -> jnp.ndarray:
        """<psi|O|psi>, O = sum of H_ij over the observable's pairs, summed per group of pairs: shape (N,)."""
        psi = self.states(weights, positions)
        total = 0.0
        for qubits, matrix in self.observable_blocks:
            total = total + jnp.real(jnp.sum(psi.conj() * self._apply_block(psi, matrix, qubits), axis=-1))
        return total


def _one_hot(index, size: int) -> np.ndarray:
    out = np.zeros((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


def expectation_and_gradient(sim: Simulator, weights, positions):
    """f (N,) and df/dpositions (N, A, 3): each configuration's f depends only on its own positions,
    so the gradient of the batch sum gives every configuration's gradient in one reverse pass."""
    f, vjp = jax.vjp(lambda x: sim.expectation(weights, x), positions)
    return f, vjp(jnp.ones_like(f))[0]
