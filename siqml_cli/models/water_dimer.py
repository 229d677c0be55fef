"""Water dimer siVQLM (Sec. II.6, MODELS.md): 12 qubits, invariant under rotations, inversion and
reflections, H exchange inside each molecule and the exchange of the two molecules.

Atoms O_a, H_a1, H_a2, O_b, H_b1, H_b2; atom k lives on qubits (k+, k-) = (2k, 2k+1) with the
inversion pair encoding Phi_{k+}(x_k) Phi_{k-}(-x_k), so inversion is prod_k SWAP(k+, k-).
"""

from __future__ import annotations

import numpy as np

from siqml_cli.errors import SiqmlError
from siqml_cli.models.spec import Coupling, Encoding, ModelSpec, pair_orbits

O_A, H_A1, H_A2, O_B, H_B1, H_B2 = range(6)
SPECIES = ("O", "H", "H", "O", "H", "H")


def _anchored(anchors: np.ndarray):
    """x_k = r_k - sum_j anchors[k, j] r_j: one constant (6, 6) matrix times the positions (NumPy or JAX,
    in the positions' precision)."""
    difference = np.eye(6) - anchors

    def vectors(positions):
        return difference.astype(positions.dtype) @ positions

    return vectors


_MIDPOINT = np.zeros((6, 6))
_MIDPOINT[:, [O_A, O_B]] = 0.5
_BONDS = _MIDPOINT.copy()
for _o, _hs in ((O_A, (H_A1, H_A2)), (O_B, (H_B1, H_B2))):
    _BONDS[list(_hs)] = np.eye(6)[_o]

#: What each atom's vector is measured from. `midpoint` (MODELS.md's choice): every atom from the O-O
#: midpoint. `bonds`: the oxygens from the O-O midpoint, each hydrogen from its own oxygen (its O-H bond
#: vector), so the stretches that carry most of the energy are not buried in long vectors. Both are
#: translation invariant, rotate with the molecule and flip sign under inversion, and the H and molecule
#: exchanges permute them as they permute the atoms: the symmetry group acts on the qubits exactly as before.
FRAMES = {"midpoint": _anchored(_MIDPOINT), "bonds": _anchored(_BONDS)}


def plus(atom: int) -> int:
    return 2 * atom


def minus(atom: int) -> int:
    return 2 * atom + 1


def atom_permutation(atoms) -> tuple[int, ...]:
    """The qubit permutation of an atom permutation (atom k -> atoms[k]): each atom's pair moves as a whole."""
    return tuple(2 * atoms[q // 2] + q % 2 for q in range(12))


#: The symmetry group's action on the qubits (rotations act as U x ... x U and fix every pair): inversion
#: swaps every atom's (k+, k-); H_a1 <-> H_a2; H_b1 <-> H_b2; molecule a <-> molecule b.
GROUP_GENERATORS = (tuple(q ^ 1 for q in range(12)), atom_permutation((0, 2, 1, 3, 4, 5)),
                    atom_permutation((0, 1, 2, 3, 5, 4)), atom_permutation((3, 4, 5, 0, 1, 2)))
OBSERVABLES = ("fixed", "trained")
#: the `model` config keys that only the water dimer's siVQLM reads (`build`'s keyword arguments)
OPTIONS = ("frame", "atom_readout", "observable")


def same_sign(a: int, b: int) -> tuple[tuple[int, int], ...]:
    return (plus(a), plus(b)), (minus(a), minus(b))


def star_pairs() -> tuple[tuple[int, int], ...]:
    """Each O qubit with the same-sign qubits of its own molecule's hydrogens: 4 disjoint triples."""
    return tuple(pair for o, h1, h2 in ((O_A, H_A1, H_A2), (O_B, H_B1, H_B2))
                 for pairs in zip(same_sign(o, h1), same_sign(o, h2)) for pair in pairs)


def build(layers: int, blocks: int, symmetry: str, frame: str = "midpoint", atom_readout: bool = False,
          observable: str = "fixed") -> ModelSpec:
    """The construction of MODELS.md: one weight per orbit of qubit pairs under the whole group.

    Orbits (in the order applied): O-O same sign, O-O cross sign, H-H inside each molecule, the
    O-H "stars" exp(-i theta (H_{o,h1} + H_{o,h2})), within-atom pairs of O atoms and of H atoms.
    Encoding scales: one per atom type (O, H) per layer. With `broken`, SB(eps) follows each layer.
    `frame` (FRAMES) sets what each encoded vector is measured from. Observable: H over the O-O same-sign
    pairs and the star pairs; with `atom_readout`, also H over every atom's own pair (k+, k-), whose
    singlet/triplet weight reads the length of that atom's encoded vector directly (invariant: the group
    permutes atoms and swaps k+ with k-, and H is symmetric). With `observable="trained"` the observable
    gets one trainable weight per orbit of qubit pairs under the group (all 66 pairs in 12 orbits),
    starting as the fixed one.
    """
    if frame not in FRAMES:
        raise SiqmlError(f"model.frame must be one of {', '.join(FRAMES)} for the water dimer, got {frame!r}")
    if not isinstance(atom_readout, bool):
        raise SiqmlError(f"model.atom_readout must be true or false, got {atom_readout!r}")
    if observable not in OBSERVABLES:
        raise SiqmlError(f"model.observable must be one of {', '.join(OBSERVABLES)} for the water dimer, "
                         f"got {observable!r}")
    within_atoms = tuple((plus(a), minus(a)) for a in range(6))
    oxygen_scale, hydrogen_scale = 0, 1
    encoding = tuple(Encoding(qubit=q, vector=atom, scale=oxygen_scale if SPECIES[atom] == "O" else hydrogen_scale,
                              sign=sign)
                     for atom in range(6) for q, sign in ((plus(atom), 1.0), (minus(atom), -1.0)))
    couplings = (
        Coupling(same_sign(O_A, O_B), 0),
        Coupling(((plus(O_A), minus(O_B)), (minus(O_A), plus(O_B))), 1),
        Coupling(same_sign(H_A1, H_A2) + same_sign(H_B1, H_B2), 2),
        Coupling(star_pairs(), 3),
        Coupling(tuple((plus(a), minus(a)) for a in (O_A, O_B)), 4),
        Coupling(tuple((plus(a), minus(a)) for a in (H_A1, H_A2, H_B1, H_B2)), 5),
    )
    return ModelSpec(
        name="water_dimer", species=SPECIES, n_qubits=12, layers=layers, blocks=blocks, symmetry=symmetry,
        centre=FRAMES[frame],
        singlets=within_atoms,
        encoding=encoding,
        couplings=couplings,
        observable_pairs=same_sign(O_A, O_B) + star_pairs() + (within_atoms if atom_readout else ()),
        symmetry_breaking=symmetry == "broken",
        build_options=(("frame", frame), ("atom_readout", atom_readout), ("observable", observable)),
        observable_orbits=pair_orbits(12, GROUP_GENERATORS) if observable == "trained" else (),
    )
