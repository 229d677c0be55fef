"""The siVQLMs of MODELS.md, one module per molecule, each filling in one `ModelSpec`."""

from __future__ import annotations

from siqml_cli.errors import SiqmlError
from siqml_cli.models import h2o, lih, water_dimer
from siqml_cli.models.spec import Coupling, Encoding, ModelSpec

BUILDERS = {"lih": lih.build, "h2o": h2o.build, "water_dimer": water_dimer.build,
            "water_dimer_cut": water_dimer.build}  # the paper's 1D cut is learned by the dimer's model

#: Symmetry settings each molecule supports. `full`: the molecule's whole group; `broken`: full
#: plus the trainable SB(eps) layer; `rotation`: rotations only, no weight sharing between
#: identical atoms (for LiH, which has no identical atoms, the same model as `full`).
SYMMETRIES = {"lih": ("full", "broken", "rotation"), "h2o": ("full", "broken", "rotation"),
              "water_dimer": ("full", "broken"), "water_dimer_cut": ("full", "broken")}


def build_model(molecule: str, symmetry: str, layers: int, blocks: int) -> ModelSpec:
    if molecule not in BUILDERS:
        raise SiqmlError(f"no siVQLM for molecule '{molecule}' yet (its reference data can be made with `siqml data`); "
                         f"models exist for: {', '.join(sorted(BUILDERS))}")
    if symmetry not in SYMMETRIES[molecule]:
        raise SiqmlError(f"symmetry '{symmetry}' is not available for {molecule}; choose one of "
                         f"{', '.join(SYMMETRIES[molecule])}")
    for name, value in (("model.layers", layers), ("model.blocks", blocks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SiqmlError(f"{name} must be a positive integer, got {value!r}")
    return BUILDERS[molecule](layers, blocks, symmetry)


__all__ = ["BUILDERS", "SYMMETRIES", "Coupling", "Encoding", "ModelSpec", "build_model"]
