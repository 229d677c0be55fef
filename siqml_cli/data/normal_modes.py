"""Configurations of any molecule from its harmonic normal modes at a temperature (docs/data.md).

The sampler is pinned down so that configurations drawn later the same way share the distribution:

1. the start geometry is optimised at the level of theory (`label_dft`, ASE's BFGS to `FMAX`);
2. the Hessian there comes from PySCF's analytic second derivatives; it is mass-weighted and the
   translations and rotations are projected out, leaving 3A - 6 modes (3A - 5 for a linear molecule)
   with eigenvalues omega_i^2 in eV / (Angstrom^2 amu) and orthonormal mass-weighted vectors e_i;
   a mode below `min_wavenumber` (default `MIN_WAVENUMBER`; or imaginary) means the geometry is not a
   minimum: an error (a water cluster's soft intermolecular modes need a lower threshold, its sampler
   parameter `min_wavenumber`);
3. each configuration: q_i ~ N(0, k_B T / omega_i^2) for every mode, displacement
   dx = M^(-1/2) sum_i q_i e_i, then a uniformly random rotation about the centroid and a
   translation uniform in [-2, 2]^3 Angstrom; a configuration with two atoms closer than
   `MIN_DISTANCE` is drawn again.

At the harmonic level each mode then holds k_B T / 2 of potential energy on average; the real
surface is anharmonic, so at 1000 K the soft modes (a torsion) reach geometries well above that.
Everything a later draw needs -- the minimum, masses, eigenvalues and vectors, T -- is stored with
the data set (`NormalModes.attrs`), so `sample_from` needs no quantum chemistry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import units

from siqml_cli.errors import SiqmlError

#: k_B in eV / K
BOLTZMANN_EV = units.kB
#: Angstrom: closer atoms make the configuration be drawn again
MIN_DISTANCE = 0.7
#: cm^-1: a softer (or imaginary) mode means the optimised geometry is no minimum (the default of the
#: sampler parameter `min_wavenumber`)
MIN_WAVENUMBER = 50.0
#: sampler parameters that shape the reference (the minimum and its modes), not the draw from it
REFERENCE_PARAMS = ("min_wavenumber",)
#: eV/Angstrom: the largest force component left at the optimised geometry
FMAX = 5e-4
#: Angstrom: atoms closer than this in a given geometry are an input error, not a molecule
OVERLAP = 0.5
#: sqrt(eV / (Angstrom^2 amu)) in cm^-1: omega / (2 pi c)
WAVENUMBER_PER_SQRT_EIGENVALUE = float(np.sqrt(units._e / units._amu) * 1e10 / (2 * np.pi * units._c * 100))


@dataclass(frozen=True)
class NormalModes:
    """The harmonic modes at a minimum: the sampler's whole state."""

    species: tuple[str, ...]
    minimum: np.ndarray        # (A, 3) Angstrom
    energy: float              # eV at the minimum
    masses: np.ndarray         # (A,) amu
    eigenvalues: np.ndarray    # (M,) omega^2, eV / (Angstrom^2 amu)
    vectors: np.ndarray        # (M, A, 3) orthonormal in mass-weighted coordinates

    @property
    def wavenumbers(self) -> np.ndarray:
        """Harmonic frequencies in cm^-1."""
        return np.sqrt(self.eigenvalues) * WAVENUMBER_PER_SQRT_EIGENVALUE

    @property
    def attrs(self) -> dict:
        """What a data set stores so that anyone can draw more configurations the same way."""
        return {"reference_geometry": self.minimum, "reference_energy": float(self.energy), "masses": self.masses,
                "mode_eigenvalues": self.eigenvalues, "normal_modes": self.vectors,
                "frequencies_cm": self.wavenumbers}

    @classmethod
    def from_attrs(cls, species, attrs: dict) -> NormalModes:
        missing = [k for k in ("reference_geometry", "masses", "mode_eigenvalues", "normal_modes") if k not in attrs]
        if missing:
            raise SiqmlError(f"the data set has no {', '.join(missing)}: it was not drawn from normal modes; "
                             "generate it with `siqml data` (sampler normal_modes)")
        return cls(tuple(species), np.asarray(attrs["reference_geometry"], float),
                   float(attrs.get("reference_energy", np.nan)), np.asarray(attrs["masses"], float),
                   np.asarray(attrs["mode_eigenvalues"], float), np.asarray(attrs["normal_modes"], float))


def check_geometry(species, positions, where: str = "the geometry") -> None:
    """A one-line error for a geometry no force field can be built on."""
    from ase.data import atomic_numbers

    species = tuple(species)
    if len(species) < 2:
        raise SiqmlError(f"{where} has {len(species)} atom(s); a force field needs a molecule of at least two atoms")
    unknown = [s for s in species if s not in atomic_numbers]
    if unknown:
        raise SiqmlError(f"{where}: unknown element(s) {', '.join(unknown)}; use chemical symbols such as H, C, N, O")
    positions = np.asarray(positions, float)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)[np.triu_indices(len(species), 1)]
    if distances.min() < OVERLAP:
        i, j = (int(k[np.argmin(distances)]) for k in np.triu_indices(len(species), 1))
        raise SiqmlError(f"{where}: atoms {i} ({species[i]}) and {j} ({species[j]}) are {distances.min():.3f} Angstrom "
                         f"apart (below {OVERLAP}); fix the geometry (coordinates are read in Angstrom)")


def read_geometry(path) -> tuple[tuple[str, ...], np.ndarray]:
    """Species and positions (Angstrom) of the first structure in an xyz/extxyz (or any ASE-readable) file."""
    from pathlib import Path

    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise SiqmlError(f"geometry file {path} not found; give an xyz or extxyz file of the molecule")
    try:
        atoms = read(path, index=0)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise SiqmlError(f"{path} cannot be read as a geometry ({type(exc).__name__}: {exc}); "
                         "give an xyz or extxyz file") from None
    species = tuple(atoms.get_chemical_symbols())
    check_geometry(species, atoms.positions, str(path))
    return species, np.array(atoms.positions, float)


class _LevelOfTheory:
    """An ASE calculator computing energies and forces with `siqml_cli.data.generate.label_dft`."""

    def __new__(cls):
        from ase.calculators.calculator import Calculator, all_changes

        from siqml_cli.data.generate import label_dft

        class DFT(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                energy, forces = label_dft(tuple(self.atoms.get_chemical_symbols()), self.atoms.positions)
                self.results = {"energy": energy, "forces": forces}

        return DFT()


def optimise(species, positions, fmax: float = FMAX, steps: int = 500) -> tuple[np.ndarray, float]:
    """The minimum near `positions` at the level of theory, and its energy (eV)."""
    from ase import Atoms
    from ase.optimize import BFGS

    atoms = Atoms(list(species), positions=np.asarray(positions, float))
    atoms.calc = _LevelOfTheory()
    if not BFGS(atoms, logfile=None, maxstep=0.1).run(fmax=fmax, steps=steps):
        raise SiqmlError(f"the geometry optimisation did not reach forces below {fmax} eV/Angstrom in {steps} steps; "
                         "start from a better geometry")
    return np.array(atoms.positions), float(atoms.get_potential_energy())


def analytic_hessian(species, positions) -> np.ndarray:
    """d^2E/dx^2 (3A, 3A) in eV / Angstrom^2, from PySCF's analytic second derivatives at the level of theory."""
    from pyscf import dft

    from siqml_cli.data.generate import DFT_SETTINGS, _mol
    from siqml_cli.units import BOHR_ANGSTROM, HARTREE_EV

    mf = dft.RKS(_mol(species, positions, DFT_SETTINGS["basis"]))
    mf.xc = DFT_SETTINGS["xc"]
    mf.conv_tol = DFT_SETTINGS["conv_tol"]
    mf.kernel()
    if not mf.converged:
        raise SiqmlError("PySCF SCF did not converge at the optimised geometry; check the molecule")
    hessian = mf.Hessian().kernel()  # (A, A, 3, 3) in Hartree / Bohr^2
    n = len(species)
    return hessian.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * HARTREE_EV / BOHR_ANGSTROM**2


def rigid_motions(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """An orthonormal basis (K, 3A) of the translations and infinitesimal rotations in mass-weighted
    coordinates (K = 6, or 5 for a linear molecule)."""
    sqrt_m = np.sqrt(masses)[:, None]
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    motions = [np.repeat(np.eye(3)[k][None], len(masses), 0) * sqrt_m for k in range(3)]
    motions += [np.cross(np.eye(3)[k], centred) * sqrt_m for k in range(3)]
    u, s, _ = np.linalg.svd(np.stack([m.ravel() for m in motions], axis=1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()].T


def harmonic_modes(species, minimum: np.ndarray, hessian: np.ndarray, energy: float = float("nan"),
                   min_wavenumber: float = MIN_WAVENUMBER) -> NormalModes:
    """The vibrational modes of `hessian` (3A, 3A, eV/Angstrom^2) at `minimum`, rigid motions projected out;
    a mode below `min_wavenumber` (cm^-1) is an error."""
    from ase.data import atomic_masses, atomic_numbers

    masses = np.array([atomic_masses[atomic_numbers[s]] for s in species])
    inv_sqrt = np.repeat(1.0 / np.sqrt(masses), 3)
    weighted = inv_sqrt[:, None] * 0.5 * (hessian + hessian.T) * inv_sqrt[None, :]
    rigid = rigid_motions(minimum, masses)
    projector = np.eye(len(weighted)) - rigid.T @ rigid
    values, vectors = np.linalg.eigh(projector @ weighted @ projector)
    # the rigid motions are exact zero modes of the projected matrix: drop the K eigenvectors lying in them
    inside = np.linalg.norm(rigid @ vectors, axis=0)
    keep = np.argsort(inside)[: len(weighted) - len(rigid)]
    keep = keep[np.argsort(values[keep])]
    values, vectors = values[keep], vectors[:, keep]
    wavenumbers = np.sign(values) * np.sqrt(np.abs(values)) * WAVENUMBER_PER_SQRT_EIGENVALUE
    if not min_wavenumber > 0:
        raise SiqmlError(f"min_wavenumber must be a positive number of cm^-1, got {min_wavenumber!r}")
    if wavenumbers.min() < min_wavenumber:
        raise SiqmlError(f"the optimised geometry has a mode at {wavenumbers.min():.0f} cm^-1 (imaginary if negative), "
                         f"below min_wavenumber = {min_wavenumber:g}: it is not a minimum with well-defined "
                         "vibrations; start from another geometry (or lower the sampler's min_wavenumber)")
    return NormalModes(tuple(species), np.asarray(minimum, float), float(energy), masses, values,
                       vectors.T.reshape(-1, len(species), 3))


def prepare(species, start: np.ndarray, min_wavenumber: float = MIN_WAVENUMBER) -> NormalModes:
    """Optimise `start` and compute its normal modes: the reference of a normal-mode data set."""
    minimum, energy = optimise(species, start)
    return harmonic_modes(species, minimum, analytic_hessian(species, minimum), energy, min_wavenumber)


def sample_from(modes: NormalModes, rng: np.random.Generator, temperature: float, shift: float = 2.0) -> np.ndarray:
    """One configuration (A, 3) drawn as in the module docstring."""
    from siqml_cli.data.generate import place_randomly

    if not temperature > 0:
        raise SiqmlError(f"the sampling temperature must be positive (K), got {temperature!r}")
    n = len(modes.species)
    pairs = np.triu_indices(n, 1)
    while True:
        q = rng.normal(size=len(modes.eigenvalues)) * np.sqrt(BOLTZMANN_EV * temperature / modes.eigenvalues)
        displacement = np.tensordot(q, modes.vectors, axes=1) / np.sqrt(modes.masses)[:, None]
        positions = modes.minimum + displacement
        if np.linalg.norm(positions[:, None] - positions[None], axis=-1)[pairs].min() >= MIN_DISTANCE:
            return place_randomly(positions, rng, shift)
