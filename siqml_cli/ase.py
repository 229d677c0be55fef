"""A trained run as an ASE calculator: `SIQMLCalculator(run="<run dir>"[, backend=...])`.

Thin on purpose: it checks the atoms against the model's molecule and asks the run's model (the
same code `siqml evaluate` uses) for a `Prediction`, one configuration at a time: the run's
`ForceField` through a function compiled once for a batch of one, or, with `backend` (a name such as
"aer", or a dict of `backend` config keys, e.g. {"kind": "aer", "shots": 4000}), a `BackendForceField`
whose circuits run on that Qiskit backend, transpiled once when the calculator is made.
"""

from __future__ import annotations

from pathlib import Path

from ase.calculators.calculator import Calculator, all_changes

from siqml_cli.errors import SiqmlError
from siqml_cli.runs import RunFolder


class SIQMLCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of a trained siVQLM, on the fast simulator unless a backend is given."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, run: str | Path, backend: str | dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.run = Path(run)
        self.forcefield = RunFolder(self.run).load_forcefield(chunk=1)
        self.model = self.forcefield  # what runs: the fast simulator, or a backend
        if backend is not None:
            from siqml_cli.backends.forcefield import BackendForceField
            from siqml_cli.backends.settings import backend_settings

            settings = backend_settings({"kind": backend} if isinstance(backend, str) else backend)
            if settings.kind == "statevector":
                return
            if settings.forces == "none":
                raise SiqmlError("an ASE calculator needs forces: use backend forces 'shift' or 'finite_difference'")
            self.model = BackendForceField(self.forcefield, settings)

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
        prediction = self.model.predict(self.atoms.get_positions()[None])
        energy = float(prediction.energies[0])
        self.results = {"energy": energy, "free_energy": energy, "forces": prediction.forces[0]}
