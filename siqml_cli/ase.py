"""A trained run as an ASE calculator: `SIQMLCalculator(run="<run dir>"[, backend=...][, domain="error"])`; a water
cluster of any size from a monomer and a pair run: `WaterClusterCalculator(monomer=..., pair=...)`.

Thin on purpose: it checks the atoms against the model's molecule and asks the run's model (the
same code `siqml evaluate` uses) for a `Prediction`, one configuration at a time: the run's
`ForceField` through a function compiled once for a batch of one, or, with `backend` (a name such as
"aer", or a dict of `backend` config keys, e.g. {"kind": "aer", "shots": 4000}), a `BackendForceField`
whose circuits run on that Qiskit backend, transpiled once when the calculator is made.

Its problems are raised as ASE's own exception types, so that code written for any ASE calculator
handles them, and as `SiqmlError`s, so that a `siqml` command reports them in one line: a run that is
missing or damaged is an `InputError`, atoms of another molecule or a periodic cell a
`CalculatorSetupError`, a configuration outside the training domain under `domain="error"` a
`CalculationFailed`; a backend without forces computes the energy only, and ASE's
`PropertyNotImplementedError` answers a request for forces. Under `domain="warn"` (the default) the
flag is in `calc.results["out_of_domain"]` (for runs that record their domain).
"""

from __future__ import annotations

from pathlib import Path

from ase.calculators.calculator import (
    CalculationFailed,
    Calculator,
    CalculatorSetupError,
    InputError,
    all_changes,
)

from siqml_cli.config import DomainCheck, parse_domain_check
from siqml_cli.domain import check_cell
from siqml_cli.errors import SiqmlError
from siqml_cli.runs import RunFolder


class UnusableRun(SiqmlError, InputError):
    """The run folder is missing, not a trained run, or damaged."""


class AtomsMismatch(SiqmlError, CalculatorSetupError):
    """The atoms are not the model's molecule, in its order."""


class PeriodicCell(SiqmlError, CalculatorSetupError):
    """The atoms have periodic boundaries, which a molecular model cannot honour."""


class OutOfDomain(SiqmlError, CalculationFailed):
    """The configuration lies outside the run's training domain (with domain="error")."""


class SIQMLCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of a trained siVQLM, on the fast simulator unless a backend is given."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, run: str | Path, backend: str | dict | None = None, domain: str | DomainCheck = "warn",
                 **kwargs):
        super().__init__(**kwargs)
        self.run = Path(run)
        self.domain_check = parse_domain_check(domain)
        try:
            self.forcefield = RunFolder(self.run).load_forcefield(chunk=1)
        except SiqmlError as exc:
            raise UnusableRun(str(exc)) from None
        self.model = self.forcefield  # what runs: the fast simulator, or a backend
        if backend is not None:
            from siqml_cli.backends.forcefield import BackendForceField
            from siqml_cli.backends.settings import backend_settings

            settings = backend_settings({"kind": backend} if isinstance(backend, str) else backend)
            if settings.kind != "statevector":
                if settings.forces == "none":  # energies only: ASE refuses a request for forces itself
                    self.implemented_properties = ["energy", "free_energy"]
                self.model = BackendForceField(self.forcefield, settings)
        if self.model is self.forcefield:
            from siqml_cli.simulate.resources import check_resources  # the simulator package brings in JAX

            check_resources(self.forcefield.spec, 1, "double", False, batch_option=None, precision_option=None)

    @property
    def species(self) -> tuple[str, ...]:
        return self.forcefield.spec.species

    def check_atoms(self, atoms) -> None:
        """Refuse atoms this model cannot answer for: another molecule (or order), or a periodic cell."""
        symbols = tuple(atoms.get_chemical_symbols())
        if symbols != self.species:
            raise AtomsMismatch(f"atoms {'-'.join(symbols)} do not match the model of {self.run} "
                                f"({self.forcefield.spec.name}: {'-'.join(self.species)} in this order)")
        try:
            check_cell(atoms)
        except SiqmlError as exc:
            raise PeriodicCell(str(exc)) from None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.check_atoms(self.atoms)
        positions = self.atoms.get_positions()[None]
        domain = self.forcefield.domain
        if domain is not None and self.domain_check == DomainCheck.error:
            outside, reasons = domain.check(positions)
            if outside[0]:
                raise OutOfDomain(f"this configuration lies outside the training domain of {self.run} "
                                  f"({reasons[0]}); the model's answer there means nothing")
        prediction = self.model.predict(positions)
        energy = float(prediction.energies[0])
        self.results = {"energy": energy, "free_energy": energy}
        if prediction.forces is not None:
            self.results["forces"] = prediction.forces[0]
        if "out_of_domain" in prediction.flags:
            self.results["out_of_domain"] = bool(prediction.flags["out_of_domain"][0])


class WaterClusterCalculator(SIQMLCalculator):
    """Energy (eV) and forces (eV/Å) of a water cluster of any size from a monomer run and a pair run: the
    many-body expansion of `siqml_cli.cluster`, on the fast simulator. Its outputs (`siqml md`) go into the pair
    run's folder; domain flags and errors name the molecules that left what the models saw."""

    def __init__(self, monomer: str | Path, pair: str | Path, r_on: float = 6.0, r_off: float = 7.0,
                 domain: str | DomainCheck = "warn", **kwargs):
        from siqml_cli.cluster import Switch, load_cluster

        Calculator.__init__(self, **kwargs)
        self.run, self.monomer_run = Path(pair), Path(monomer)
        self.domain_check = parse_domain_check(domain)
        try:
            self.forcefield = load_cluster(monomer, pair, Switch(r_on, r_off))
        except SiqmlError as exc:
            raise UnusableRun(str(exc)) from None
        self.model = self.forcefield

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.atoms.get_chemical_symbols()) if self.atoms is not None else ()

    def check_atoms(self, atoms) -> None:
        """Refuse atoms that are not whole water molecules in O, H, H order, or a periodic cell."""
        from siqml_cli.cluster import check_molecules
        from siqml_cli.data.clusters import water_count

        try:
            water_count(atoms.get_chemical_symbols(), "the cluster")
            check_molecules(atoms.get_positions()[None])
        except SiqmlError as exc:
            raise AtomsMismatch(str(exc)) from None
        try:
            check_cell(atoms)
        except SiqmlError as exc:
            raise PeriodicCell(str(exc)) from None
