"""Synthetic ring models: the simulator's qubit-count scan (`make bench`) and its tests at any size.

A ring model is H2O-like (its data, its centre: the two O-H vectors) on n qubits: singlets on
(0, 1), (2, 3), ..., every qubit encodes one of the two vectors, one Heisenberg gate with its own
weight on each neighbouring pair of a ring, SB(eps) after each layer, and the observable H_01. It is
no force field anyone would train; it exists to show how a step's cost grows with the qubits.
"""

from __future__ import annotations

from siqml_cli.models import h2o
from siqml_cli.models.spec import Coupling, Encoding, ModelSpec


def ring_spec(n_qubits: int, layers: int = 4, blocks: int = 1) -> ModelSpec:
    """The synthetic ring model on `n_qubits` (even, at least 4) qubits."""
    if n_qubits < 4 or n_qubits % 2:
        raise ValueError("a ring model has an even number of qubits, at least 4")
    n = n_qubits
    return ModelSpec(
        name=f"ring{n}", species=("O", "H", "H"), n_qubits=n, layers=layers, blocks=blocks,
        symmetry="broken", centre=h2o.centre, singlets=tuple((q, q + 1) for q in range(0, n, 2)),
        encoding=tuple(Encoding(qubit=q, vector=q % 2, scale=(q // 2) % 2) for q in range(n)),
        couplings=tuple(Coupling(((q, (q + 1) % n),), q) for q in range(n)),
        observable_pairs=((0, 1),), symmetry_breaking=True)
