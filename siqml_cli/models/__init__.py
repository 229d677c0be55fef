"""The siVQLMs (docs/models.md), one module per molecule, each filling in one `ModelSpec`; and the generic
VQLM baseline (`symmetry=none`, `generic.py`)."""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from siqml_cli.config import ModelConfig, parse_model
from siqml_cli.errors import SiqmlError
from siqml_cli.models import generic, h2o, lih, water_dimer
from siqml_cli.models.generic import GenericSpec
from siqml_cli.models.spec import Coupling, Encoding, ModelSpec

BUILDERS = {"lih": lih.build, "h2o": h2o.build, "water_dimer": water_dimer.build,
            "water_dimer_cut": water_dimer.build}  # the paper's 1D cut is learned by the dimer's model

#: Symmetry settings each molecule supports. `full`: the molecule's whole group; `broken`: full
#: plus the trainable SB(eps) layer; `rotation`: rotations only, no weight sharing between
#: identical atoms (for LiH, which has no identical atoms, the same model as `full`); `none`: the generic
#: VQLM of Kiss et al. 2022, no symmetry built in (`generic.MOLECULES` only).
SYMMETRIES = {"lih": ("full", "broken", "rotation", "none"), "h2o": ("full", "broken", "rotation", "none"),
              "water_dimer": ("full", "broken"), "water_dimer_cut": ("full", "broken")}


def build_model(molecule: str, symmetry: str, layers: int, blocks: int, options=None) -> ModelSpec | GenericSpec:
    """The model of `molecule` with `symmetry`; `options` (the `model` settings or config, or a run's saved
    options; checked by `siqml_cli.config.ModelConfig`) sets the generic VQLM's features and scaling, the water
    dimer siVQLM's `frame`, `atom_readout` and `observable`, and where a siVQLM's encoding scales start
    (`alpha_init`)."""
    symmetry = str(symmetry)
    if molecule not in BUILDERS:
        raise SiqmlError(f"no siVQLM for molecule '{molecule}' yet (its reference data can be made with `siqml data`); "
                         f"models exist for: {', '.join(sorted(BUILDERS))}")
    if symmetry == "none" and molecule not in generic.MOLECULES:
        raise SiqmlError(f"symmetry=none (the generic VQLM baseline) is not available for {molecule}, only for "
                         f"{', '.join(generic.MOLECULES)}; choose one of {', '.join(SYMMETRIES[molecule])}")
    if symmetry not in SYMMETRIES[molecule]:
        raise SiqmlError(f"symmetry '{symmetry}' is not available for {molecule}; choose one of "
                         f"{', '.join(SYMMETRIES[molecule])}")
    raw = {} if options is None or isinstance(options, ModelConfig) else dict(
        OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig) else options)
    model = parse_model(dataclasses.replace(options, layers=layers, blocks=blocks) if isinstance(options, ModelConfig)
                        else {**raw, "layers": layers, "blocks": blocks})
    if symmetry == "none":
        fitted = {k: raw[k] for k in generic.FITTED if raw.get(k) is not None}
        return generic.build(molecule, layers, blocks, model, **fitted)
    dimer_options = {"frame": model.frame.value, "atom_readout": model.atom_readout,
                     "observable": model.observable.value}
    if molecule.startswith("water_dimer"):
        spec = BUILDERS[molecule](layers, blocks, symmetry, **dimer_options)
    elif model.frame != "midpoint" or model.atom_readout or model.observable != "fixed":
        raise SiqmlError(f"model.frame, model.atom_readout and model.observable apply to the water dimer only; "
                         f"{molecule}'s siVQLM has no such options: drop them")
    else:
        spec = BUILDERS[molecule](layers, blocks, symmetry)
    return dataclasses.replace(spec, alpha_init=float(model.alpha_init))


__all__ = ["BUILDERS", "SYMMETRIES", "Coupling", "Encoding", "GenericSpec", "ModelSpec", "build_model"]
