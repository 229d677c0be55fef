"""LiH siVQLM (Sec. II.4): 4 qubits, invariant under rotations (and so reflections)."""

from __future__ import annotations

from siqml_cli.models.spec import Coupling, Encoding, ModelSpec


def centre(positions):
    """x_Li, x_H relative to the bond midpoint: (..., 2, 3) -> (..., 2, 3)."""
    return positions - positions.mean(axis=-2, keepdims=True)


def build(layers: int, blocks: int, symmetry: str) -> ModelSpec:
    """Qubits 0, 2 carry x_Li and 1, 3 carry x_H (Eq. 10); ring 0-1, 2-3, 1-2, 3-0 (Eq. 11)."""
    return ModelSpec(
        name="lih", species=("Li", "H"), n_qubits=4, layers=layers, blocks=blocks, symmetry=symmetry,
        centre=centre,
        singlets=((0, 1), (2, 3)),
        encoding=tuple(Encoding(qubit=q, vector=q % 2, scale=q) for q in range(4)),
        couplings=tuple(Coupling(pairs=(pair,), weight=k) for k, pair in enumerate(((0, 1), (2, 3), (1, 2), (3, 0)))),
        observable_pairs=((0, 1),),
        symmetry_breaking=symmetry == "broken",
    )
