"""`siqml md` and `siqml vibrations`: a trained force field used where force fields are used (ASE)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from ase.io.trajectory import Trajectory
from omegaconf import DictConfig
from tqdm.auto import tqdm

from siqml_cli.ase import OutOfDomain, SIQMLCalculator, WaterClusterCalculator
from siqml_cli.cluster import cluster_broken, cluster_geometry_range
from siqml_cli.config import parse_command
from siqml_cli.data import read_dataset
from siqml_cli.data.generate import GENERATORS
from siqml_cli.data.io import atomic_path, write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input
from siqml_cli.report import figures
from siqml_cli.runs import RunFolder


class ReferenceCalculator(Calculator):
    """The reference method of the molecule's data set (PySCF), as an ASE calculator."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, sampler: str, **kwargs):
        """`sampler`: the data set's sampler (`molecule.generate.sampler`), which names its labelling method."""
        super().__init__(**kwargs)
        self.reference = GENERATORS[sampler].label

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = self.reference(tuple(self.atoms.get_chemical_symbols()), self.atoms.get_positions())
        self.results = {"energy": energy, "free_energy": energy, "forces": np.asarray(forces)}


def reference_sampler(run) -> str:
    """The sampler (and so the labelling method) of the data set a run was trained on; runs from before molecules
    named their sampler used their molecule's name."""
    from omegaconf import OmegaConf

    config = RunFolder(run).config()
    sampler = OmegaConf.select(config, "molecule.generate.sampler", default=None) or str(config.molecule.name)
    return sampler if sampler in GENERATORS else "normal_modes"


def start_atoms(calc: SIQMLCalculator, start: str | None) -> Atoms:
    """The first configuration of `start`, or of the run's test split."""
    molecule = calc.forcefield.spec.name
    data = read_dataset(resolve_input(start), molecule) if start else RunFolder(calc.run).test_split(molecule)
    atoms = Atoms(symbols=list(data.species), positions=data.positions[0])
    calc.check_atoms(atoms)
    return atoms


def output_folder(settings, run: Path, kind: str) -> Path:
    return RunFolder(run).output_folder(kind, settings.out)


class DomainWatch:
    """Counts the MD steps whose configuration lies outside the run's training domain (the calculator's
    `out_of_domain` result), and warns in one line when the trajectory first leaves it."""

    def __init__(self, calc: SIQMLCalculator, dyn):
        self.calc, self.dyn = calc, dyn
        self.outside = 0
        self.first_step: int | None = None

    def __call__(self) -> None:
        if not self.calc.results.get("out_of_domain"):
            return
        self.outside += 1
        if self.first_step is None:
            self.first_step = self.dyn.nsteps
            _, reasons = self.calc.forcefield.domain.check(self.calc.atoms.get_positions())
            tqdm.write(f"siqml md: warning: the trajectory left the training domain at step {self.first_step} "
                       f"({reasons[0]}); its energies and forces there mean nothing", file=sys.stderr)

    def record(self) -> dict:
        """What md.json says: the steps outside (None for a run that records no domain)."""
        if self.calc.forcefield.domain is None:
            return {"out_of_domain_steps": None}
        return {"out_of_domain_steps": self.outside, "first_step_out_of_domain": self.first_step}


class BlownUp(Exception):
    """The trajectory left the physical range: NaN, or atoms too close or flying apart."""


def check_cluster_sane(atoms: Atoms, cutoff: float) -> None:
    """A water cluster's trajectory stops when a molecule breaks or leaves the cluster (no other O within the cutoff,
    where the expansion no longer holds it), or atoms collapse."""
    check_finite_and_apart(atoms)
    problem = cluster_broken(atoms.get_positions(), cutoff)
    if problem:
        raise BlownUp(problem)


def cluster_atoms(calc: WaterClusterCalculator, geometry: str) -> Atoms:
    """The cluster to start from: the first configuration of `geometry` (xyz or extxyz), checked."""
    path = resolve_input(geometry)
    try:
        atoms = read(path, index=0)
    except Exception as exc:  # ASE raises many types for a file it cannot parse
        raise SiqmlError(f"cluster.geometry={geometry} cannot be read as xyz/extxyz ({type(exc).__name__}: {exc}); "
                         "give an xyz file of the cluster, atoms O, H, H per molecule") from None
    atoms = Atoms(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions())
    calc.check_atoms(atoms)
    return atoms


def check_finite_and_apart(atoms: Atoms) -> np.ndarray:
    """Stop on NaN positions or forces, or on two atoms closer than 0.4 Å; the interatomic distances."""
    if not np.all(np.isfinite(atoms.get_positions())) or not np.all(np.isfinite(atoms.get_forces())):
        raise BlownUp("positions or forces became NaN")
    dist = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
    if dist.min() < 0.4:
        raise BlownUp(f"atoms collapsed (a distance of {dist.min():.2f} Å)")
    return dist


def check_sane(atoms: Atoms, max_distance: float) -> None:
    dist = check_finite_and_apart(atoms)
    if dist.max() > max_distance:
        raise BlownUp(f"atoms flew apart (a distance of {dist.max():.2f} Å > md.max_distance={max_distance})")


def md_command(cfg: DictConfig) -> None:
    from ase.md import MDLogger
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    settings = parse_command("md", cfg)
    md = settings.md
    cluster = settings.cluster
    if cluster.given:
        calc = WaterClusterCalculator(resolve_input(cluster.monomer), resolve_input(cluster.pair), cluster.r_on,
                                      cluster.r_off, domain=settings.domain)
        atoms = cluster_atoms(calc, cluster.geometry)
        sane = lambda: check_cluster_sane(atoms, cluster.r_off)  # noqa: E731
        about = {"cluster": {"monomer": str(calc.monomer_run), "pair": str(calc.run), "geometry": cluster.geometry,
                             "molecules": len(atoms) // 3, "r_on": cluster.r_on, "r_off": cluster.r_off}}
    else:
        calc = SIQMLCalculator(settings.run, domain=settings.domain)
        atoms = start_atoms(calc, settings.start)
        sane = lambda: check_sane(atoms, md.max_distance)  # noqa: E731
        about = {"run": str(calc.run)}
    atoms.calc = calc
    atoms.get_forces()  # a start outside the domain under domain=error stops here, before any file is written
    rng = np.random.default_rng(settings.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=md.temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dt = md.timestep * units.fs
    dyn = (VelocityVerlet(atoms, timestep=dt) if md.ensemble == "nve" else
           Langevin(atoms, timestep=dt, temperature_K=md.temperature, friction=md.friction / units.fs, rng=rng))
    out = output_folder(settings, calc.run, "md")
    domain = DomainWatch(calc, dyn)
    reason = None
    with (Trajectory(out / "md.traj", "w", atoms) as traj,
          MDLogger(dyn, atoms, str(out / "md.log"), mode="w") as logger,
          tqdm(total=int(md.steps), desc=f"md {md.ensemble}", unit="step", mininterval=0.5) as bar):
        # first, so that a blown-up step is not recorded; the start is recorded as given
        dyn.attach(lambda: dyn.nsteps == 0 or sane())
        dyn.attach(domain)
        dyn.attach(traj.write, md.write_every)
        dyn.attach(logger, md.write_every)
        dyn.attach(lambda: bar.update(dyn.nsteps - bar.n))
        try:
            dyn.run(int(md.steps))
        except (BlownUp, OutOfDomain) as exc:
            reason = str(exc)
    frames = read(out / "md.traj", index=":")
    with atomic_path(out / "md.extxyz") as tmp:
        write(tmp, frames, format="extxyz")
    energies = trajectory_energies(frames, md.write_every, md.timestep)
    write_text_atomic(out / "energies.csv", energies.to_csv(index=False))
    figures.plot_md_energies(energies, out / "energies.png")
    summary = md_summary(energies, len(atoms), md.ensemble)
    summary.update(status="stopped" if reason else "complete", reason=reason, **about, steps_done=dyn.nsteps,
                   **domain.record())
    if cluster.given:
        summary.update(cluster_geometry_range([f.get_positions() for f in frames]))
    write_text_atomic(out / "md.json", json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"trajectory: {out / 'md.traj'} ({len(frames)} frames)")
    if reason:
        raise SiqmlError(f"MD stopped at step {dyn.nsteps}: {reason}; what was written so far is in {out}")


def trajectory_energies(frames: list[Atoms], every: int, timestep_fs: float) -> pd.DataFrame:
    """The energies of the saved frames at full precision (MDLogger's md.log rounds them to 0.1 meV, too
    coarse for the drift): the trajectory holds each frame's potential energy and momenta."""
    step = np.arange(len(frames)) * every
    epot = np.array([f.get_potential_energy() for f in frames])
    ekin = np.array([f.get_kinetic_energy() for f in frames])
    return pd.DataFrame({"step": step, "time_fs": step * timestep_fs, "epot_eV": epot, "ekin_eV": ekin,
                         "etot_eV": epot + ekin, "temperature_K": [f.get_temperature() for f in frames]})


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
    frequencies = vib.get_frequencies()  # cm^-1; an imaginary mode has real part 0
    vib.clean()
    n_modes = 3 * len(atoms) - (5 if len(atoms) == 2 else 6)
    freqs = np.sort(np.real(frequencies))[-n_modes:]
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
    with atomic_path(out / "minimum_model.extxyz") as tmp:
        write(tmp, model_min, format="extxyz")
    if settings.reference:
        ref_atoms = atoms.copy()
        ref_atoms.calc = ReferenceCalculator(reference_sampler(calc.run))
        ref_freqs, ref_min = harmonic_frequencies(ref_atoms, out, "reference", settings.fmax, settings.delta)
        table["reference (cm^-1)"] = ref_freqs
        table["difference (cm^-1)"] = freqs - ref_freqs
        with atomic_path(out / "minimum_reference.extxyz") as tmp:
            write(tmp, ref_min, format="extxyz")
    write_text_atomic(out / "frequencies.csv", table.to_csv(index=False))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(f"written to {out}")
