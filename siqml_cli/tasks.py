"""The Hydra task behind each command: compose -> run -> one line on failure."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from siqml_cli.cli import fail, remove_unfinished
from siqml_cli.errors import SiqmlError


logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notes are not news


def _setup() -> Path:
    """Per-command set-up: the compilation cache, and the run folder Hydra made."""
    from siqml_cli.simulate.statevector import enable_compilation_cache

    enable_compilation_cache()
    return Path(HydraConfig.get().runtime.output_dir)


def train(cfg: DictConfig) -> None:
    from siqml_cli.train.loop import CHECKPOINT_FILE
    from siqml_cli.train.resume import resumed_config
    from siqml_cli.train.run import train_run, write_status

    folder = _setup()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        if cfg.resume:
            cfg = resumed_config(folder, list(HydraConfig.get().overrides.task))
        summary = train_run(cfg, folder, resume=bool(cfg.resume), progress=sys.stderr.isatty() or not multirun)
    except SiqmlError as exc:
        if (folder / CHECKPOINT_FILE).exists():
            write_status(folder, "failed", error=str(exc))
        else:
            remove_unfinished(folder, keep=CHECKPOINT_FILE)
        if multirun:  # let the other jobs of the sweep go on
            print(f"siqml train: error in {folder}: {exc}", file=sys.stderr)
            return
        fail("train", str(exc))
    except KeyboardInterrupt:
        if (folder / CHECKPOINT_FILE).exists():
            write_status(folder, "interrupted")
            print(f"\nsiqml train: interrupted; continue with: siqml train resume={folder}", file=sys.stderr)
        else:
            remove_unfinished(folder, keep=CHECKPOINT_FILE)
        sys.exit(130)
    print((folder / "mse.md").read_text())
    print(f"results: {folder}  ({summary['train_seconds']:.1f} s training, "
          f"{summary['seconds_per_step'] * 1e3:.2f} ms/step)")


def command_task(command: str, module: str, function: str):
    """A Hydra task that runs `module.function(cfg)` and turns a SiqmlError into one line."""

    def task(cfg: DictConfig) -> None:
        import importlib

        _setup()
        try:
            getattr(importlib.import_module(module), function)(cfg)
        except SiqmlError as exc:
            fail(command, str(exc))

    return task


TASKS = {
    "train": train,
    "data": command_task("data", "siqml_cli.data.commands", "data_command"),
    "evaluate": command_task("evaluate", "siqml_cli.evaluate", "evaluate_command"),
    "check-symmetry": command_task("check-symmetry", "siqml_cli.symmetry", "check_symmetry_command"),
    "md": command_task("md", "siqml_cli.dynamics", "md_command"),
    "vibrations": command_task("vibrations", "siqml_cli.dynamics", "vibrations_command"),
}
