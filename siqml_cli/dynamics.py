"""`siqml md` and `siqml vibrations`: a trained force field used where force fields are used (ASE)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from ase.io.trajectory import Trajectory
from omegaconf import DictConfig
from tqdm.auto import tqdm

from siqml_cli.ase import SIQMLCalculator
from siqml_cli.config import parse_command
from siqml_cli.data import read_dataset
from siqml_cli.data.generate import GENERATORS
from siqml_cli.data.io import write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input
from siqml_cli.report import figures
from siqml_cli.runs import RunFolder

CM1_PER_EV = 8065.543937


class ReferenceCalculator(Calculator):
    """The reference method of the molecule's data set (PySCF), as an ASE calculator."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, molecule: str, **kwargs):
        super().__init__(**kwargs)
        self.reference = GENERATORS[molecule].label

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = self.reference(tuple(self.atoms.get_chemical_symbols()), self.atoms.get_positions())
        self.results = {"energy": energy, "free_energy": energy, "forces": np.asarray(forces)}


def start_atoms(calc: SIQMLCalculator, start: str | None) -> Atoms:
    """The first configuration of `start`, or of the run's test split."""
    molecule = calc.forcefield.spec.name
    data = read_dataset(resolve_input(start), molecule) if start else RunFolder(calc.run).test_split(molecule)
    atoms = Atoms(symbols=list(data.species), positions=data.positions[0])
    calc.check_atoms(atoms)
    return atoms


def output_folder(settings, run: Path, kind: str) -> Path:
    return RunFolder(run).output_folder(kind, settings.out)


class BlownUp(Exception):
    """The trajectory left the physical range: NaN, or atoms too close or flying apart."""


def check_sane(atoms: Atoms, max_distance: float) -> None:
    positions = atoms.get_positions()
    if not np.all(np.isfinite(positions)) or not np.all(np.isfinite(atoms.get_forces())):
        raise BlownUp("positions or forces became NaN")
    dist = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
    if dist.max() > max_distance:
        raise BlownUp(f"atoms flew apart (a distance of {dist.max():.2f} Å > md.max_distance={max_distance})")
    if dist.min() < 0.4:
        raise BlownUp(f"atoms collapsed (a distance of {dist.min():.2f} Å)")


def md_command(cfg: DictConfig) -> None:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    settings = parse_command("md", cfg)
    md = settings.md
    calc = SIQMLCalculator(settings.run)
    atoms = start_atoms(calc, settings.start)
    atoms.calc = calc
    rng = np.random.default_rng(settings.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=md.temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dt = md.timestep * units.fs
    dyn = (VelocityVerlet(atoms, timestep=dt) if md.ensemble == "nve" else
           Langevin(atoms, timestep=dt, temperature_K=md.temperature, friction=md.friction / units.fs, rng=rng))
    out = output_folder(settings, calc.run, "md")
    n_atoms = len(atoms)
    with Trajectory(out / "md.traj", "w", atoms) as traj, open(out / "energies.csv", "w", newline="") as fh:
        table = csv.writer(fh)
        table.writerow(["step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K"])

        def record() -> None:
            epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
            table.writerow([dyn.nsteps, dyn.nsteps * md.timestep, epot, ekin, epot + ekin,
                            ekin / (1.5 * units.kB * n_atoms)])
            fh.flush()
            traj.write()

        record()
        reason = None
        with tqdm(total=int(md.steps), desc=f"md {md.ensemble}", unit="step", mininterval=0.5) as bar:
            try:
                for _ in range(int(md.steps)):
                    dyn.run(1)
                    check_sane(atoms, md.max_distance)
                    if dyn.nsteps % md.write_every == 0:
                        record()
                    bar.update()
            except BlownUp as exc:
                reason = str(exc)
    frames = read(out / "md.traj", index=":")
    write(out / "md.extxyz", frames, format="extxyz")
    energies = pd.read_csv(out / "energies.csv")
    figures.plot_md_energies(energies, out / "energies.png")
    summary = md_summary(energies, n_atoms, md.ensemble)
    summary.update(status="stopped" if reason else "complete", reason=reason, run=str(calc.run), steps_done=dyn.nsteps)
    write_text_atomic(out / "md.json", json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"trajectory: {out / 'md.traj'} ({len(frames)} frames)")
    if reason:
        raise SiqmlError(f"MD stopped at step {dyn.nsteps}: {reason}; what was written so far is in {out}")


def md_summary(energies: pd.DataFrame, n_atoms: int, ensemble: str) -> dict:
    """Total-energy drift per atom: slope of a linear fit (meV/atom/ps) and the largest excursion."""
    t_ps = energies["time_fs"].to_numpy() / 1000
    etot = energies["etot_eV"].to_numpy() / n_atoms * 1000  # meV/atom
    summary = {"ensemble": ensemble, "simulated_ps": float(t_ps[-1]),
               "mean_temperature_K": float(energies["temperature_K"].mean())}
    if ensemble == "nve" and len(t_ps) > 2:
        summary["drift_meV_per_atom_per_ps"] = float(np.polyfit(t_ps, etot, 1)[0])
        summary["max_deviation_meV_per_atom"] = float(np.max(np.abs(etot - etot[0])))
    return summary


def harmonic_frequencies(atoms: Atoms, out: Path, name: str, fmax: float, delta: float) -> tuple[np.ndarray, Atoms]:
    """Relax with BFGS, then finite-difference Hessian (ase.vibrations); the 3N-6 (or 3N-5) largest, in cm^-1."""
    from ase.optimize import BFGS
    from ase.vibrations import Vibrations

    BFGS(atoms, logfile=str(out / f"{name}_opt.log")).run(fmax=fmax, steps=500)
    vib = Vibrations(atoms, name=str(out / f"{name}_vib"), delta=delta)
    vib.run()
    energies = vib.get_energies()
    vib.clean()
    n_modes = 3 * len(atoms) - (5 if len(atoms) == 2 else 6)
    freqs = np.sort(np.real(energies))[-n_modes:] * CM1_PER_EV
    return freqs, atoms


def vibrations_command(cfg: DictConfig) -> None:
    settings = parse_command("vibrations", cfg)
    calc = SIQMLCalculator(settings.run)
    atoms = start_atoms(calc, settings.start)
    out = output_folder(settings, calc.run, "vibrations")
    model_atoms = atoms.copy()
    model_atoms.calc = calc
    freqs, model_min = harmonic_frequencies(model_atoms, out, "model", settings.fmax, settings.delta)
    table = pd.DataFrame({"mode": np.arange(1, len(freqs) + 1), "model (cm^-1)": freqs})
    write(out / "minimum_model.extxyz", model_min, format="extxyz")
    if settings.reference:
        ref_atoms = atoms.copy()
        ref_atoms.calc = ReferenceCalculator(calc.forcefield.spec.name)
        ref_freqs, ref_min = harmonic_frequencies(ref_atoms, out, "reference", settings.fmax, settings.delta)
        table["reference (cm^-1)"] = ref_freqs
        table["difference (cm^-1)"] = freqs - ref_freqs
        write(out / "minimum_reference.extxyz", ref_min, format="extxyz")
    write_text_atomic(out / "frequencies.csv", table.to_csv(index=False))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(f"written to {out}")
