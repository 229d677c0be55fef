"""The Python API: what a notebook needs from siqml, in three calls.

- `load_run(path)`: a trained run folder, ready to `predict` energies and forces or to give an ASE
  `calculator()`;
- `build_model(molecule, ...)`: any model's description (`ModelSpec`), whose `to_qiskit()` is its circuit
  and observable;
- `train(overrides)`: a training run from the same overrides as `siqml train`, checked the same way,
  written to the same folder, returned as a `TrainedRun`.

Everything here runs in double precision, as every `siqml` command does, and leaves the caller's JAX
setting as it was (`siqml_cli.precision`). Problems the user can fix raise `SiqmlError` with the one-line
message the command line prints; nothing here exits the interpreter.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siqml_cli.ase import SIQMLCalculator
from siqml_cli.errors import SiqmlError
from siqml_cli.runs import RunFolder

if TYPE_CHECKING:
    from ase import Atoms
    from numpy.typing import ArrayLike
    from omegaconf import DictConfig

    from siqml_cli.forcefield import ForceField
    from siqml_cli.models import GenericSpec, ModelSpec, TwinSpec
    from siqml_cli.prediction import Prediction

__all__ = ["TrainedRun", "build_model", "load_run", "train"]


class TrainedRun(RunFolder):
    """A complete training run: its folder (every `RunFolder` reader) and its trained force field.

    The force field is loaded, with every file of the run checked, when first needed; `load_run` asks for
    it at once so that a run that cannot be used is refused where it is named."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._forcefield: ForceField | None = None

    def __repr__(self) -> str:
        return f"TrainedRun({str(self.path)!r})"

    @property
    def forcefield(self) -> ForceField:
        """The run's `ForceField` on the fast simulator (loaded once)."""
        if self._forcefield is None:
            self._forcefield = self.load_forcefield()
        return self._forcefield

    @property
    def spec(self) -> ModelSpec | GenericSpec | TwinSpec:
        """The trained model's description (its circuit: `spec.to_qiskit()`)."""
        return self.forcefield.spec

    @property
    def species(self) -> tuple[str, ...]:
        """The atoms the model takes, in the order positions must list them."""
        return tuple(self.spec.species)

    def predict(self, positions: ArrayLike) -> Prediction:
        """Energies (eV) and forces (eV/Å) for positions in Å: (N, A, 3) for N configurations, or (A, 3) for
        one (a `Prediction` of length 1), the atoms in the order of `species`."""
        x = np.asarray(positions, dtype=float)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (len(self.species), 3):
            raise SiqmlError(f"positions of shape {np.shape(positions)} do not fit the model of {self.path}: give "
                             f"(N, {len(self.species)}, 3) or ({len(self.species)}, 3) in Å, atoms "
                             f"{'-'.join(self.species)} in this order")
        return self.forcefield.predict(x)

    def calculator(self, backend: str | dict | None = None, **kwargs: Any) -> SIQMLCalculator:
        """The run as an ASE calculator (energy, free_energy, forces), on the fast simulator, or on a Qiskit
        backend: a name ("aer", "fake") or a dict of `backend` config keys ({"kind": "aer", "shots": 4000});
        `domain="error"` raises for configurations outside the training domain (default: flagged)."""
        return SIQMLCalculator(run=self.path, backend=backend, **kwargs)


def load_run(path: str | Path) -> TrainedRun:
    """The trained run in `path` (a folder written by `siqml train` or `train`), its files checked now: a
    run that is missing, damaged, or not complete raises SiqmlError."""
    run = TrainedRun(path)
    if not run.path.is_dir():
        raise SiqmlError(f"{run.path} is not a folder; give a run folder written by `siqml train`")
    run.forcefield  # noqa: B018 (loaded now, so a run that cannot be used is refused here)
    return run


def build_model(molecule: str | Atoms, symmetry: str = "full", layers: int | None = None,
                blocks: int | None = None, **options: Any) -> ModelSpec | GenericSpec | TwinSpec:
    """A model's description, as training would build it; `spec.to_qiskit()` gives its parameterised
    circuit and observable (qiskit's `qpy.dump` and `qasm3.dumps` save them).

    `molecule` is the name of one of the shipped molecules (lih, h2o, water_dimer, water_dimer_cut), whose
    `layers` and `blocks` default to its config's (`configs/molecule/<name>.yaml`), or an `ase.Atoms`: the
    siVQLM derived from its species and geometry (`siqml_cli.models.auto`; options `group`, `frame`, `name`;
    4 layers of 1 block unless given). `options` are the `model` config keys (`frame`, `atom_readout`,
    `observable`, `alpha_init`, `features`, ...); a key no model knows is refused rather than ignored."""
    if not isinstance(molecule, str):
        return _build_from_atoms(molecule, symmetry, layers, blocks, options)
    from dataclasses import fields

    from siqml_cli.config import ModelConfig
    from siqml_cli.models import build_model as build
    from siqml_cli.models import generic, twin

    known = {f.name for f in fields(ModelConfig)} - {"layers", "blocks"} | set(generic.FITTED) | set(twin.FITTED)
    unknown = sorted(set(options) - known)
    if unknown:
        raise SiqmlError(f"unknown model option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"choose from: {', '.join(sorted(known))}")
    defaults = _molecule_model_sizes(molecule)
    return build(molecule, symmetry, defaults["layers"] if layers is None else layers,
                 defaults["blocks"] if blocks is None else blocks, options)


def _molecule_model_sizes(molecule: str) -> dict[str, int]:
    """`model.layers` and `model.blocks` as `+molecule=<name>` sets them (the schema's defaults otherwise)."""
    from omegaconf import OmegaConf

    from siqml_cli.config import ModelConfig
    from siqml_cli.paths import config_files

    sizes = {"layers": ModelConfig.layers, "blocks": ModelConfig.blocks}
    config = config_files().joinpath("molecule", f"{molecule}.yaml")
    if config.is_file():
        model = OmegaConf.create(config.read_text()).get("model") or {}
        sizes.update({k: model[k] for k in sizes if k in model})
    return sizes


def _build_from_atoms(atoms: Atoms, symmetry: str, layers: int | None, blocks: int | None,
                      options: dict[str, Any]) -> ModelSpec:
    from siqml_cli.models.auto import build_auto

    unknown = sorted(set(options) - {"group", "frame", "name"})
    if unknown:
        raise SiqmlError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for a model "
                         "built from atoms; choose from: frame, group, name")
    return build_auto(atoms.get_chemical_symbols(), atoms.get_positions(), 4 if layers is None else layers,
                      1 if blocks is None else blocks, symmetry, group=options.get("group", "bonds"),
                      frame=options.get("frame", "auto"), name=options.get("name") or atoms.get_chemical_formula())


def train(overrides: str | Sequence[str] = (), *, output_dir: str | Path | None = None,
          progress: bool = True) -> TrainedRun:
    """Train one run with the overrides of `siqml train` (a list, or one string split as a shell would),
    e.g. `train(["+molecule=lih", "train.steps=50"])`, and return it, complete.

    The overrides go through the command line's checks (`siqml_cli.cli.preflight`) and Hydra's compose API,
    so a bad one raises SiqmlError with the message `siqml train` prints. The run is written where the
    command line would write it (`hydra.run.dir`, relative to the working directory), or in `output_dir`;
    `resume=<run folder>` continues a run in its own folder. A sweep (`-m`, `experiment=`) is the command
    line's: it runs jobs in parallel processes. `progress` shows the training progress bar."""
    overrides = shlex.split(overrides) if isinstance(overrides, str) else [str(o) for o in overrides]
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise SiqmlError(f"train() takes key=value overrides; {flags[0]} is a flag of the command line (sweeps: "
                         "`siqml train -m ...`; help: `siqml train --help`)")
    from siqml_cli.cli import compose_check, has_experiment, preflight

    if has_experiment(overrides):
        raise SiqmlError("an experiment is a sweep of several runs: run it with `siqml train experiment=<name>`, or "
                         "give train() the overrides of one of its runs")
    overrides = preflight("train", overrides)
    if "-m" in overrides:  # resume=<a sweep's folder> continues the sweep
        raise SiqmlError("resume= names a sweep's folder; continue a sweep with `siqml train resume=<folder>`, or "
                         "give train() one of its runs")
    cfg = compose_check("train", overrides, keep_hydra=True)
    resumed = cfg.resume is not None
    folder = _run_dir(cfg, output_dir, resumed)
    return _train_into(cfg, TrainedRun(folder), overrides, resumed, progress)


def _run_dir(cfg: DictConfig, output_dir: str | Path | None, resumed: bool) -> Path:
    """`output_dir`, else `hydra.run.dir` resolved as Hydra resolves it (`${now:...}` is the time of this
    call), relative to the working directory; a resumed run's is its own folder."""
    from omegaconf import OmegaConf

    pattern = OmegaConf.select(cfg, "hydra.run.dir")
    if resumed and output_dir is not None and Path(output_dir).absolute() != Path(pattern).absolute():
        raise SiqmlError(f"a resumed run continues in its own folder {pattern}; drop output_dir")
    if output_dir is not None:
        return Path(output_dir).absolute()
    return Path(str(pattern)).absolute()


def _train_into(cfg: DictConfig, run: TrainedRun, overrides: list[str], resumed: bool,
                progress: bool) -> TrainedRun:
    """The command line's training task (`siqml_cli.tasks.train`) without Hydra's process around it: an error
    or Ctrl-C before the first checkpoint leaves no folder behind, a later one leaves a resumable run."""
    from omegaconf import open_dict

    from siqml_cli.precision import double_precision_scope
    from siqml_cli.simulate.statevector import enable_compilation_cache
    from siqml_cli.train.resume import resumed_config
    from siqml_cli.train.run import train_run

    with open_dict(cfg):
        del cfg["hydra"]  # the run's config.yaml holds the task's settings, as the command line's does
    enable_compilation_cache()  # as the command line: a model trained again skips XLA compilation
    try:
        if resumed:
            cfg = resumed_config(run.path, overrides)
        with double_precision_scope():
            train_run(cfg, run, resume=resumed, progress=progress)
    except (SiqmlError, KeyboardInterrupt):
        run.remove_unfinished()  # a folder without a checkpoint holds nothing to continue
        raise
    return run
