"""Batched statevector simulation of a `GenericSpec` (the generic VQLM) in JAX.

Up to `DENSE_QUBITS` qubits (the paper's LiH and H2O models, 4 and 6) plain dense algebra is fast
enough: each trainable layer (its B blocks of RY, RZ on every qubit and the CNOT ring) is one
2^n x 2^n unitary per step, applied to the whole batch as one matrix product. Wider models (the
Z-matrix features of larger molecules: CH4 11 qubits, the water dimer 15) would need 4^n entries per
layer, so there each block is applied gate by gate -- a 2 x 2 rotation per qubit, the CNOT ring as a
fixed permutation of the amplitudes -- inside a `lax.scan` over the layers, so that the program
traces one layer. The encoding RY gates differ per configuration and are applied qubit by qubit as
real 2 x 2 rotations. Amplitudes are indexed as in Qiskit (qubit 0 is the least significant bit), so
the state equals `Statevector` of the bound circuit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator

from siqml_cli.models.generic import GenericSpec, cnot_ring
from siqml_cli.precision import double_precision
from siqml_cli.simulate.statevector import precision_dtypes

#: up to this many qubits a trainable layer is one dense unitary (8 qubits: 1 MiB per layer in double precision)
DENSE_QUBITS = 8


def ring_sources(n_qubits: int) -> np.ndarray:
    """The CNOT ring as a permutation of amplitudes: after the ring, amplitude k is the one at `sources[k]` before.

    CX(c, t) maps basis state |i> to |i XOR (bit c of i) << t>; following each basis state through the ring's
    CNOTs in order gives its image, and the sources are the inverse of that map."""
    images = np.arange(2**n_qubits)
    for q in range(n_qubits):
        target = (q + 1) % n_qubits
        images = images ^ (((images >> q) & 1) << target)
    return np.argsort(images)


class GenericSimulator:
    """Energies f(X; weights) = <Z_0>, in [-1, 1], for a batch of configurations."""

    @double_precision
    def __init__(self, spec: GenericSpec, precision: str = "double"):
        self.spec = spec
        self.real, self.complex = precision_dtypes(precision)
        n = spec.n_qubits
        self.dim = 2**n
        self.dense = n <= DENSE_QUBITS
        if self.dense:
            ring = QuantumCircuit(n)
            cnot_ring(ring)
            self.ring = jnp.asarray(Operator(ring).data.real, dtype=self.real)  # a permutation matrix
        else:
            self.ring_sources = jnp.asarray(ring_sources(n))
        self.z0 = jnp.asarray(1 - 2 * (np.arange(self.dim) & 1), dtype=self.real)
        self.psi0 = jnp.zeros(self.dim, dtype=self.complex).at[0].set(1.0)

    def qubit_gates(self, weights) -> jnp.ndarray:
        """(D, B, n, 2, 2): RZ RY of every qubit in every block of every layer."""
        theta = jnp.asarray(weights["theta"], dtype=self.real)  # (D, B, n, 2)
        c, s = jnp.cos(theta[..., 0] / 2), jnp.sin(theta[..., 0] / 2)
        ry = jnp.stack([jnp.stack([c, -s], axis=-1), jnp.stack([s, c], axis=-1)], axis=-2)  # (D, B, n, 2, 2)
        phase = jnp.exp(-0.5j * theta[..., 1])
        rz = jnp.stack([phase, phase.conj()], axis=-1)  # diagonal of RZ
        return rz[..., :, None] * ry

    @double_precision
    def layer_unitaries(self, weights) -> jnp.ndarray:
        """(D, 2^n, 2^n): every trainable layer as one matrix (dense path only)."""
        gates = self.qubit_gates(weights)
        kron = gates[:, :, -1]
        for q in reversed(range(self.spec.n_qubits - 1)):  # the highest qubit is the left Kronecker factor
            size = kron.shape[-1]
            kron = jnp.einsum("dbij,dbkl->dbikjl", kron, gates[:, :, q]).reshape(kron.shape[:2] + (2 * size,) * 2)
        blocks = jnp.einsum("ij,dbjk->dbik", self.ring.astype(self.complex), kron)
        unitary = blocks[:, 0]
        for b in range(1, blocks.shape[1]):
            unitary = blocks[:, b] @ unitary
        return unitary

    def _layer_by_gates(self, psi, gates):
        """psi (N, 2^n) <- one trainable layer, `gates` (B, n, 2, 2), gate by gate."""
        batch = psi.shape[0]
        for block in gates:
            for q in range(self.spec.n_qubits):
                shaped = psi.reshape(batch, -1, 2, 2**q)
                psi = jnp.einsum("ij,bajc->baic", block[q], shaped).reshape(psi.shape)
            psi = psi[:, self.ring_sources]
        return psi

    def plan_summary(self, batch: int) -> str:
        """One line saying how a batch is simulated (as `Simulator.plan_summary`)."""
        layer = (f"each layer one {self.dim} x {self.dim} unitary" if self.dense
                 else "each layer gate by gate in a scan over the layers")
        return f"{self.spec.n_qubits} qubits, batch {batch}: generic VQLM, {layer}, encoding rotations qubit by qubit"

    def _encode(self, psi, angles):
        """psi (N, 2^n) <- prod_q RY_q(angles[:, feature of q])."""
        batch = psi.shape[0]
        for q, k in enumerate(self.spec.qubit_features):
            c = jnp.cos(angles[:, k] / 2)[:, None, None]
            s = jnp.sin(angles[:, k] / 2)[:, None, None]
            shaped = psi.reshape(batch, -1, 2, 2**q)
            a0, a1 = shaped[:, :, 0], shaped[:, :, 1]
            psi = jnp.stack([c * a0 - s * a1, s * a0 + c * a1], axis=2).reshape(psi.shape)
        return psi

    @double_precision
    def states(self, weights, positions) -> jnp.ndarray:
        """Final statevectors (N, 2^n) for positions (N, A, 3)."""
        positions = jnp.asarray(positions, dtype=self.real)
        angles = self.spec.scaled_features(positions).astype(self.real)  # (N, F)
        psi = self._encode(jnp.broadcast_to(self.psi0, (positions.shape[0], self.dim)), angles)
        if self.dense:
            for unitary in self.layer_unitaries(weights):
                psi = self._encode(psi @ unitary.T, angles)
            return psi

        def layer(psi, gates):
            return self._encode(self._layer_by_gates(psi, gates), angles), None

        return jax.lax.scan(layer, psi, self.qubit_gates(weights))[0]

    @double_precision
    def expectation(self, weights, positions) -> jnp.ndarray:
        """<psi|Z_0|psi>: shape (N,)."""
        psi = self.states(weights, positions)
        return jnp.sum((psi.real**2 + psi.imag**2) * self.z0, axis=-1)
