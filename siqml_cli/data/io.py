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
from siqml_cli.errors import SiqmlError

HDF5_SUFFIXES = (".h5", ".hdf5")
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the user's usual mode
    try:
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
        f.attrs["species"] = json.dumps(list(data.species))
        f.attrs["units"] = json.dumps(UNITS)
        for key, value in data.attrs.items():
            f.attrs[key] = _attr_value(value)


def read_hdf5(path: Path) -> Dataset:
    try:
        with h5py.File(path, "r") as f:
            if "positions" not in f or "species" not in f.attrs:
                raise SiqmlError(f"{path}: not a siqml data file (needs a 'positions' dataset and a "
                                 "'species' attribute); create one with `siqml data`")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            species = json.loads(attrs.pop("species"))
            attrs.pop("units", None)
            get = lambda name: f[name][()] if name in f else None  # noqa: E731
            return Dataset(species, f["positions"][()], get("energies"), get("forces"), attrs, str(path))
    except OSError as exc:
        raise SiqmlError(f"{path}: cannot be read as HDF5 ({exc}); check the file or regenerate it") from None


def read_extxyz(path: Path) -> Dataset:
    import ase.io

    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types for malformed files
        raise SiqmlError(f"{path}: cannot be read as extxyz ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise SiqmlError(f"{path}: holds no configurations")
    species = tuple(frames[0].get_chemical_symbols())
    for i, atoms in enumerate(frames):
        if tuple(atoms.get_chemical_symbols()) != species:
            raise SiqmlError(f"{path}: configuration {i} has atoms {'-'.join(atoms.get_chemical_symbols())}, "
                             f"the first has {'-'.join(species)}; one file holds one molecule")
    positions = np.stack([a.get_positions() for a in frames])
    labelled = all(a.calc is not None and "energy" in a.calc.results for a in frames)
    energies = np.array([a.calc.results["energy"] for a in frames]) if labelled else None
    with_forces = labelled and all("forces" in a.calc.results for a in frames)
    forces = np.stack([a.calc.results["forces"] for a in frames]) if with_forces else None
    return Dataset(species, positions, energies, forces, {}, str(path))


def read_dataset(path: str | os.PathLike, molecule: str | None = None) -> Dataset:
    """Read an HDF5 or extxyz file and check it (against `molecule` when given)."""
    path = Path(path)
    if path.is_dir():
        raise SiqmlError(f"{path} is a folder, not a data file; give a .h5/.hdf5 or .extxyz/.xyz file")
    if not path.is_file():
        raise SiqmlError(f"data file {path} does not exist; give an existing file with data.path=... "
                         "or create it with `siqml data +molecule=...`")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        data = read_hdf5(path)
    elif suffix in EXTXYZ_SUFFIXES:
        data = read_extxyz(path)
    else:
        raise SiqmlError(f"{path}: unknown data format '{suffix}'; use .h5/.hdf5 or .extxyz/.xyz")
    return data.check(molecule)


def write_extxyz(data: Dataset, path: str | os.PathLike) -> None:
    """Write the configurations, with energies and forces as an ASE single-point result when present."""
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
        frames.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")


def write_dataset(data: Dataset, path: str | os.PathLike) -> None:
    suffix = Path(path).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        write_hdf5(data, path)
    elif suffix in EXTXYZ_SUFFIXES:
        write_extxyz(data, path)
    else:
        raise SiqmlError(f"{path}: unknown data format '{suffix}'; use .h5/.hdf5 or .extxyz/.xyz")
