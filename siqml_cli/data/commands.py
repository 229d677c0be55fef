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
    out = Path(cfg.out) if cfg.out else resolve_input(cfg.molecule.data)
    for key, target in (("out", out), ("export", cfg.export)):
        if target and Path(target).is_dir():
            example = Path(target) / f"{molecule}.h5"
            raise SiqmlError(f"{key}={target} is a folder; give a file in it, e.g. {key}={example}")
    params = OmegaConf.to_container(cfg.molecule.generate.params, resolve=True)
    if cfg.input:
        given = read_dataset(resolve_input(cfg.input), molecule)
        if given.has_labels and not cfg.relabel:
            data = given
            write_dataset(data, out)
        else:
            data = generate(molecule, len(given), int(cfg.seed), {"input": str(given.source)}, out,
                            positions=given.positions)
    elif out.exists() and cfg.export and not cfg.n:
        data = read_dataset(out, molecule)  # export only: the set already exists
    else:
        n = int(cfg.molecule.generate.n if cfg.n is None else cfg.n)
        if n < 1:
            raise SiqmlError(f"n must be a positive number of configurations, got {n}")
        data = generate(molecule, n, int(cfg.seed), params, out)
    if cfg.export:
        write_dataset(data, cfg.export)
    e = data.energies
    print(f"{out}: {len(data)} configurations of {'-'.join(data.species)}, "
          f"energies {np.min(e):.4f} .. {np.max(e):.4f} eV"
          + (f"; exported to {cfg.export}" if cfg.export else ""))
