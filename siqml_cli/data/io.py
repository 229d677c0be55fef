"""Read and write data sets: HDF5 (h5py) is the native format, extxyz (ASE) the exchange format.

Every write goes to a temporary file in the target folder and is renamed into place, so a
killed process never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from siqml_cli.data.schema import UNITS, Dataset
from siqml_cli.domain import check_cell
from siqml_cli.errors import SiqmlError
from siqml_cli.prediction import Prediction

HDF5_SUFFIXES = (".h5", ".hdf5")
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")


def _process_umask() -> int:
    """The process's umask, read once (reading it means setting it, which must not happen mid-write)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _process_umask()


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    try:  # from here on a Ctrl-C removes the temporary file too
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the user's usual mode
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _attr_value(value):
    """HDF5 attributes hold scalars, strings and arrays; anything else is stored as JSON."""
    if isinstance(value, (str, int, float, np.integer, np.floating, np.ndarray)):
        return value
    return json.dumps(value)


def write_hdf5(data: Dataset, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("positions", data=data.positions)
        if data.energies is not None:
            f.create_dataset("energies", data=data.energies)
        if data.forces is not None:
            f.create_dataset("forces", data=data.forces)
        for name, values in data.extras.items():
            f.create_dataset(name, data=values)
        f.attrs["species"] = json.dumps(list(data.species))
        f.attrs["units"] = json.dumps(UNITS)
        for key, value in data.attrs.items():
            f.attrs[key] = _attr_value(value)


#: The datasets of a siqml HDF5 file every set has; any other dataset is a further label (`Dataset.extras`)
HDF5_MAIN = ("positions", "energies", "forces")


def read_hdf5(path: Path, energy_key: str | None = None, forces_key: str | None = None) -> Dataset:
    """Read a file written by `write_hdf5`; `energy_key` / `forces_key` name another of its datasets to use as
    the energies / forces (e.g. a cluster's `mbe2_energies` and `mbe2_forces`)."""
    try:
        with h5py.File(path, "r") as f:
            if "positions" not in f or "species" not in f.attrs:
                raise SiqmlError(f"{path}: not a siqml data file (needs a 'positions' dataset and a "
                                 "'species' attribute); create one with `siqml data`")
            for key in (energy_key, forces_key):
                if key is not None and key not in f:
                    raise SiqmlError(f"{path}: has no dataset '{key}'; it holds {', '.join(sorted(f))}; set "
                                     "data.energy_key / data.forces_key to one of them")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            species = json.loads(attrs.pop("species"))
            attrs.pop("units", None)
            get = lambda name: f[name][()] if name in f else None  # noqa: E731
            extras = {name: f[name][()] for name in f if name not in HDF5_MAIN}
            return Dataset(species, f["positions"][()], get(energy_key or "energies"), get(forces_key or "forces"),
                           attrs, str(path), extras)
    except OSError as exc:
        raise SiqmlError(f"{path}: cannot be read as HDF5 ({exc}); check the file or regenerate it") from None


#: Where other tools put reference labels in extxyz, tried in this order when no key is configured:
#: `REF_energy`/`REF_forces` (the MLIP convention, e.g. MACE, NequIP), then ASE's `energy`/`forces`
#: (which ASE's reader attaches as a SinglePointCalculator).
ENERGY_KEYS = ("REF_energy", "energy")
FORCES_KEYS = ("REF_forces", "forces")


def _label(atoms, key: str, per_atom: bool):
    """A label stored under `key`: an info (per configuration) or arrays (per atom) entry, or a result of the
    attached calculator, which is where ASE's reader moves the properties it knows (`energy`, `forces`, ...)."""
    if atoms.calc is not None and key in atoms.calc.results:
        return atoms.calc.results[key]
    store = atoms.arrays if per_atom else atoms.info
    return store.get(key)


def _labels(path: Path, frames: list, key: str | None, defaults: tuple[str, ...], per_atom: bool):
    """The label `key` of every frame (None if no frame has it and it was not asked for by name);
    without `key`, the first of `defaults` that any frame holds."""
    kind = "forces" if per_atom else "energy"
    if key is None:
        key = next((k for k in defaults if any(_label(a, k, per_atom) is not None for a in frames)), None)
        if key is None:
            return None
    values = [_label(a, key, per_atom) for a in frames]
    missing = [i for i, v in enumerate(values) if v is None]
    if len(missing) == len(values):
        stored = sorted({*frames[0].info, *frames[0].arrays, *(frames[0].calc.results if frames[0].calc else ())}
                        - {"numbers", "positions"})
        raise SiqmlError(f"{path}: no configuration has the {kind} key '{key}'; the first holds "
                         f"{', '.join(stored) or 'no labels'}; set data.{kind}_key to one of them")
    if missing:
        raise SiqmlError(f"{path}: configuration {missing[0]} has no '{key}' but others have; "
                         "label every configuration or none")
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SiqmlError(f"{path}: the {kind} '{key}' is not numeric in every configuration ({exc})") from None


def read_extxyz(path: Path, energy_key: str | None = None, forces_key: str | None = None) -> Dataset:
    """Read one molecule's configurations; labels under the given keys (or the usual ones, ENERGY_KEYS and
    FORCES_KEYS), taken to be in eV and eV/Å: extxyz carries no units, and these are ASE's and the
    MLIP tools' own. A periodic configuration is refused (`check_cell`): no model here can honour it."""
    import ase.io

    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types for malformed files
        raise SiqmlError(f"{path}: cannot be read as extxyz ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise SiqmlError(f"{path}: holds no configurations")
    species = tuple(frames[0].get_chemical_symbols())
    for i, atoms in enumerate(frames):
        check_cell(atoms, f"{path}: configuration {i}")
        if tuple(atoms.get_chemical_symbols()) != species:
            raise SiqmlError(f"{path}: configuration {i} has atoms {'-'.join(atoms.get_chemical_symbols())}, "
                             f"the first has {'-'.join(species)}; one file holds one molecule")
    positions = np.stack([a.get_positions() for a in frames])
    energies = _labels(path, frames, energy_key, ENERGY_KEYS, per_atom=False)
    forces = _labels(path, frames, forces_key, FORCES_KEYS, per_atom=True)
    return Dataset(species, positions, energies, forces, {}, str(path))


def read_dataset(path: str | os.PathLike, molecule: str | tuple[str, ...] | None = None, *,
                 energy_key: str | None = None, forces_key: str | None = None) -> Dataset:
    """Read an HDF5 or extxyz file and check it (against `molecule` when given).

    `energy_key` and `forces_key` name the labels of an extxyz file written by another tool (see
    `read_extxyz`), or the datasets of an HDF5 file to read as energies and forces instead of `energies` and
    `forces` (see `read_hdf5`).
    """
    path = Path(path)
    if path.is_dir():
        raise SiqmlError(f"{path} is a folder, not a data file; give a .h5/.hdf5 or .extxyz/.xyz file")
    if not path.is_file():
        raise SiqmlError(f"data file {path} does not exist; give an existing file with data.path=... "
                         "or create it with `siqml data +molecule=...`")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        data = read_hdf5(path, energy_key, forces_key)
    elif suffix in EXTXYZ_SUFFIXES:
        data = read_extxyz(path, energy_key, forces_key)
    else:
        raise SiqmlError(f"{path}: unknown data format '{suffix}'; use .h5/.hdf5 or .extxyz/.xyz")
    return data.check(molecule)


def write_extxyz(data: Dataset, path: str | os.PathLike) -> None:
    """Write the configurations, with energies and forces as an ASE single-point result when present, and each
    extra label under its name: per atom (N, A, 3) as an array, otherwise in the configuration's info (so
    `read_dataset(path, energy_key="mbe2_energies", forces_key="mbe2_forces")` reads them back as labels)."""
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for i in range(len(data)):
        atoms = Atoms(symbols=list(data.species), positions=data.positions[i])
        if data.energies is not None:
            results = {"energy": float(data.energies[i])}
            if data.forces is not None:
                results["forces"] = data.forces[i]
            atoms.calc = SinglePointCalculator(atoms, **results)
        for name, values in data.extras.items():
            if values.shape[1:] == data.positions.shape[1:]:
                atoms.new_array(name, values[i])
            else:
                atoms.info[name] = values[i].item() if values[i].ndim == 0 else values[i]
        frames.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")


#: Prefix of every key `write_predictions` adds; the reference labels go under the REF_ keys other tools read.
PREDICTION_PREFIX = "siqml_"


def write_predictions(path: str | os.PathLike, data: Dataset, prediction: Prediction) -> None:
    """Write a model's predictions beside the reference labels, as other MLIP tools lay out an evaluated file.

    Per configuration: `REF_energy` and `REF_forces` when `data` has them; `siqml_energy`, `siqml_forces`,
    `siqml_energy_std` and `siqml_forces_std` (eV, eV/Å) where the prediction has them; each flag as
    `siqml_<name>`. No calculator is attached, so ASE reads every value back from `info` and `arrays` under
    these names, and `read_dataset(path, energy_key="siqml_energy", forces_key="siqml_forces")` the
    predictions as labels.
    """
    import ase.io

    n, shape = len(data), data.positions.shape
    per_config = {"energy": prediction.energies, "energy_std": prediction.energy_std}
    per_atom = {"forces": prediction.forces, "forces_std": prediction.force_std}
    clash = set(prediction.flags) & {*per_config, *per_atom}
    if clash:
        raise ValueError(f"flags {sorted(clash)} would overwrite the predictions; name them differently")
    per_config.update(prediction.flags)
    for name, values, expected in [*((k, v, (n,)) for k, v in per_config.items()),
                                   *((k, v, shape) for k, v in per_atom.items())]:
        if values is not None and np.shape(values) != expected:
            raise ValueError(f"{name} has shape {np.shape(values)}, expected {expected} for {data.source}")
    frames = reference_frames(data)
    for i, atoms in enumerate(frames):
        for name, values in per_config.items():
            if values is not None:
                atoms.info[PREDICTION_PREFIX + name] = np.asarray(values)[i].item()
        for name, values in per_atom.items():
            if values is not None:
                atoms.new_array(PREDICTION_PREFIX + name, np.asarray(values)[i])
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")


def reference_frames(data: Dataset) -> list:
    """The configurations as ASE Atoms with their labels under `REF_energy` (info) and `REF_forces` (arrays),
    no calculator attached: the layout MLIP training tools read (e.g. mace-torch's `--energy_key REF_energy`)."""
    from ase import Atoms

    frames = []
    for i in range(len(data)):
        atoms = Atoms(symbols=list(data.species), positions=data.positions[i])
        if data.energies is not None:
            atoms.info["REF_energy"] = float(data.energies[i])
        if data.forces is not None:
            atoms.new_array("REF_forces", data.forces[i])
        frames.append(atoms)
    return frames


def write_reference_extxyz(data: Dataset, path: str | os.PathLike) -> None:
    """The configurations and their labels under the REF_ keys (`reference_frames`), for another tool to train on."""
    import ase.io

    with atomic_path(path) as tmp:
        ase.io.write(tmp, reference_frames(data), format="extxyz")


def write_dataset(data: Dataset, path: str | os.PathLike) -> None:
    suffix = Path(path).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        write_hdf5(data, path)
    elif suffix in EXTXYZ_SUFFIXES:
        write_extxyz(data, path)
    else:
        raise SiqmlError(f"{path}: unknown data format '{suffix}'; use .h5/.hdf5 or .extxyz/.xyz")
