"""Symmetry as an error signal: every configuration evaluated at K symmetry-equivalent copies.

An exactly invariant model gives the same energy for a configuration X and for every copy
X_k = P_k(X R_k^T) (R_k orthogonal, P_k an exchange of identical atoms) that the model keeps; a
noisy device does not, because each copy sets different gate angles. The copies go into the same
PUBs as more parameter rows of the same ISA circuit; their energies are averaged, their forces mapped
back to X (F = P_k^-1(F_k) R_k) and averaged, and the spread over the copies is kept per
configuration (`symmetry_spread_energy`, eV, and `symmetry_spread_forces`, eV/Å) as an indicator of
the device's error there. Copy 0 is X itself, so K = 1 is the plain evaluation.

Which symmetries a model keeps is read from `siqml_cli.symmetry.expected_invariances`, the checks
`siqml check-symmetry` holds it to, and the exchanges of identical atoms from `symmetry.exchanges` (the
hand-made models' table, or an automatic model's group).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from siqml_cli.data.io import atomic_path
from siqml_cli.errors import SiqmlError
from siqml_cli.models.spec import ModelSpec
from siqml_cli.prediction import Prediction

SPREAD_ENERGY, SPREAD_FORCES = "symmetry_spread_energy", "symmetry_spread_forces"


@dataclass(frozen=True)
class KeptSymmetries:
    """The exact symmetries of a model: its rotations (`all`: SO(3), `z`: about the z axis), whether
    reflections (then all of O(3) with `all`) and the inversion r -> -r hold, and its atom exchanges."""

    rotations: str
    reflections: bool
    inversion: bool
    exchanges: tuple[tuple[int, ...], ...]

    def describe(self) -> str:
        turn = "all rotations" if self.rotations == "all" else "rotations about z"
        parts = [turn] + (["reflections"] if self.reflections else []) + (["inversion"] if self.inversion else [])
        parts += [f"{len(self.exchanges)} exchange(s) of identical atoms"] if self.exchanges else []
        return ", ".join(parts)


def kept_symmetries(spec: ModelSpec) -> KeptSymmetries:
    """The symmetries `spec` keeps exactly; a model whose copies would all run the same circuit or that keeps
    none is refused in one line."""
    from siqml_cli.symmetry import exchanges as model_exchanges
    from siqml_cli.symmetry import expected_invariances

    if spec.symmetry == "none":
        raise SiqmlError("backend.symmetrize needs a symmetry-invariant model (siVQLM); this generic VQLM has no "
                         "exact symmetry of its encoded inputs (with internal features every rotated copy sets the "
                         "same gate angles), so its copies would tell nothing: use backend.symmetrize=1")
    exact = expected_invariances(spec)
    if not exact.get("rotation about z"):
        raise SiqmlError(f"backend.symmetrize: the {spec.name} model keeps no rotation exactly; "
                         "use backend.symmetrize=1")
    exchanges = tuple(tuple(perm) for name, perm in model_exchanges(spec).items() if exact.get(f"exchange {name}"))
    return KeptSymmetries("all" if exact["rotation (energy)"] else "z", bool(exact["reflection x -> -x"]),
                          bool(exact["inversion r -> -r"]), exchanges)


def _permutation_group(generators: tuple[tuple[int, ...], ...], n_atoms: int) -> np.ndarray:
    """Every permutation the generators make (the identity first)."""
    group = [tuple(range(n_atoms))]
    seen = set(group)
    for element in group:  # grows while it is walked: closure under composition
        for g in generators:
            composed = tuple(element[i] for i in g)
            if composed not in seen:
                seen.add(composed)
                group.append(composed)
    return np.array(group, dtype=int)


def symmetry_copies(spec: ModelSpec, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """K transformations the model keeps, the identity first: rotations (K, 3, 3), orthogonal, and atom
    permutations (K, A), copy i being positions[perm[i]] @ rotations[i].T."""
    if k < 1:
        raise SiqmlError(f"backend.symmetrize must be an integer >= 1, got {k!r}")
    kept = kept_symmetries(spec)
    n_atoms = len(spec.species)
    perms = _permutation_group(kept.exchanges, n_atoms)
    rotations, permutations = [np.eye(3)], [perms[0]]
    for _ in range(k - 1):
        if kept.rotations == "all":
            r = Rotation.random(random_state=rng).as_matrix()
        else:
            r = Rotation.from_rotvec([0.0, 0.0, rng.uniform(0, 2 * np.pi)]).as_matrix()
        if kept.inversion and rng.integers(2):
            r = -r  # with all rotations, -R reaches every reflection too
        rotations.append(r)
        permutations.append(perms[rng.integers(len(perms))])
    return np.array(rotations), np.array(permutations)


@dataclass
class SymmetryCopies:
    """The copies of N configurations: rotations (N, K, 3, 3) and permutations (N, K, A)."""

    rotations: np.ndarray
    permutations: np.ndarray

    FILE = "symmetry_copies.npz"

    @classmethod
    def draw(cls, spec: ModelSpec, n: int, k: int, seed: int) -> SymmetryCopies:
        rng = np.random.default_rng([seed, k])
        drawn = [symmetry_copies(spec, rng, k) for _ in range(n)]
        return cls(np.array([r for r, _ in drawn]), np.array([p for _, p in drawn]))

    @property
    def k(self) -> int:
        return self.rotations.shape[1]

    def positions(self, positions: np.ndarray) -> np.ndarray:
        """The copies (N * K, A, 3), those of one configuration next to each other."""
        positions = np.asarray(positions, dtype=float)
        n = len(positions)
        permuted = positions[np.arange(n)[:, None, None], self.permutations]  # (N, K, A, 3)
        return np.einsum("nkac,nkdc->nkad", permuted, self.rotations).reshape(n * self.k, *positions.shape[1:])

    def forces_back(self, forces: np.ndarray, squared: bool = False) -> np.ndarray:
        """Forces on the copies (N * K, A, 3) as forces on the original configurations, per copy (N, K, A, 3):
        un-permuted, and rotated back with the same R_k. `squared`: variances of independent components,
        mapped as such (each rotated component's variance weighs the others' by R_k's squared entries)."""
        n = len(self.rotations)
        per_copy = np.asarray(forces, dtype=float).reshape(n, self.k, *np.shape(forces)[1:])
        rotated = np.einsum("nkad,nkdc->nkac", per_copy, self.rotations**2 if squared else self.rotations)
        inverse = np.argsort(self.permutations, axis=-1)
        return rotated[np.arange(n)[:, None, None], np.arange(self.k)[None, :, None], inverse]

    def combine(self, per_copy: Prediction) -> Prediction:
        """The copies' mean energy and mapped-back forces, standard errors of those means, and the spread over
        the copies (sample standard deviation; forces: its root mean square over the components) as flags."""
        n, k = len(self.rotations), self.k
        energies = per_copy.energies.reshape(n, k)
        spread = {SPREAD_ENERGY: energies.std(axis=1, ddof=1) if k > 1 else np.zeros(n)}
        energy_std = (None if per_copy.energy_std is None
                      else np.sqrt(np.sum(np.asarray(per_copy.energy_std).reshape(n, k) ** 2, axis=1)) / k)
        forces = force_std = None
        if per_copy.forces is not None:
            back = self.forces_back(per_copy.forces)
            forces = back.mean(axis=1)
            spread[SPREAD_FORCES] = (np.sqrt(np.mean(back.var(axis=1, ddof=1), axis=(1, 2))) if k > 1
                                     else np.zeros(n))
            if per_copy.force_std is not None:
                force_std = np.sqrt(self.forces_back(np.asarray(per_copy.force_std) ** 2, squared=True).sum(axis=1)) / k
        return Prediction(energies.mean(axis=1), forces, energy_std, force_std).flagged(**spread)

    def save(self, folder: Path) -> None:
        with atomic_path(folder / self.FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, rotations=self.rotations, permutations=self.permutations)

    @classmethod
    def load(cls, folder: Path) -> SymmetryCopies:
        with np.load(folder / cls.FILE) as npz:
            return cls(npz["rotations"], npz["permutations"])


__all__ = ["SPREAD_ENERGY", "SPREAD_FORCES", "KeptSymmetries", "SymmetryCopies", "kept_symmetries",
           "symmetry_copies"]
