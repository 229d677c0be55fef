"""A trained run as an ASE calculator: `SIQMLCalculator(run="<run dir>")`.

Thin on purpose: it checks the atoms against the model's molecule and asks the run's
`ForceField` (the same code `siqml evaluate` uses) for energy and forces, one configuration at a
time through a function compiled once for a batch of one.
"""

from __future__ import annotations

from pathlib import Path

from ase.calculators.calculator import Calculator, all_changes

from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField


class SIQMLCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of a trained siVQLM on the fast simulator."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, run: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.run = Path(run)
        self.forcefield = ForceField.load(self.run, chunk=1)

    @property
    def species(self) -> tuple[str, ...]:
        return self.forcefield.spec.species

    def check_atoms(self, atoms) -> None:
        symbols = tuple(atoms.get_chemical_symbols())
        if symbols != self.species:
            raise SiqmlError(f"atoms {'-'.join(symbols)} do not match the model of {self.run} "
                             f"({self.forcefield.spec.name}: {'-'.join(self.species)} in this order)")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.check_atoms(self.atoms)
        energies, forces = self.forcefield.predict(self.atoms.get_positions()[None])
        energy = float(energies[0])
        self.results = {"energy": energy, "free_energy": energy, "forces": forces[0]}
