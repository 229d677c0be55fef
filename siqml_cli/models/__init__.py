"""The siVQLMs (docs/models.md): the paper's hand-made circuits (one module each), the automatic
construction for any other molecule (`auto.py`), each filling in one `ModelSpec`; the generic VQLM
baseline (`symmetry=none`, `generic.py`); and each siVQLM's classical twin (`model.family=twin`, `twin.py`)."""

from __future__ import annotations

import dataclasses

import numpy as np
from omegaconf import DictConfig, OmegaConf

from siqml_cli.config import ModelConfig, parse_model
from siqml_cli.errors import SiqmlError
from siqml_cli.models import auto, generic, h2o, lih, twin, water_dimer
from siqml_cli.models.generic import GenericSpec
from siqml_cli.models.spec import Coupling, Encoding, ModelSpec
from siqml_cli.models.twin import TwinSpec

#: the paper's hand-made circuits, by model name (a molecule's `molecule.model`)
BUILDERS = {"lih": lih.build, "h2o": h2o.build, "water_dimer": water_dimer.build}
#: molecules whose entry names a hand-made model other than their own name
#: (the paper's 1D cut, and the two-body energies of water pairs, are learned by the dimer's model)
HAND_MADE_MODEL = {"water_dimer_cut": "water_dimer", "water_pair": "water_dimer"}

#: Symmetry settings each molecule supports. `full`: the molecule's whole group; `broken`: full
#: plus the trainable SB(eps) layer; `rotation`: rotations only, no weight sharing between
#: identical atoms (for LiH, which has no identical atoms, the same model as `full`); `none`: the generic
#: VQLM of Kiss et al. 2022, no symmetry built in (`generic.MOLECULES` only).
SYMMETRIES = {"lih": ("full", "broken", "rotation", "none"), "h2o": ("full", "broken", "rotation", "none"),
              "water_dimer": ("full", "broken")}
#: an automatic model: `rotation` keeps no exchange of identical atoms (the trivial permutation group);
#: `none` is the generic VQLM on the internal coordinates of a Z-matrix of the bond graph
AUTO_SYMMETRIES = ("full", "broken", "rotation", "none")
#: build options an automatic model saves in model.json (with `construction: auto`)
AUTO_OPTIONS = ("species", "reference_geometry")


def hand_made_model(molecule: str, options: dict) -> str | None:
    """The hand-made model a molecule uses, or None for the automatic construction."""
    if options.get("construction") == "auto":
        return None
    model = HAND_MADE_MODEL.get(molecule, molecule)
    return model if model in BUILDERS else None


def build_model(molecule: str, symmetry: str, layers: int, blocks: int,
                options=None) -> ModelSpec | GenericSpec | TwinSpec:
    """The model of `molecule` with `symmetry`; `options` (the `model` settings or config, or a run's saved
    options; checked by `siqml_cli.config.ModelConfig`) sets the generic VQLM's features and scaling, the water
    dimer siVQLM's `frame`, `atom_readout` and `observable`, an automatic model's `frame` and `group` (and
    carries its `construction`, `species` and `reference_geometry`, from `molecules.Molecule.model_options`),
    where a siVQLM's encoding scales start (`alpha_init`), and with `family=twin` gives the classical twin of
    the siVQLM the rest would build (`twin.build`; a trained twin's options carry its fitted standardisation)."""
    raw = {} if options is None else dict(
        OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig)
        else options.options() if isinstance(options, ModelConfig) else options)
    family = parse_model({"family": raw.pop("family", None)}).family
    fitted = {k: raw.pop(k) for k in twin.FITTED if k in raw}
    spec = _build_quantum(molecule, str(symmetry), layers, blocks, raw)
    return twin.build(spec, **fitted) if family == twin.FAMILY else spec


def _build_quantum(molecule: str, symmetry: str, layers: int, blocks: int, raw: dict) -> ModelSpec | GenericSpec:
    """The siVQLM or generic VQLM of `build_model`, from the plain options `raw`."""
    auto_facts = {k: raw.pop(k) for k in ("construction", *AUTO_OPTIONS) if k in raw}
    hand_made = hand_made_model(molecule, auto_facts)
    if hand_made is None:
        return _build_automatic(molecule, symmetry, layers, blocks, raw, auto_facts)
    if symmetry == "none" and hand_made not in generic.MOLECULES:
        raise SiqmlError(f"symmetry=none (the generic VQLM baseline) is not available for {molecule}'s hand-made "
                         f"model; choose one of {', '.join(SYMMETRIES[hand_made])}, or molecule.model=auto")
    if symmetry not in SYMMETRIES[hand_made]:
        raise SiqmlError(f"symmetry '{symmetry}' is not available for {molecule}; choose one of "
                         f"{', '.join(SYMMETRIES[hand_made])}")
    model = parse_model({**raw, "layers": layers, "blocks": blocks})
    if symmetry == "none":
        fitted = {k: raw[k] for k in generic.FITTED if raw.get(k) is not None}
        return generic.build(molecule, layers, blocks, model, **fitted)
    if model.group != "bonds":
        raise SiqmlError(f"model.group applies to automatically built models; {molecule}'s hand-made model has its "
                         "own group: drop it, or use molecule.model=auto")
    if hand_made == "water_dimer":
        frame = model.frame.value if model.frame else "midpoint"
        if frame not in water_dimer.FRAMES:
            raise SiqmlError(f"model.frame={frame} is an automatic model's; the water dimer's hand-made model takes "
                             f"{' or '.join(water_dimer.FRAMES)}")
        spec = BUILDERS[hand_made](layers, blocks, symmetry, frame=frame, atom_readout=model.atom_readout,
                                   observable=model.observable.value)
    elif (model.frame not in (None, "midpoint")) or model.atom_readout or model.observable != "fixed":
        raise SiqmlError(f"model.frame, model.atom_readout and model.observable apply to the water dimer only "
                         f"(model.frame also to automatic models); {molecule}'s siVQLM has no such options: drop them")
    else:
        spec = BUILDERS[hand_made](layers, blocks, symmetry)
    return dataclasses.replace(spec, alpha_init=float(model.alpha_init))


def _build_automatic(molecule: str, symmetry: str, layers: int, blocks: int, raw: dict, facts: dict):
    """The automatic siVQLM (or, with `symmetry=none`, the generic VQLM on Z-matrix coordinates) of a molecule
    given by its atoms and reference geometry."""
    missing = [k for k in AUTO_OPTIONS if facts.get(k) is None]
    if missing:
        raise SiqmlError(f"molecule '{molecule}' has no hand-made model, and its automatic one needs its "
                         f"{' and '.join(missing)}: use a molecule config (+molecule=...) or +molecule=custom "
                         "with molecule.data=<file written by `siqml data`>")
    if symmetry not in AUTO_SYMMETRIES:
        raise SiqmlError(f"symmetry '{symmetry}' is not available for an automatically built model; choose one "
                         f"of {', '.join(AUTO_SYMMETRIES)}")
    species = tuple(facts["species"])
    reference = np.asarray(facts["reference_geometry"], float)
    saved = {"construction": "auto", "species": list(species), "reference_geometry": reference.tolist()}
    if symmetry == "none":
        fitted = {k: raw[k] for k in generic.FITTED if raw.get(k) is not None}
        model = parse_model({**raw, "layers": layers, "blocks": blocks})
        return generic.build_auto(molecule, species, reference, layers, blocks, model, **fitted)
    model = parse_model({**raw, "layers": layers, "blocks": blocks})
    if model.frame == "midpoint" or model.atom_readout:
        raise SiqmlError("model.frame=midpoint and model.atom_readout apply to the water dimer's hand-made model; "
                         f"an automatic model takes model.frame={'|'.join(auto.FRAMES)}")
    frame = model.frame.value if model.frame else "auto"
    group = "identity" if symmetry == "rotation" else model.group.value
    spec = auto.build_auto(species, reference, layers, blocks, "broken" if symmetry == "broken" else "full",
                           group=group, frame=frame, name=molecule)
    return dataclasses.replace(spec, symmetry=symmetry, alpha_init=float(model.alpha_init),
                               build_options=(*saved.items(), ("group", model.group.value), ("frame", frame)))


__all__ = ["AUTO_SYMMETRIES", "BUILDERS", "SYMMETRIES", "Coupling", "Encoding", "GenericSpec", "ModelSpec",
           "TwinSpec", "build_model"]
