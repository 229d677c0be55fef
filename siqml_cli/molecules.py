"""A molecule's facts, in one place: its atoms, data, model construction and sampler (docs/molecules.md).

The registry of shipped molecules is `configs/molecule/<name>.yaml`: one entry per molecule, read
here and by Hydra alike, so adding a molecule is one config file plus its data file. The paper's
three molecules name their hand-made circuits (`model: lih | h2o | water_dimer`); every other
molecule says `model: auto` and gets the construction of `siqml_cli.models.auto`, built from its
reference geometry. A molecule siqml has never seen needs no entry: `+molecule=custom` with
`molecule.geometry=<xyz>` (to make data) or `molecule.data=<h5>` (to train) takes its name, atoms and
reference geometry from the file, since `siqml data` stores them with the data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input

#: the hand-made circuits of the paper's molecules; `auto` builds one from the geometry
AUTO = "auto"
#: `+molecule=custom`: a molecule known only from its geometry or data file
CUSTOM = "custom"
#: a water cluster: data only; its force field is the many-body expansion of a monomer and a pair model
CLUSTER = "cluster"


@dataclass(frozen=True)
class Molecule:
    """One molecule: what every command needs to know about it."""

    name: str
    species: tuple[str, ...]
    data: str | None
    geometry: str | None = None     # start geometry of `siqml data` (optimised before sampling)
    model: str = AUTO               # AUTO, a hand-made model (models.BUILDERS) or CLUSTER
    sampler: str = "normal_modes"   # siqml_cli.data.generate.GENERATORS

    @property
    def is_auto(self) -> bool:
        return self.model == AUTO

    def reference_geometry(self, data=None) -> np.ndarray:
        """The geometry an automatic model reads its bond graph from: the data set's optimised minimum when
        it has one (`data`, or the molecule's data file), else the start geometry, else the data set's first
        configuration (the paper's sets, sampled near their minima, are bonded alike throughout)."""
        from siqml_cli.data.io import read_dataset

        if data is None and self.data and resolve_input(self.data).is_file():
            # checked here, before any run folder exists: a file in another atom order is refused up front
            data = read_dataset(resolve_input(self.data), self.name if species_of(self.name) == self.species
                                else self.species)
        if data is not None and "reference_geometry" in data.attrs:
            return np.asarray(data.attrs["reference_geometry"], float)
        if self.geometry:
            from siqml_cli.data.normal_modes import read_geometry

            return read_geometry(resolve_input(self.geometry))[1]
        if data is not None:
            return np.asarray(data.positions[0], float)
        raise SiqmlError(f"molecule {self.name} has neither a data file nor a molecule.geometry file to build its "
                         "model from; give one (e.g. molecule.geometry=molecule.xyz)")

    def model_options(self, data=None) -> dict:
        """What `models.build_model` needs besides the model settings: for an automatic model, the atoms and
        the reference geometry (saved in a run's model.json, so a run rebuilds without the registry)."""
        if self.model == CLUSTER:
            raise SiqmlError(f"{self.name} is a water cluster: no model is trained on it as one molecule; train the "
                             "monomer (+molecule=h2o) and the pair (+molecule=water_pair) with symmetry=full and "
                             "combine them with `siqml md cluster.monomer=<run> cluster.pair=<run>`")
        if not self.is_auto:
            return {}
        reference = self.reference_geometry(data)
        if reference.shape != (len(self.species), 3):
            raise SiqmlError(f"the reference geometry of {self.name} has {len(reference)} atoms, its species "
                             f"{'-'.join(self.species)} {len(self.species)}; fix molecule.species or the geometry")
        return {"construction": AUTO, "species": list(self.species),
                "reference_geometry": np.round(reference, 10).tolist()}


@cache
def shipped() -> dict[str, dict]:
    """The registry: every `configs/molecule/*.yaml` entry's `molecule` node, by name."""
    from omegaconf import OmegaConf

    from siqml_cli.paths import CONFIG_PACKAGE

    entries = {}
    for entry in resources.files(CONFIG_PACKAGE).joinpath("molecule").iterdir():
        if entry.name.endswith(".yaml") and entry.name != f"{CUSTOM}.yaml":
            node = OmegaConf.to_container(OmegaConf.create(entry.read_text())["molecule"], resolve=False)
            entries[node["name"]] = node
    return entries


def get(name: str) -> Molecule:
    """A shipped molecule by name (its registry entry), or a one-line error listing them."""
    entry = shipped().get(name)
    if entry is None:
        raise SiqmlError(f"no molecule '{name}' in the registry; choose one of {', '.join(sorted(shipped()))}, or "
                         "give your own with +molecule=custom molecule.geometry=<xyz file>")
    generate = entry.get("generate") or {}
    return Molecule(name=name, species=tuple(entry["species"]), data=entry.get("data"), geometry=entry.get("geometry"),
                    model=entry.get("model", AUTO), sampler=generate.get("sampler", "normal_modes"))


def species_of(name: str) -> tuple[str, ...] | None:
    """The atom order a shipped molecule's data must have (None for a molecule outside the registry)."""
    entry = shipped().get(name)
    return tuple(entry["species"]) if entry else None


def from_settings(node) -> Molecule:
    """The molecule of a command's checked `molecule` settings (`config.MoleculeConfig`)."""
    generate = getattr(node, "generate", None)
    return Molecule(name=str(node.name), species=tuple(str(s) for s in node.species), data=node.data,
                    geometry=node.geometry, model=str(node.model),
                    sampler=str(generate.sampler) if generate is not None else "normal_modes")


def _no_file() -> SiqmlError:
    return SiqmlError("+molecule=custom needs molecule.geometry=<xyz file> (to make its data) or "
                      "molecule.data=<h5 file written by `siqml data`> (to train on it)")


def custom_name(geometry: str | None, data: str | None) -> str:
    """The name of a `+molecule=custom` molecule: the one its data file records, else its geometry file's stem."""
    if data:
        attrs = _data_attrs(data)
        if attrs.get("molecule"):
            return str(attrs["molecule"])
        return Path(data).stem
    if geometry:
        return Path(geometry).stem
    raise _no_file()


def custom_species(geometry: str | None, data: str | None) -> list[str]:
    """The atoms of a `+molecule=custom` molecule, from its data file or its geometry file."""
    if data:
        import json

        species = _data_attrs(data).get("species")
        if species is None:
            from siqml_cli.data.io import read_dataset

            return list(read_dataset(resolve_input(data)).species)
        return json.loads(species) if isinstance(species, str) else list(species)
    if geometry:
        from siqml_cli.data.normal_modes import read_geometry

        return list(read_geometry(resolve_input(geometry))[0])
    raise _no_file()


def _data_attrs(path: str) -> dict:
    import h5py

    resolved = resolve_input(path)
    if not resolved.is_file():
        raise SiqmlError(f"data file {path} not found; make it with `siqml data +molecule=custom "
                         "molecule.geometry=<xyz>` or give the path of an existing one")
    if resolved.suffix not in (".h5", ".hdf5"):
        return {}
    try:
        with h5py.File(resolved, "r") as f:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise SiqmlError(f"{path} cannot be read as HDF5 ({exc}); check the file or regenerate it") from None
