"""`siqml data`: generate a reference set, label given configurations, or convert between formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from siqml_cli.config import parse_command
from siqml_cli.data.generate import GENERATORS, generate
from siqml_cli.data.io import read_dataset, write_dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input


def data_command(cfg: DictConfig) -> None:
    settings = parse_command("generate", cfg)
    molecule = settings.molecule.name  # `siqml` checked that +molecule is given
    if molecule not in GENERATORS:
        raise SiqmlError(f"no reference generator for '{molecule}'")
    # written relative to the working directory (in a checkout: the repository's data/), never into the
    # installed package; an export-only run reads the shipped set when there is no local one
    out = Path(settings.out) if settings.out else Path(settings.molecule.data)
    for key, target in (("out", out), ("export", settings.export)):
        if target and Path(target).is_dir():
            example = Path(target) / f"{molecule}.h5"
            raise SiqmlError(f"{key}={target} is a folder; give a file in it, e.g. {key}={example}")
    params = settings.molecule.generate.params
    if settings.input:
        given = read_dataset(resolve_input(settings.input), molecule, energy_key=settings.data.energy_key,
                             forces_key=settings.data.forces_key)
        if given.has_labels and not settings.relabel:
            data = given
            write_dataset(data, out)
        else:
            data = generate(molecule, len(given), settings.seed, {"input": str(given.source)}, out,
                            positions=given.positions)
    elif settings.export and not settings.n and resolve_input(out).exists():
        data = read_dataset(resolve_input(out), molecule)  # export only: the set already exists
    else:
        data = generate(molecule, settings.n or settings.molecule.generate.n, settings.seed, params, out)
    if settings.export:
        write_dataset(data, settings.export)
    e = data.energies
    print(f"{out}: {len(data)} configurations of {'-'.join(data.species)}, "
          f"energies {np.min(e):.4f} .. {np.max(e):.4f} eV"
          + (f"; exported to {settings.export}" if settings.export else ""))
