"""The siVQLMs (docs/models.md), one module per molecule, each filling in one `ModelSpec`; and the generic
VQLM baseline (`symmetry=none`, `generic.py`)."""

from __future__ import annotations

import dataclasses
import math

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
    """The model of `molecule` with `symmetry`; `options` (the `model` config, or a run's saved options) sets
    the generic VQLM's features and scaling, the water dimer siVQLM's `frame`, `atom_readout` and `observable`,
    and where a siVQLM's encoding scales start (`alpha_init`)."""
    if molecule not in BUILDERS:
        raise SiqmlError(f"no siVQLM for molecule '{molecule}' yet (its reference data can be made with `siqml data`); "
                         f"models exist for: {', '.join(sorted(BUILDERS))}")
    if symmetry == "none" and molecule not in generic.MOLECULES:
        raise SiqmlError(f"symmetry=none (the generic VQLM baseline) is not available for {molecule}, only for "
                         f"{', '.join(generic.MOLECULES)}; choose one of {', '.join(SYMMETRIES[molecule])}")
    if symmetry not in SYMMETRIES[molecule]:
        raise SiqmlError(f"symmetry '{symmetry}' is not available for {molecule}; choose one of "
                         f"{', '.join(SYMMETRIES[molecule])}")
    for name, value in (("model.layers", layers), ("model.blocks", blocks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SiqmlError(f"{name} must be a positive integer, got {value!r}")
    if symmetry == "none":
        return generic.build(molecule, layers, blocks, options)
    options = options or {}
    alpha_init = options.get("alpha_init", 1.0)
    if isinstance(alpha_init, bool) or not isinstance(alpha_init, (int, float)) or not math.isfinite(alpha_init):
        raise SiqmlError(f"model.alpha_init must be a number (where the encoding scales start), got {alpha_init!r}")
    dimer_options = {k: options[k] for k in water_dimer.OPTIONS if options.get(k) is not None}
    if molecule.startswith("water_dimer"):
        spec = BUILDERS[molecule](layers, blocks, symmetry, **dimer_options)
    elif (dimer_options.get("frame", "midpoint") != "midpoint" or dimer_options.get("atom_readout")
          or dimer_options.get("observable", "fixed") != "fixed"):
        raise SiqmlError(f"model.frame, model.atom_readout and model.observable apply to the water dimer only; "
                         f"{molecule}'s siVQLM has no such options: drop them")
    else:
        spec = BUILDERS[molecule](layers, blocks, symmetry)
    return dataclasses.replace(spec, alpha_init=float(alpha_init))


__all__ = ["BUILDERS", "SYMMETRIES", "Coupling", "Encoding", "GenericSpec", "ModelSpec", "build_model"]
