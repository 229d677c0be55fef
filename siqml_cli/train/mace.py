"""MACE as the classical anchor (`siqml train ... model.family=mace`), trained by mace-torch's own training
entry point on the same split as a siqml run, and reported through the same results folder.

The run takes the train/test split a quantum run of the same data and seed takes (`split_indices`), holds
out `model.mace.valid_fraction` of the training configurations for MACE's choice of checkpoint, exports both
parts to extxyz under the REF_ keys, and runs `mace.cli.run_train` in a subprocess of this Python (MACE's
own command line, `mace_run_train`, so its defaults and checks apply unchanged). The trained model is then
evaluated through MACE's ASE calculator and written by `write_results` like any other run. MACE's atomic
reference energies are `E0s=average`: fitted by least squares on the training energies.

mace-torch and PyTorch are the optional extra `baselines` (`make baselines`); without them the run stops
before anything is written.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from siqml_cli.config import BackendKind, MaceConfig, TrainCommand, parse
from siqml_cli.data import Dataset
from siqml_cli.data.io import write_reference_extxyz, write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.prediction import Prediction
from siqml_cli.report.tables import RELEVANT
from siqml_cli.runs import CLASSICAL_MACE, MODEL_FILE, RunFolder

#: The extra that installs mace-torch and PyTorch, and the make target that installs it.
EXTRA, MAKE_TARGET = "baselines", "make baselines"
#: Where a MACE run keeps MACE's own files (its inputs, logs, checkpoints and the trained model).
MACE_FOLDER = "mace"
MODEL_NAME = "siqml"  # MACE's --name: its files are <name>.model, <name>_run-<seed>_train.txt, ...
FAMILY = CLASSICAL_MACE


def require_mace() -> None:
    """A one-line SiqmlError naming the make target when mace-torch (or PyTorch) cannot be imported."""
    try:
        found = importlib.util.find_spec("mace.cli.run_train") is not None
    except ImportError:  # `mace` missing, or present without its dependencies
        found = False
    if not found:
        raise SiqmlError(f"model.family=mace needs the optional mace-torch package; install it with `{MAKE_TARGET}` "
                         f"(pip install -e '.[{EXTRA}]')")


def validation_split(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded positions in the training split: (fit, validation), both non-empty."""
    order = np.random.default_rng((seed, 3)).permutation(n_train)
    n_valid = min(max(int(round(fraction * n_train)), 1), n_train - 1)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def mace_arguments(settings: MaceConfig, folder: Path, seed: int, train_file: Path, valid_file: Path) -> list[str]:
    """`mace_run_train`'s command line for this run: the model size and budget of `settings`, float64 on the CPU."""
    hidden = f"{settings.num_channels}x0e" + "".join(
        f"+{settings.num_channels}x{order}{'e' if order % 2 == 0 else 'o'}" for order in range(1, settings.max_L + 1))
    options = {
        "name": MODEL_NAME, "seed": seed, "work_dir": folder, "model_dir": folder,
        "train_file": train_file, "valid_file": valid_file, "energy_key": "REF_energy", "forces_key": "REF_forces",
        "E0s": "average", "model": "MACE", "hidden_irreps": hidden,
        "num_interactions": settings.num_interactions, "correlation": settings.correlation,
        "r_max": settings.r_max, "max_num_epochs": settings.max_num_epochs, "batch_size": settings.batch_size,
        "valid_batch_size": settings.batch_size, "lr": settings.lr, "energy_weight": settings.energy_weight,
        "forces_weight": settings.forces_weight, "loss": "weighted", "error_table": "TotalRMSE",
        "device": "cpu", "default_dtype": "float64", "plot": False,
    }
    return [*(f"--{key}={value}" for key, value in options.items()), "--ema", "--ema_decay=0.99", "--swa"]


def mace_failure(finished: subprocess.CompletedProcess) -> str:
    """How MACE's training process ended: the signal that stopped it, or its exit status and last error line."""
    if finished.returncode < 0:
        return f"stopped by signal {signal.Signals(-finished.returncode).name}"
    last = next((line.strip() for line in reversed(finished.stderr.splitlines()) if line.strip()), "no message")
    return f"exit {finished.returncode}: {last}"


def parameter_count(model) -> int:
    """Every trained weight of a MACE model: its parameters (MACE saves them with gradients switched off; the
    atomic reference energies and the scale and shift are buffers, fitted to the data, not trained)."""
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class MaceForceField:
    """A trained MACE model behind the interface of `siqml_cli.forcefield.ForceField` that results and
    evaluations use: `predict(positions)` in eV and eV/Å."""

    model_path: Path
    molecule: str
    species: tuple[str, ...]
    threads: int = 1     # PyTorch threads while predicting (one call per configuration: more threads only wait)
    domain: None = None  # MACE records no training domain

    @cached_property
    def calculator(self):
        """MACE's own ASE calculator for the model, in double precision on the CPU."""
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=str(self.model_path), device="cpu", default_dtype="float64")

    def predict(self, positions: np.ndarray) -> Prediction:
        import torch
        from ase import Atoms

        calculator, before = self.calculator, torch.get_num_threads()
        energies, forces = [], []
        torch.set_num_threads(self.threads)
        try:
            for xyz in np.asarray(positions, dtype=float):
                atoms = Atoms(symbols=list(self.species), positions=xyz)
                atoms.calc = calculator
                energies.append(atoms.get_potential_energy())
                forces.append(atoms.get_forces())
        finally:
            torch.set_num_threads(before)
        return Prediction(np.asarray(energies), np.asarray(forces))

    def n_trainable(self) -> int:
        import torch

        return parameter_count(torch.load(self.model_path, map_location="cpu", weights_only=False))


def load_mace_forcefield(run: RunFolder, info: dict) -> MaceForceField:
    """The MACE model of a complete run, from what its model.json records."""
    path = run.path / info["model_file"]
    if not path.is_file():
        raise run.damaged(MODEL_FILE, f"its MACE model {path} is missing", "train the run again")
    require_mace()
    threads = (info.get("mace") or {}).get("threads", 1)
    return MaceForceField(path, info["molecule"], tuple(info["species"]), threads=threads)


def mace_metrics(results_dir: Path, steps_per_epoch: int) -> pd.DataFrame:
    """MACE's validation loss and errors per evaluated epoch, from its results log (JSON lines), as the
    metrics table of a run: `step` counts optimizer steps, `loss` is MACE's weighted validation loss."""
    rows = []
    for log in sorted(results_dir.glob(f"{MODEL_NAME}_run-*_train.txt")):
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("mode") == "eval" and entry.get("epoch") is not None:
                rows.append({"step": (int(entry["epoch"]) + 1) * steps_per_epoch, "loss": entry.get("loss"),
                             "valid_rmse_e_per_atom": entry.get("rmse_e_per_atom"),
                             "valid_rmse_f": entry.get("rmse_f")})
    return pd.DataFrame(rows, columns=["step", "loss", "valid_rmse_e_per_atom", "valid_rmse_f"])


def train_mace_run(cfg: DictConfig, run: RunFolder, resume: bool = False, progress: bool = True) -> dict:
    """Train MACE on the run's split with `mace_run_train`, evaluate it, write the results folder; returns
    the summary written to run.json."""
    from siqml_cli.train.run import load_training_data, relevant_subset, split_indices, write_results

    settings = parse(TrainCommand, cfg)
    require_mace()
    if resume:
        raise SiqmlError("a MACE run cannot be resumed; start it again")
    if settings.backend.kind != BackendKind.statevector:
        raise SiqmlError(f"backend={settings.backend.kind} runs circuits; MACE has none: leave out backend= with "
                         "model.family=mace")
    mace = settings.model.mace
    molecule = cfg.molecule.name
    data = load_training_data(cfg, molecule, need_forces=mace.forces_weight > 0)
    split = split_indices(len(data), settings.data.train_fraction, settings.seed)
    train_set, test_set = data.subset(split.train), data.subset(split.test)
    if len(train_set) < 2:
        raise SiqmlError(f"MACE needs at least 2 training configurations (one held out for validation), got "
                         f"{len(train_set)}; raise data.train_fraction or use more data")
    fit, valid = validation_split(len(train_set), mace.valid_fraction, settings.seed)
    identity = {"family": FAMILY, "molecule": molecule, "species": list(data.species), "mace": asdict(mace)}
    print(f"{molecule}: MACE (mace-torch), {mace.num_channels} channels, max_L={mace.max_L}, "
          f"{mace.num_interactions} interactions, r_max={mace.r_max} Å, {mace.max_num_epochs} epochs; "
          f"{len(fit)} training + {len(valid)} validation configurations", flush=True)

    with run.training(OmegaConf.to_yaml(cfg, resolve=True), split, str(data.source), identity, molecule=molecule,
                      family=FAMILY, data=str(data.source), n_train=len(split.train), n_test=len(split.test)):
        folder = run.path / MACE_FOLDER
        train_file, valid_file = folder / "train.extxyz", folder / "valid.extxyz"
        write_reference_extxyz(train_set.subset(fit), train_file)
        write_reference_extxyz(train_set.subset(valid), valid_file)
        command = [sys.executable, "-m", "mace.cli.run_train",
                   *mace_arguments(mace, folder, settings.seed, train_file, valid_file)]
        t0 = time.perf_counter()
        environment = {**os.environ, "OMP_NUM_THREADS": str(mace.threads)}
        finished = subprocess.run(command, cwd=folder, env=environment, stderr=subprocess.PIPE, text=True,
                                  stdout=None if progress else subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        model_path = folder / f"{MODEL_NAME}_stagetwo.model"  # the model after MACE's second stage
        if finished.returncode != 0 or not model_path.is_file():
            raise SiqmlError(f"mace_run_train failed ({mace_failure(finished)}); its log is in {folder / 'logs'}")
        forcefield = MaceForceField(model_path, molecule, tuple(data.species), threads=mace.threads)
        n_trainable = forcefield.n_trainable()
        info = {"family": FAMILY, "molecule": molecule, "species": list(data.species),
                "model_file": str(model_path.relative_to(run.path)), "n_trainable": n_trainable,
                "mace": asdict(mace), "e0s": "average", "seed": settings.seed, "data": str(data.source),
                "fingerprint": run.fingerprint}
        write_text_atomic(run.file(MODEL_FILE), json.dumps(info, indent=2))
        steps_per_epoch = math.ceil(len(fit) / mace.batch_size)
        metrics = mace_metrics(folder / "results", steps_per_epoch)
        splits: dict[str, Dataset] = {"train": train_set, "test": test_set}
        if settings.data.relevant_window is not None:
            splits[RELEVANT] = relevant_subset(test_set, train_set, settings.data.relevant_window)
        summary = write_results(run, forcefield, metrics, splits, molecule)
        steps = steps_per_epoch * mace.max_num_epochs
        summary.update(train_seconds=round(seconds, 3), seconds_per_step=seconds / steps, steps=steps,
                       epochs=mace.max_num_epochs, n_trainable=n_trainable,
                       machine=platform.processor() or platform.machine())
        run.complete(**summary)
    return summary
