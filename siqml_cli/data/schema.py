"""One set of configurations of one molecule, with optional labels, checked on the way in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from siqml_cli.errors import SiqmlError
from siqml_cli.molecules import species_of

UNITS = {"positions": "Angstrom", "energies": "eV", "forces": "eV/Angstrom"}


@dataclass
class Dataset:
    """Positions (N, A, 3) in Å, energies (N,) in eV, forces (N, A, 3) in eV/Å; `extras` holds further labels
    of the same configurations by name (first axis N, e.g. a water cluster's `mbe2_energies`), in the same units."""

    species: tuple[str, ...]
    positions: np.ndarray
    energies: np.ndarray | None = None
    forces: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    source: str = "<memory>"
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.species = tuple(str(s) for s in self.species)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.energies is not None:
            self.energies = np.asarray(self.energies, dtype=np.float64)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
        self.extras = {k: np.asarray(v, dtype=np.float64) for k, v in self.extras.items()}

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.energies is not None

    def subset(self, index: np.ndarray) -> Dataset:
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Dataset(self.species, self.positions[index], pick(self.energies), pick(self.forces),
                       dict(self.attrs), self.source, {k: v[index] for k, v in self.extras.items()})

    def check(self, molecule: str | tuple[str, ...] | None = None) -> Dataset:
        """Raise a SiqmlError naming the file and the problem if this data cannot be used; `molecule` (a
        shipped molecule's name, or the atoms in order) is what the file's atoms must be."""
        where = self.source
        n_atoms = len(self.species)
        if self.positions.ndim != 3 or self.positions.shape[1:] != (n_atoms, 3):
            raise SiqmlError(f"{where}: positions have shape {self.positions.shape}, expected (N, {n_atoms}, 3)")
        if len(self) == 0:
            raise SiqmlError(f"{where}: holds no configurations")
        if not np.all(np.isfinite(self.positions)):
            bad = np.where(~np.isfinite(self.positions).all(axis=(1, 2)))[0]
            raise SiqmlError(f"{where}: configuration {bad[0]} has NaN or infinite coordinates; remove or fix it")
        expected = molecule if molecule is None or not isinstance(molecule, str) else species_of(molecule)
        if expected is not None and self.species != tuple(expected):
            name = f"molecule '{molecule}'" if isinstance(molecule, str) else "the model"
            raise SiqmlError(
                f"{where}: atoms are {'-'.join(self.species)} but {name} needs "
                f"{'-'.join(expected)} in this order; reorder the atoms or pick the matching +molecule")
        for name, values, shape in (("energies", self.energies, (len(self),)),
                                    ("forces", self.forces, self.positions.shape)):
            if values is None:
                continue
            if values.shape != shape:
                raise SiqmlError(f"{where}: {name} have shape {values.shape}, expected {shape}")
            if not np.all(np.isfinite(values)):
                first = int(np.where(~np.isfinite(values.reshape(len(self), -1)).all(axis=1))[0][0])
                raise SiqmlError(f"{where}: configuration {first} has NaN or infinite {name}; remove or fix it")
        for name, values in self.extras.items():
            if values.shape[:1] != (len(self),):
                raise SiqmlError(f"{where}: {name} has shape {values.shape}, expected one entry per configuration "
                                 f"({len(self)})")
        if self.forces is not None and self.energies is None:
            raise SiqmlError(f"{where}: has forces but no energies")
        return self
