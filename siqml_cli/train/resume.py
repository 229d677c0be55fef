"""Continuing a run: its saved config, with the new command line's overrides (e.g. more steps), verified
against the run's checkpoint before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from siqml_cli.config import GROUPS
from siqml_cli.errors import SiqmlError
from siqml_cli.runs import (
    CHECKPOINT_FILE,
    COMPLETE,
    CONFIG_FILE,
    SPLIT_FILE,
    RunFolder,
    identity_changes,
    model_fingerprint,
    model_identity,
)


def check_resumable(folder: Path) -> DictConfig:
    run = RunFolder(folder)
    if not run.file(CONFIG_FILE).is_file() or not run.has_checkpoint:
        raise SiqmlError(f"cannot resume {folder}: it has no {CONFIG_FILE} and {CHECKPOINT_FILE}; "
                         "give a run folder written by `siqml train`")
    return run.config()


def resumed_config(folder: Path, overrides: list[str]) -> DictConfig:
    """The saved config with this invocation's key=value overrides applied (groups cannot change), once
    `verify_resumable` has found that the run can continue with it."""
    cfg = check_resumable(folder)
    keep = [o.lstrip("+") for o in overrides
            if "=" in o and not o.startswith(("resume=", "hydra", "+molecule=", "molecule="))]
    for override, parsed in zip(keep, _parse(keep)):
        key = parsed.key_or_group
        if key in GROUPS:
            raise SiqmlError(f"a resumed run keeps its config groups; '{override}' cannot change, start a new run")
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise SiqmlError(f"unknown key '{key}' in override '{override}'")
        OmegaConf.update(cfg, key, parsed.value())
    cfg.resume = str(folder)
    verify_resumable(RunFolder(folder), cfg)
    return cfg


def _parse(overrides: list[str]) -> list:
    """Hydra's own reading of `key=value` (so `1e-3` is the number a new run would get), one line if it fails."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # Hydra's parser raises its own exception types for a malformed override
        raise SiqmlError(f"cannot read the overrides {' '.join(overrides)}: {str(exc).splitlines()[0]}") from None
    for override in parsed:
        if override.is_delete() or override.is_sweep_override():
            raise SiqmlError(f"'{override.input_line}' cannot apply to a resumed run: give key=value") from None
    return parsed


def verify_resumable(run: RunFolder, cfg: DictConfig) -> None:
    """Reads only: the settings are valid, the checkpoint is readable and holds a state of this model (its
    fingerprint and every array's shape), the data and split are the run's, and `train.steps` does not
    shorten the run. Any failure is a SiqmlError, and the run stays exactly as it was."""
    from siqml_cli.train.loop import fresh_state, restore
    from siqml_cli.train.run import checked_settings, load_training_data, split_indices

    checked = checked_settings(cfg)
    if checked.backend.kind != "statevector":
        raise SiqmlError("a run trained on a Qiskit backend cannot be resumed; start it again")
    checkpoint = run.read_checkpoint()
    identity = model_identity(checked.spec, checked.output_range)
    record = run.record()
    recorded = checkpoint.fingerprint or record.get("fingerprint")
    if recorded and recorded != model_fingerprint(identity):
        changes = identity_changes(record["model"], identity) if isinstance(record.get("model"), dict) else ""
        raise SiqmlError(f"{run.file(CONFIG_FILE)} does not describe the model {run.file(CHECKPOINT_FILE)} was trained "
                         f"as ({changes or 'model fingerprint ' + recorded + ' vs ' + model_fingerprint(identity)}); "
                         f"restore {CONFIG_FILE}, or start a new run for another model")
    restore(checkpoint, *fresh_state(checked.spec.init_weights(checked.loop.seed), checked.loop))
    steps = checked.loop.steps
    if steps < checkpoint.step:
        raise SiqmlError(f"train.steps={steps} is fewer than the {checkpoint.step} steps {run.path} has trained; a run "
                         f"is never shortened: give train.steps >= {checkpoint.step}, or start a new run")
    if steps == checkpoint.step and record.get("status") == COMPLETE:
        raise SiqmlError(f"{run.path} is complete at {steps} steps; to continue it give train.steps > {steps}")
    data = load_training_data(cfg, cfg.molecule.name, checked.loop.force_weight > 0)
    split, data_path = run.split()
    again = split_indices(len(data), checked.train_fraction, checked.loop.seed)
    same_data = Path(str(data.source)).resolve() == Path(data_path).resolve()
    if not (same_data and np.array_equal(again.train, split.train) and np.array_equal(again.test, split.test)):
        raise SiqmlError(f"these settings give another train/test split than the run's ({run.file(SPLIT_FILE)}): "
                         "a resumed run keeps its data.path, data.train_fraction and seed; start a new run to change "
                         "them")
