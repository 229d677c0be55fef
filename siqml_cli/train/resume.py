"""Continuing a run: its saved config, with the new command line's overrides (e.g. more steps)."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from siqml_cli.config import GROUPS
from siqml_cli.errors import SiqmlError
from siqml_cli.train.loop import CHECKPOINT_FILE
from siqml_cli.train.run import CONFIG_FILE


def check_resumable(folder: Path) -> DictConfig:
    if not (folder / CONFIG_FILE).is_file() or not (folder / CHECKPOINT_FILE).is_file():
        raise SiqmlError(f"cannot resume {folder}: it has no {CONFIG_FILE} and {CHECKPOINT_FILE}; "
                         "give a run folder written by `siqml train`")
    return OmegaConf.load(folder / CONFIG_FILE)


def resumed_config(folder: Path, overrides: list[str]) -> DictConfig:
    """The saved config with this invocation's key=value overrides applied (groups cannot change)."""
    cfg = check_resumable(folder)
    keep = [o.lstrip("+") for o in overrides
            if "=" in o and not o.startswith(("resume=", "hydra", "+molecule=", "molecule="))]
    for override in keep:
        key, value = override.split("=", 1)
        if key in GROUPS:
            raise SiqmlError(f"a resumed run keeps its config groups; '{override}' cannot change, start a new run")
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise SiqmlError(f"unknown key '{key}' in override '{override}'")
        OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None)
    cfg.resume = str(folder)
    return cfg
