"""`siqml evaluate`: a trained run's predictions for any configurations of its molecule.

With `backend=aer|fake|ibm` the same configurations also run on that backend; its predictions and
MSE table sit next to the fast simulator's, tagged with the backend's settings (`backend.json`).

Configurations outside the run's training domain are flagged (`siqml_out_of_domain` in predictions.extxyz),
counted in evaluation.json and named in one warning line; with `domain=error` they are refused before
anything is computed or written.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from siqml_cli.config import DomainCheck, EvaluationData, parse_command
from siqml_cli.data import Dataset, read_dataset, write_predictions
from siqml_cli.data.io import write_text_atomic
from siqml_cli.domain import describe_outside
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField
from siqml_cli.paths import resolve_input
from siqml_cli.prediction import Prediction
from siqml_cli.report import figures, tables
from siqml_cli.runs import RunFolder
from siqml_cli.simulate.resources import batch_size, check_resources

STATEVECTOR = "statevector"


def evaluation_data(chosen: EvaluationData, run: Path, molecule: str) -> Dataset:
    """The given file (labels under `data.energy_key` / `data.forces_key`) or the run's test split, cut to
    `data.max_configurations` (the first ones) if set."""
    if chosen.path:
        data = read_dataset(resolve_input(chosen.path), molecule, energy_key=chosen.energy_key,
                            forces_key=chosen.forces_key)
    else:
        data = RunFolder(run).test_split(molecule)
    if chosen.max_configurations is not None:
        data = data.subset(np.arange(min(chosen.max_configurations, len(data))))
    return data


def evaluate_command(cfg: DictConfig) -> None:
    command = parse_command("evaluate", cfg)
    run, settings = RunFolder(command.run), command.backend
    forcefield = run.load_forcefield()
    data = evaluation_data(command.data, run.path, forcefield.spec.name)
    outside = check_domain(forcefield, data, command.domain)
    check_resources(forcefield.spec, batch_size(forcefield.chunk, len(data)), "double", False,
                    batch_option="data.max_configurations")
    exact = settings.kind == STATEVECTOR
    out = run.output_folder("evaluations", command.out, "" if exact else f"_{settings.label}", make=False)
    if exact:
        model = forcefield
    else:
        from siqml_cli.backends.forcefield import BackendForceField

        model = BackendForceField(forcefield, settings)
        print(f"{settings.label}: ISA circuit depth {model.isa.depth}, {model.isa.two_qubit_gates} two-qubit gates; "
              f"{len(data)} configurations x {model.plan.rows_per_configuration} circuits ...", flush=True)
    t0 = time.perf_counter()
    prediction = model.predict(data.positions)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    if exact:
        write_evaluation(out, run.path, data, {"data": prediction})
        print(f"predictions for {len(data)} configurations{outside_count(prediction)}: {out / 'predictions.extxyz'}")
    else:
        write_backend_evaluation(out, run.path, forcefield, data, prediction,
                                 {**model.record(), "run_seconds": round(seconds, 3)})
    if outside:
        print(f"siqml evaluate: warning: {outside}", file=sys.stderr)


def check_domain(forcefield: ForceField, data: Dataset, policy: DomainCheck) -> str:
    """The line that names the configurations outside the run's training domain ("" when none, or when the
    run records no domain); with `domain=error` a SiqmlError instead, before anything is computed."""
    if forcefield.domain is None:
        return ""
    flagged, reasons = forcefield.domain.check(data.positions)
    if not flagged.any():
        return ""
    line = describe_outside(flagged, reasons)
    if policy == DomainCheck.error:
        raise SiqmlError(f"{line}; the model's answers there mean nothing: evaluate configurations like its training "
                         "data, or give domain=warn to get them flagged")
    return line


def outside_count(prediction: Prediction) -> str:
    """' (2 outside the training domain)', or '' for a run without a recorded domain."""
    flags = prediction.flags.get("out_of_domain")
    return "" if flags is None else f" ({int(np.sum(flags))} outside the training domain)"


def write_backend_evaluation(out: Path, run: Path, forcefield: ForceField, data: Dataset, prediction: Prediction,
                             record: dict) -> None:
    """Backend predictions next to the fast simulator's for the same configurations, then `evaluation.json`."""
    label = record["backend"]
    exact = forcefield.predict(data.positions)
    sv_energies, sv_forces = exact.energies, exact.forces
    per_config = pd.DataFrame({"energy_" + label: prediction.energies, "energy_std_" + label: prediction.energy_std,
                               "energy_statevector": sv_energies})
    if data.energies is not None:
        per_config["energy_reference"] = data.energies
    write_text_atomic(out / "energies.csv", per_config.to_csv(index_label="configuration"))
    deviation = {"energy_rmse_meV": 1e3 * float(np.sqrt(np.mean((prediction.energies - sv_energies) ** 2))),
                 "energy_mean_std_meV": 1e3 * float(np.mean(prediction.energy_std))}
    if prediction.forces is not None:
        deviation["force_rmse_meV_per_A"] = 1e3 * float(np.sqrt(np.mean((prediction.forces - sv_forces) ** 2)))
    record = {**record, "n": len(data), "vs_statevector": deviation}
    write_text_atomic(out / "backend.json", json.dumps(record, indent=2))
    write_evaluation(out, run, data, {label: prediction, STATEVECTOR: exact})
    print(f"{label} vs statevector: energy RMSE {deviation['energy_rmse_meV']:.3f} meV"
          + (f", force RMSE {deviation['force_rmse_meV_per_A']:.3f} meV/Å" if prediction.forces is not None else ""))
    print(f"predictions for {len(data)} configurations{outside_count(prediction)} on {label}: "
          f"{out / 'predictions.extxyz'}")


def write_evaluation(out: Path, run: Path, data: Dataset, predictions: dict[str, Prediction]) -> None:
    """predictions.extxyz (the first entry's), the MSE table with one column per entry, `evaluation.json` last."""
    first = predictions[next(iter(predictions))]
    write_predictions(out / "predictions.extxyz", data, first)
    flags = first.flags.get("out_of_domain")
    record = {"run": str(run), "data": str(data.source), "n": len(data), "columns": list(predictions),
              "out_of_domain": None if flags is None else int(np.sum(flags)),
              "out_of_domain_configurations": None if flags is None else np.flatnonzero(flags).tolist()}
    if data.has_labels:
        results = {name: {"energy_pred": p.energies, "energy_ref": data.energies,
                          "forces_pred": p.forces if data.forces is not None else None, "forces_ref": data.forces}
                   for name, p in predictions.items()}
        table = tables.mse_table(results)
        tables.write_mse_tables(table, out)
        figures.plot_energy_parity({n: p.energies for n, p in predictions.items()},
                                   {n: data.energies for n in predictions}, out / "energy_parity.png")
        with_forces = {n: p.forces for n, p in predictions.items() if p.forces is not None}
        if data.forces is not None and with_forces:
            figures.plot_force_parity(with_forces, {n: data.forces for n in with_forces}, out / "force_parity.png")
        print((out / "mse.md").read_text())
    write_text_atomic(out / "evaluation.json", json.dumps({**record, "status": "complete"}, indent=2))
