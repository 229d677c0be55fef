"""H2O siVQLM (Sec. II.5): 4 qubits, invariant under rotations and the H1 <-> H2 exchange."""

from __future__ import annotations

from siqml_cli.models.spec import Coupling, Encoding, ModelSpec


def centre(positions):
    """x_1, x_2: the hydrogens relative to the oxygen, (..., 3, 3) -> (..., 2, 3)."""
    return positions[..., 1:, :] - positions[..., :1, :]


def build(layers: int, blocks: int, symmetry: str) -> ModelSpec:
    """Qubits 0, 2 carry x_1 and 1, 3 carry x_2; H1 <-> H2 is P = SWAP_01 SWAP_23.

    With `symmetry` full or broken, weights are shared over the orbits of P (alpha_0 = alpha_1,
    alpha_2 = alpha_3, one weight for RH_12 and RH_30, Eq. 14). With `rotation`, every qubit
    and pair gets its own weight: still rotation invariant, no longer exchange invariant.
    """
    shared = symmetry in ("full", "broken")
    scale = (lambda q: q // 2) if shared else (lambda q: q)
    weight_30 = 2 if shared else 3
    return ModelSpec(
        name="h2o", species=("O", "H", "H"), n_qubits=4, layers=layers, blocks=blocks, symmetry=symmetry,
        centre=centre,
        singlets=((0, 1), (2, 3)),
        encoding=tuple(Encoding(qubit=q, vector=q % 2, scale=scale(q)) for q in range(4)),
        couplings=(Coupling(((0, 1),), 0), Coupling(((2, 3),), 1), Coupling(((1, 2),), 2),
                   Coupling(((3, 0),), weight_30)),
        observable_pairs=((0, 1),),
        symmetry_breaking=symmetry == "broken",
    )
