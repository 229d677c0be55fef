"""Reference labels from PySCF, with the geometry sampling of docs/data.md.

`generate` samples every geometry up front from one seed (so the set does not depend on how
often it was interrupted), labels them one by one, checkpoints progress to `<out>.partial.h5`
and renames the finished file into place.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from siqml_cli.data import clusters, normal_modes
from siqml_cli.data.io import read_hdf5, write_hdf5
from siqml_cli.data.schema import Dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.units import HARTREE_EV, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM

LIH_FD_STEP = 1e-4  # Å, central difference along the bond
DFT_SETTINGS = {"xc": "pbe", "basis": "def2-svp", "conv_tol": 1e-10}
CHECKPOINT_EVERY_S = 20.0  # how often labelling progress is saved to <out>.partial.h5


# --------------------------------------------------------------------------- sampling


def random_rotation(rng: np.random.Generator) -> Rotation:
    """Uniform random rotation, from a normalised Gaussian 4-vector (a uniform unit quaternion)."""
    return Rotation.from_quat(rng.normal(size=4))


def random_small_rotation(rng: np.random.Generator, max_deg: float) -> Rotation:
    """Rotation about a uniformly random axis by an angle uniform in [-max_deg, max_deg]."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(-max_deg, max_deg)))


def place_randomly(positions: np.ndarray, rng: np.random.Generator, shift: float = 2.0) -> np.ndarray:
    """Rotate about the centroid uniformly at random, then translate by U[-shift, shift]^3."""
    centroid = positions.mean(axis=0)
    return random_rotation(rng).apply(positions - centroid) + centroid + rng.uniform(-shift, shift, size=3)


def water_monomer(r1: float, r2: float, angle_deg: float) -> np.ndarray:
    """O at the origin, H1 on +x, H2 in the xy plane."""
    a = np.deg2rad(angle_deg)
    return np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(a), r2 * np.sin(a), 0.0]])


def sample_lih(rng: np.random.Generator, bond: tuple[float, float]) -> np.ndarray:
    d = rng.uniform(*bond)
    return place_randomly(np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]]), rng)


def sample_h2o(rng: np.random.Generator, r_oh: tuple[float, float], angle_deg: tuple[float, float]) -> np.ndarray:
    r1, r2 = rng.uniform(*r_oh, size=2)
    return place_randomly(water_monomer(r1, r2, rng.uniform(*angle_deg)), rng)


def sample_water_dimer(rng: np.random.Generator, r_oh: tuple[float, float], angle_deg: tuple[float, float],
                       r_oo: tuple[float, float], tilt_deg: float = 15.0, acceptor_tilt_deg: float = 57.0,
                       min_distance: float = 0.85, min_hbond: float = 1.4) -> np.ndarray:
    """A hydrogen-bonded pair O_a H_a1 H_a2 O_b H_b1 H_b2, drawn until it passes the distance checks."""
    while True:
        donor = random_small_rotation(rng, tilt_deg).apply(
            water_monomer(*rng.uniform(*r_oh, size=2), rng.uniform(*angle_deg)))
        r1, r2 = rng.uniform(*r_oh, size=2)
        angle = rng.uniform(*angle_deg)
        acceptor = water_monomer(r1, r2, angle)
        bisector = Rotation.from_euler("z", -angle / 2, degrees=True)
        acceptor = (random_small_rotation(rng, tilt_deg) * Rotation.from_euler("y", acceptor_tilt_deg, degrees=True)
                    * bisector).apply(acceptor)
        acceptor += np.array([rng.uniform(*r_oo), 0.0, 0.0])
        dimer = np.vstack([donor, acceptor])
        dist = np.linalg.norm(dimer[:, None] - dimer[None], axis=-1)
        close = dist[np.triu_indices(6, 1)].min() < min_distance
        hbond = min(dist[1, 3], dist[2, 3]) < min_hbond
        if not (close or hbond):
            return place_randomly(dimer, rng)


# --------------------------------------------------------------------------- water dimer 1D cut

#: The PBE/def2-SVP minimum of the water dimer, O_a H_a1 H_a2 O_b H_b1 H_b2 in Å: ASE BFGS on
#: `label_dft` to fmax 0.01 eV/Å from the sampler's dimer frame, then moved rigidly so that O_a is at the
#: origin, O_b on +x and the mirror plane is xz. O-O 2.836 Å, O-H...O 159.8°, E = -4151.37082 eV.
WATER_DIMER_MINIMUM = np.array([
    [0.0, 0.0, 0.0],
    [0.9585103121, 0.0, 0.2269922189],
    [-0.4227083078, 0.0, 0.8772296569],
    [2.8359547789, 0.0, 0.0],
    [2.7752740839, -0.7609417001, -0.6096101390],
    [2.7752740839, 0.7609417001, -0.6096101390],
])
CUT_ATOM = 1                           # H_a1, the bridging hydrogen
CUT_AXIS = np.array([1.0, 0.0, 0.0])   # x: the O_a -> O_b direction
CUT_FIXED = [0, 2, 3, 4, 5]            # the atoms that stay at the minimum


def cut_geometry(displacement: float) -> np.ndarray:
    """The minimum with H_a1 moved by `displacement` Å along x: the cut in the reference frame."""
    positions = WATER_DIMER_MINIMUM.copy()
    positions[CUT_ATOM] += displacement * CUT_AXIS
    return positions


def sample_water_dimer_cut(rng: np.random.Generator, n: int, displacement: tuple[float, float]) -> np.ndarray:
    """The paper's 1D cut (Table 4, Fig. 8): `n` evenly spaced displacements of H_a1 along x over
    `displacement` (Å), everything else at the minimum; each configuration then placed randomly.

    H_a1 is the hydrogen whose motion the H-bond shapes, and x the axis of the minimum's frame
    closest to (here: along) O_a -> O_b; the configured range is where a coarse scan found the energy
    rising by at least 0.5 eV above the cut's minimum on both sides.
    """
    return np.stack([place_randomly(cut_geometry(d), rng) for d in np.linspace(*displacement, n)])


def align_on_minimum(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch-align the five fixed atoms of (N, 6, 3) configurations onto `WATER_DIMER_MINIMUM`.

    Returns the rotations (N, 3, 3), which turn vectors (forces) into the reference frame, and the
    aligned positions (N, 6, 3), whose fixed atoms sit on the minimum for cut configurations.
    """
    ref = WATER_DIMER_MINIMUM[CUT_FIXED]
    ref_centroid = ref.mean(axis=0)
    centroid = positions[:, CUT_FIXED].mean(axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(np.swapaxes(positions[:, CUT_FIXED] - centroid, 1, 2) @ (ref - ref_centroid))
    flip = np.ones((len(positions), 3))
    flip[:, 2] = np.sign(np.linalg.det(u @ vt))  # a proper rotation, never a reflection
    rotations = np.swapaxes((u * flip[:, None]) @ vt, 1, 2)
    aligned = (positions - centroid) @ np.swapaxes(rotations, 1, 2) + ref_centroid
    return rotations, aligned


def cut_displacement(positions: np.ndarray) -> np.ndarray:
    """Where (N, 6, 3) configurations lie on the cut, in Å, from their positions alone."""
    _, aligned = align_on_minimum(positions)
    return (aligned[:, CUT_ATOM] - WATER_DIMER_MINIMUM[CUT_ATOM]) @ CUT_AXIS


def force_along_cut(positions: np.ndarray, forces: np.ndarray) -> np.ndarray:
    """-dE/d(displacement): H_a1's force on the cut axis, in the reference frame (eV/Å)."""
    rotations, _ = align_on_minimum(positions)
    return np.einsum("nij,nj->ni", rotations, forces[:, CUT_ATOM]) @ CUT_AXIS


# --------------------------------------------------------------------------- labels


def _mol(species, positions, basis):
    from pyscf import gto

    atom = [(s, tuple(p)) for s, p in zip(species, positions)]
    return gto.M(atom=atom, basis=basis, unit="Angstrom", verbose=0)


def lih_fci_energy(bond: float) -> float:
    """FCI/STO-3G energy (eV) on an RHF reference; exact diagonalisation in the minimal basis."""
    from pyscf import fci, scf

    mf = scf.RHF(_mol(("Li", "H"), np.array([[0, 0, 0], [0, 0, bond]]), "sto-3g"))
    mf.conv_tol = 1e-12
    mf.kernel()
    energy, _ = fci.FCI(mf).kernel()
    return float(energy) * HARTREE_EV


def label_lih(species, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy and forces; forces by the central difference of E(d) along the bond."""
    bond_vec = positions[1] - positions[0]
    d = float(np.linalg.norm(bond_vec))
    slope = (lih_fci_energy(d + LIH_FD_STEP) - lih_fci_energy(d - LIH_FD_STEP)) / (2 * LIH_FD_STEP)
    unit = bond_vec / d
    return lih_fci_energy(d), np.array([slope * unit, -slope * unit])


def label_dft(species, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """RKS PBE/def2-SVP energy and analytic forces."""
    from pyscf import dft

    mf = dft.RKS(_mol(species, positions, DFT_SETTINGS["basis"]))
    mf.xc = DFT_SETTINGS["xc"]
    mf.conv_tol = DFT_SETTINGS["conv_tol"]
    energy = mf.kernel()
    if not mf.converged:  # far-stretched geometries of a hot sample: second-order SCF from where DIIS stopped
        mf = mf.newton()
        energy = mf.kernel(mf.make_rdm1())
    if not mf.converged:
        raise SiqmlError("PySCF SCF did not converge for a configuration, with DIIS or second-order SCF; check "
                         "the geometry")
    gradient = mf.nuc_grad_method().kernel()
    return float(energy) * HARTREE_EV, -np.asarray(gradient) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


@dataclass(frozen=True)
class Generator:
    """How one reference set is drawn and labelled."""

    level_of_theory: str
    sample: Callable[..., np.ndarray]
    label: Callable[[tuple, np.ndarray], tuple[float, np.ndarray]]
    whole_set: bool = False  # `sample(rng, n, ...)` draws all n at once (a cut), not one per call
    attrs: dict = field(default_factory=dict)  # more provenance for the file's attributes
    normal_modes: bool = False  # `sample(modes, rng, ...)` draws around a minimum (`normal_modes.NormalModes`)
    fragments: clusters.FragmentLabels | None = None  # labels assembled from `label` on parts, one task each
    describe: Callable[[int, dict], dict] | None = None  # attributes that depend on n and the parameters


PBE = "RKS PBE/def2-SVP (PySCF default grid, conv_tol 1e-10), analytic gradients"

#: The samplers, by name (a molecule's `molecule.generate.sampler`): the paper's hand-made ones, and the
#: normal-mode sampler of any molecule.
GENERATORS = {
    "lih": Generator("FCI/STO-3G (PySCF, RHF reference, conv_tol 1e-12); forces by central differences "
                     f"of E(d), h = {LIH_FD_STEP} Angstrom", sample_lih, label_lih),
    "h2o": Generator(PBE, sample_h2o, label_dft),
    "water_dimer": Generator(PBE, sample_water_dimer, label_dft),
    "water_dimer_cut": Generator(PBE, sample_water_dimer_cut, label_dft, whole_set=True,
                                 attrs={"reference_geometry": WATER_DIMER_MINIMUM, "cut_atom": CUT_ATOM,
                                        "cut_axis": CUT_AXIS}),
    "normal_modes": Generator(PBE + "; configurations from the harmonic normal modes of the optimised geometry",
                              normal_modes.sample_from, label_dft, normal_modes=True),
    "water_cluster": Generator(PBE + "; configurations from the harmonic normal modes of the optimised cluster",
                               normal_modes.sample_from, label_dft, normal_modes=True,
                               fragments=clusters.CLUSTER_LABELS, attrs={"extra_labels": clusters.SECOND_ORDER}),
    "water_pairs": Generator(PBE + "; labels " + clusters.TWO_BODY, clusters.sample_water_pairs, label_dft,
                             whole_set=True, fragments=clusters.PAIR_LABELS, describe=clusters.pair_attrs,
                             attrs={"label_kind": clusters.TWO_BODY}),
}


def package_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in ("pyscf", "numpy", "scipy", "ase", "siqml")
            if _installed(name)}


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def sample(sampler: str, n: int, seed: int, params: dict, modes: normal_modes.NormalModes | None = None) -> np.ndarray:
    """`n` configurations (n, A, 3) drawn by `sampler` from `seed`; a normal-mode sampler draws around `modes`."""
    rng = np.random.default_rng(seed)
    generator = GENERATORS[sampler]
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if generator.whole_set:
        return generator.sample(rng, n, **params)
    if generator.normal_modes:
        if modes is None:
            raise SiqmlError("the normal-mode sampler needs the molecule's modes; generate its data set first "
                             "with `siqml data`")
        params = {k: v for k, v in params.items() if k not in normal_modes.REFERENCE_PARAMS}
        return np.stack([generator.sample(modes, rng, **params) for _ in range(n)])
    return np.stack([generator.sample(rng, **params) for _ in range(n)])


def _single_threaded_worker() -> None:
    """Each labelling process uses one core (one process per core beats one process with many threads on
    molecules this small) and leaves Ctrl-C to the parent, which saves what was labelled and ends it."""
    import signal

    from pyscf import lib

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lib.num_threads(1)


#: labels of a configuration from one calculation on all its atoms
WHOLE = clusters.FragmentLabels(lambda species: [np.arange(len(species))],
                                lambda species, results: (*results[0], {}), lambda species: {})


def _label_one(task: tuple) -> tuple[int, int, tuple[float, np.ndarray]]:
    sampler, species, positions, index, part = task
    return index, part, GENERATORS[sampler].label(species, positions)


def is_labelled(data: Dataset) -> np.ndarray:
    """Which configurations have all their labels: energy, forces and every extra label."""
    done = np.isfinite(data.energies) & np.isfinite(data.forces).all(axis=(1, 2))
    for values in data.extras.values():
        done &= np.isfinite(values.reshape(len(data), -1)).all(axis=1)
    return done


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def label_all(data: Dataset, sampler: str, out: Path, workers: int = 1, description: str = "",
              only: np.ndarray | None = None) -> Dataset:
    """Fill in energies, forces and extra labels where missing (NaN) -- of the configurations `only` (a boolean
    mask) if given -- `workers` processes at once, checkpointing to `<out>.partial.h5`; on Ctrl-C (or SIGTERM) the
    labels so far are saved there before the interruption goes on, with what was kept.

    A sampler with `fragments` labels each part of a configuration as its own task (a cluster's monomers and
    pairs run in parallel); a configuration is stored once all its parts are done, so an interruption loses
    only the parts of configurations in progress."""
    from siqml_cli import interrupts

    partial = out.with_name(out.name + ".partial.h5")
    generator = GENERATORS[sampler]
    label = generator.label
    fragments = generator.fragments or WHOLE
    parts = fragments.parts(data.species)
    wanted = np.ones(len(data), bool) if only is None else only
    todo = np.where(~is_labelled(data) & wanted)[0]
    last_save = time.monotonic()
    done_parts: dict[int, dict[int, tuple[float, np.ndarray]]] = {}

    def kept() -> str:  # saved on the way out, and if the process must be ended from the watchdog
        return (f"{save_labelled(data, partial)} of {len(data)} configurations labelled, kept in {partial}; run the "
                "same command again to continue")

    def checkpoint() -> None:
        nonlocal last_save
        if time.monotonic() - last_save >= CHECKPOINT_EVERY_S:
            write_hdf5(data, partial)
            last_save = time.monotonic()

    def finish(i: int, part: int, result: tuple[float, np.ndarray]) -> None:
        """Keep one part's label; once a configuration has all its parts, store its labels."""
        done = done_parts.setdefault(i, {})
        done[part] = result
        if len(done) < len(parts):
            return
        del done_parts[i]
        energy, forces, extras = fragments.combine(data.species, [done[k] for k in range(len(parts))])
        for name, value in extras.items():
            data.extras[name][i] = value
        data.energies[i], data.forces[i] = energy, forces
        bar.update()
        checkpoint()

    forget = interrupts.on_interrupt(kept)
    bar = tqdm(total=int(wanted.sum()), initial=int(wanted.sum()) - len(todo),
               desc=f"labelling {description or sampler}", unit="conf")
    tasks = ((sampler, tuple(data.species[a] for a in atoms), data.positions[i][atoms], int(i), k)
             for i in todo for k, atoms in enumerate(parts))
    try:
        if workers <= 1 or len(todo) * len(parts) <= 1:
            for _, species, positions, i, k in tasks:
                finish(i, k, label(species, positions))
        else:  # a fresh interpreter per worker (forkserver): the parent may hold JAX's threads, which fork can hang
            pool = multiprocessing.get_context("forkserver").Pool(workers, initializer=_single_threaded_worker)
            try:
                for i, k, result in pool.imap_unordered(_label_one, tasks):
                    finish(i, k, result)
                pool.close()
            finally:
                pool.terminate()  # on an interruption or an error: the workers stop now, not after their point
                pool.join()
    except KeyboardInterrupt as exc:
        raise type(exc)(kept()) from None
    finally:
        bar.close()
        forget()
    write_hdf5(data, out)
    partial.unlink(missing_ok=True)
    return data


def save_labelled(data: Dataset, partial: Path) -> int:
    """Write the configurations labelled so far (all their labels) to `partial`; returns how many."""
    energies = data.energies.copy()
    energies[~is_labelled(data)] = np.nan  # stopped between two labels of one configuration: label it again
    write_hdf5(Dataset(data.species, data.positions, energies, data.forces, data.attrs, data.source, data.extras),
               partial)
    return int(np.isfinite(energies).sum())


def check_basis(species) -> None:
    """A one-line error for an element the level of theory's basis set does not cover."""
    from pyscf import gto

    for element in dict.fromkeys(species):
        try:
            with warnings.catch_warnings():  # PySCF suggests another package before it raises
                warnings.simplefilter("ignore")
                gto.basis.load(DFT_SETTINGS["basis"], element)
        except Exception:  # PySCF raises several types for a missing element
            raise SiqmlError(f"the {DFT_SETTINGS['basis']} basis set has no functions for {element}; siqml labels "
                             f"with PBE/{DFT_SETTINGS['basis']}, so {element} cannot be used") from None


def shard_path(out: Path, shard: int, shards: int) -> Path:
    """Where shard `shard` of `shards` keeps its labels until they are merged into `out`."""
    return out.with_name(f"{out.stem}.shard-{shard}-of-{shards}{out.suffix}")


def shard_files(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.stem}.shard-*-of-*{out.suffix}"))


def reference_modes(molecule, started: list[Path],
                    min_wavenumber: float = normal_modes.MIN_WAVENUMBER) -> normal_modes.NormalModes:
    """The normal modes a data set of `molecule` is drawn around: those an interrupted run or a shard already
    used (kept in the files `started`), else computed from its start geometry (optimised first; no mode
    below `min_wavenumber` cm^-1)."""
    from siqml_cli.paths import resolve_input

    for path in started:
        if path.exists():
            previous = read_hdf5(path)
            if "normal_modes" in previous.attrs:
                return normal_modes.NormalModes.from_attrs(previous.species, previous.attrs)
    if not molecule.geometry:
        raise SiqmlError(f"molecule {molecule.name} has no start geometry: give molecule.geometry=<xyz file>")
    species, start = normal_modes.read_geometry(resolve_input(molecule.geometry))
    if species != molecule.species:
        raise SiqmlError(f"{molecule.geometry} has atoms {'-'.join(species)}, but molecule {molecule.name} is "
                         f"{'-'.join(molecule.species)}; give the atoms in the molecule's order")
    check_basis(species)
    print(f"{molecule.name}: optimising {molecule.geometry} and computing its normal modes "
          f"(PBE/{DFT_SETTINGS['basis']})", flush=True)
    modes = normal_modes.prepare(species, start, min_wavenumber)
    print(f"{molecule.name}: minimum at {modes.energy:.5f} eV, harmonic frequencies "
          f"{', '.join(f'{w:.0f}' for w in modes.wavenumbers)} cm^-1", flush=True)
    return modes


def generate(molecule, n: int, seed: int, params: dict, out: str | Path, positions: np.ndarray | None = None,
             workers: int = 1, shard: tuple[int, int] | None = None) -> Dataset:
    """Sample (or take `positions`), label with PySCF, write `out` atomically; resume a partial run.
    `molecule` is a `siqml_cli.molecules.Molecule` or a shipped molecule's name.

    With `shard=(k, n)` only every n-th configuration from the k-th is labelled, into `shard_path(out, k, n)`
    (one job of a sweep: `shard=range(n)` with any Hydra launcher); a run without `shard` merges the shard files
    found beside `out`, labels what they lack, and writes `out`. Every shard draws all configurations from the
    same seed, so the merge checks that they agree."""
    if isinstance(molecule, str):
        from siqml_cli import molecules

        molecule = molecules.get(molecule)
    sampler = molecule.sampler
    if sampler not in GENERATORS:
        raise SiqmlError(f"no sampler '{sampler}'; choose one of {', '.join(GENERATORS)}")
    generator = GENERATORS[sampler]
    out = Path(out)
    target = out if shard is None else shard_path(out, *shard)
    partial = target.with_name(target.name + ".partial.h5")
    species = tuple(molecule.species)
    attrs = {"molecule": molecule.name, "level_of_theory": generator.level_of_theory, "sampler": sampler,
             "generator": {"n": int(n if positions is None else len(positions)), "seed": int(seed), **params},
             "seed": int(seed), "versions": package_versions(), **generator.attrs}
    modes = None
    if positions is None:
        started = [partial, out.with_name(out.name + ".partial.h5"), *shard_files(out)]
        min_wavenumber = float(params.get("min_wavenumber", normal_modes.MIN_WAVENUMBER))
        modes = reference_modes(molecule, started, min_wavenumber) if generator.normal_modes else None
        positions = sample(sampler, n, seed, params, modes)
        if modes is not None:
            from siqml_cli.models.graph import bond_graph

            attrs.update(modes.attrs, temperature=float(params.get("temperature", np.nan)),
                         min_wavenumber=min_wavenumber,
                         bonds=[list(e) for e in bond_graph(species, modes.minimum).edges])
        if generator.describe is not None:
            attrs.update(generator.describe(len(positions), params))
    extras = {} if generator.fragments is None else {
        name: np.full((len(positions), *shape), np.nan) for name, shape in generator.fragments.extras(species).items()}
    data = Dataset(species, positions, np.full(len(positions), np.nan), np.full(positions.shape, np.nan),
                   attrs, str(out), extras)
    merged = shard_files(out) if shard is None else []
    for previous_path in [partial, *merged]:
        if previous_path.exists():
            previous = read_hdf5(previous_path)
            if previous.positions.shape != positions.shape or not np.allclose(previous.positions, positions, atol=0):
                raise SiqmlError(f"{previous_path} was started with other settings; delete it or rerun with the same "
                                 "seed and parameters to resume")
            if set(previous.extras) != set(data.extras):
                kept, made = (", ".join(sorted(e)) or "none" for e in (previous.extras, data.extras))
                raise SiqmlError(f"{previous_path} holds the extra labels {kept}, this sampler makes {made}; delete "
                                 "it or rerun with the same sampler to resume")
            found = is_labelled(previous)
            data.energies[found], data.forces[found] = previous.energies[found], previous.forces[found]
            for name, values in previous.extras.items():
                data.extras[name][found] = values[found]
    if modes is not None and not partial.exists():  # the minimum and its modes at once, before hours of labelling:
        write_hdf5(data, partial)  # a resumed run and the other shards draw around them instead of optimising again
    only = None if shard is None else np.arange(len(positions)) % shard[1] == shard[0]
    labelled = label_all(data, sampler, target, workers, molecule.name, only=only)
    for path in merged:
        path.unlink(missing_ok=True)
    return labelled
