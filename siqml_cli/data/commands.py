"""`siqml data`: generate a reference set, label given configurations, or convert between formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from siqml_cli.data.generate import GENERATORS, generate
from siqml_cli.data.io import read_dataset, write_dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import resolve_input


def data_command(cfg: DictConfig) -> None:
    molecule = cfg.molecule.name  # `siqml` checked that +molecule is given
    if molecule not in GENERATORS:
        raise SiqmlError(f"no reference generator for '{molecule}'")
    # written relative to the working directory (in a checkout: the repository's data/), never into the
    # installed package; an export-only run reads the shipped set when there is no local one
    out = Path(cfg.out) if cfg.out else Path(cfg.molecule.data)
    params = OmegaConf.to_container(cfg.molecule.generate.params, resolve=True)
    if cfg.input:
        given = read_dataset(resolve_input(cfg.input), molecule)
        if given.has_labels and not cfg.relabel:
            data = given
            write_dataset(data, out)
        else:
            data = generate(molecule, len(given), int(cfg.seed), {"input": str(given.source)}, out,
                            positions=given.positions)
    elif cfg.export and not cfg.n and resolve_input(out).exists():
        data = read_dataset(resolve_input(out), molecule)  # export only: the set already exists
    else:
        n = int(cfg.n or cfg.molecule.generate.n)
        if n < 1:
            raise SiqmlError(f"n must be a positive number of configurations, got {n}")
        data = generate(molecule, n, int(cfg.seed), params, out)
    if cfg.export:
        write_dataset(data, cfg.export)
    e = data.energies
    print(f"{out}: {len(data)} configurations of {'-'.join(data.species)}, "
          f"energies {np.min(e):.4f} .. {np.max(e):.4f} eV"
          + (f"; exported to {cfg.export}" if cfg.export else ""))
