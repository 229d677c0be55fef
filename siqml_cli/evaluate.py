"""`siqml evaluate`: a trained run's predictions for any configurations of its molecule."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from siqml_cli.data import Dataset, read_dataset, write_dataset
from siqml_cli.data.io import write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField
from siqml_cli.paths import resolve_input
from siqml_cli.report import figures, tables
from siqml_cli.train.run import SPLIT_FILE


def run_test_split(run: Path, molecule: str) -> Dataset:
    if not (run / SPLIT_FILE).is_file():
        raise SiqmlError(f"{run} has no {SPLIT_FILE}; give the configurations with data.path=...")
    with np.load(run / SPLIT_FILE) as split:
        path, test = str(split["data_path"]), split["test"]
    return read_dataset(resolve_input(path), molecule).subset(test)


def evaluate_command(cfg: DictConfig) -> None:
    run = Path(cfg.run)
    forcefield = ForceField.load(run)
    molecule = forcefield.spec.name
    data = read_dataset(resolve_input(cfg.data.path), molecule) if cfg.data.path else run_test_split(run, molecule)
    out = Path(cfg.out) if cfg.out else run / "evaluations" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    energies, forces = forcefield.predict(data.positions)
    write_dataset(Dataset(data.species, data.positions, energies, forces, source="predictions"),
                  out / "predictions.extxyz")
    record = {"run": str(run), "data": str(data.source), "n": len(data)}
    if data.has_labels:
        results = {"data": {"energy_pred": energies, "energy_ref": data.energies,
                            "forces_pred": forces, "forces_ref": data.forces}}
        table = tables.mse_table(results)
        tables.write_mse_tables(table, out)
        figures.plot_energy_parity({"data": energies}, {"data": data.energies}, out / "energy_parity.png")
        if data.forces is not None:
            figures.plot_force_parity({"data": forces}, {"data": data.forces}, out / "force_parity.png")
        print((out / "mse.md").read_text())
    write_text_atomic(out / "evaluation.json", json.dumps({**record, "status": "complete"}, indent=2))
    print(f"predictions for {len(data)} configurations: {out / 'predictions.extxyz'}")
