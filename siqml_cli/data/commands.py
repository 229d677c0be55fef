"""`siqml data`: generate a reference set, label given configurations, or convert between formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from siqml_cli import molecules
from siqml_cli.config import parse_command
from siqml_cli.data.generate import default_workers, generate, shard_path
from siqml_cli.data.io import read_dataset, write_dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input


def data_command(cfg: DictConfig) -> None:
    settings = parse_command("generate", cfg)
    molecule = molecules.from_settings(settings.molecule)  # `siqml` checked that +molecule is given
    # written relative to the working directory (in a checkout: the repository's data/), never into the
    # installed package; an export-only run reads the shipped set when there is no local one
    out = Path(settings.out or settings.molecule.data or f"data/{molecule.name}.h5")
    for key, target in (("out", out), ("export", settings.export)):
        if target and Path(target).is_dir():
            example = Path(target) / f"{molecule.name}.h5"
            raise SiqmlError(f"{key}={target} is a folder; give a file in it, e.g. {key}={example}")
    params = dict(settings.molecule.generate.params)
    workers = settings.workers or default_workers()
    if settings.input:
        given = read_dataset(resolve_input(settings.input), molecule.species, energy_key=settings.data.energy_key,
                             forces_key=settings.data.forces_key)
        if given.has_labels and not settings.relabel:
            data = given
            write_dataset(data, out)
        else:
            data = generate(molecule, len(given), settings.seed, {"input": str(given.source)}, out,
                            positions=given.positions, workers=workers)
    elif settings.export and not settings.n and resolve_input(out).exists():
        data = read_dataset(resolve_input(out), molecule.species)  # export only: the set already exists
    else:
        if molecule.is_auto:
            check_model_fits(settings, molecule)
        shard = None if settings.shard is None else (settings.shard, settings.shards)
        data = generate(molecule, settings.n or settings.molecule.generate.n, settings.seed, params, out,
                        workers=workers, shard=shard)
        if shard is not None:
            done = int(np.isfinite(data.energies).sum())
            print(f"{shard_path(out, *shard)}: shard {shard[0]} of {shard[1]}, {done} of {len(data)} configurations "
                  "labelled; merge the shards with the same command without shard=")
            return
    if settings.export:
        write_dataset(data, settings.export)
    e = data.energies
    print(f"{out}: {len(data)} configurations of {'-'.join(data.species)}, "
          f"energies {np.min(e):.4f} .. {np.max(e):.4f} eV"
          + (f"; exported to {settings.export}" if settings.export else ""))


def check_model_fits(settings, molecule: molecules.Molecule) -> None:
    """Before hours of labelling: the molecule's automatic model (its configured sizes) must fit the simulator."""
    from siqml_cli.models import build_model
    from siqml_cli.simulate.resources import available_bytes, check_resources

    fewest = 2 * (len(molecule.species) - 1)  # 2 qubits per atom, one atom at most as the origin
    if 16 * 2.0**fewest > available_bytes():  # one complex double state alone would not fit
        raise SiqmlError(f"{molecule.name} has {len(molecule.species)} atoms: its automatic siVQLM needs at least "
                         f"{fewest} qubits, far beyond what the simulator holds in this machine's memory; choose a "
                         "smaller molecule")
    spec = build_model(molecule.name, settings.symmetry.name, settings.model.layers, settings.model.blocks,
                       {**settings.model.options(), **molecule.model_options()})
    print(f"{molecule.name}: {'-'.join(molecule.species)}, its automatic siVQLM has {spec.n_qubits} qubits", flush=True)
    check_resources(spec, 1, "single", False, batch_option=None, precision_option=None)

