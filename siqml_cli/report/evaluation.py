"""What an evaluation folder holds: predictions.extxyz, the MSE table and parity figures, and, for a Qiskit
backend, its numbers next to the fast simulator's (`energies.csv`, `backend.json`); `evaluation.json` last.

Shared by `siqml evaluate` and `siqml retrieve` (which writes the same folder from finished jobs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.backends.symmetrize import SPREAD_ENERGY, SPREAD_FORCES
from siqml_cli.data import Dataset, write_predictions
from siqml_cli.data.io import write_text_atomic
from siqml_cli.forcefield import ForceField
from siqml_cli.prediction import Prediction
from siqml_cli.report import figures, tables

STATEVECTOR = "statevector"


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
    deviation = {"energy_rmse_meV": 1e3 * float(np.sqrt(np.mean((prediction.energies - sv_energies) ** 2))),
                 "energy_mean_std_meV": 1e3 * float(np.mean(prediction.energy_std))}
    if prediction.forces is not None:
        deviation["force_rmse_meV_per_A"] = 1e3 * float(np.sqrt(np.mean((prediction.forces - sv_forces) ** 2)))
    if SPREAD_ENERGY in prediction.flags:
        per_config["energy_symmetry_spread_" + label] = prediction.flags[SPREAD_ENERGY]
        deviation.update(symmetry_spread_vs_error(prediction, exact))
    write_text_atomic(out / "energies.csv", per_config.to_csv(index_label="configuration"))
    record = {**record, "n": len(data), "vs_statevector": deviation}
    write_text_atomic(out / "backend.json", json.dumps(record, indent=2))
    write_evaluation(out, run, data, {label: prediction, STATEVECTOR: exact})
    print(f"{label} vs statevector: energy RMSE {deviation['energy_rmse_meV']:.3f} meV"
          + (f", force RMSE {deviation['force_rmse_meV_per_A']:.3f} meV/Å" if prediction.forces is not None else ""))
    print(f"predictions for {len(data)} configurations{outside_count(prediction)} on {label}: "
          f"{out / 'predictions.extxyz'}")


def symmetry_spread_vs_error(prediction: Prediction, exact: Prediction) -> dict:
    """How well the spread over symmetric copies tells the error against the exact model, per configuration:
    mean spreads, and their rank (Spearman) and linear (Pearson) correlations with the absolute errors."""
    out = {}
    pairs = [("energy", prediction.flags[SPREAD_ENERGY], np.abs(prediction.energies - exact.energies), "meV")]
    if SPREAD_FORCES in prediction.flags and prediction.forces is not None:
        error = np.sqrt(np.mean((prediction.forces - exact.forces) ** 2, axis=(1, 2)))
        pairs.append(("force", prediction.flags[SPREAD_FORCES], error, "meV_per_A"))
    for name, spread, error, unit in pairs:
        out[f"{name}_symmetry_spread_mean_{unit}"] = 1e3 * float(np.mean(spread))
        both = pd.DataFrame({"spread": spread, "error": error})
        varied = len(both) > 2 and both["spread"].std() > 0 and both["error"].std() > 0
        for method in ("spearman", "pearson"):
            out[f"{name}_spread_error_{method}"] = float(both.corr(method)["spread"]["error"]) if varied else None
    return out


def spread_rows(predictions: dict[str, Prediction]) -> pd.DataFrame:
    """Mean symmetry spreads (meV, meV/Å) per column, n/a where a column has none: rows for the MSE table."""
    rows = {"energy symmetry spread (meV)": SPREAD_ENERGY, "force symmetry spread (meV/Å)": SPREAD_FORCES}
    return pd.DataFrame({name: {row: 1e3 * float(np.mean(p.flags[flag])) if flag in p.flags else np.nan
                                for row, flag in rows.items()} for name, p in predictions.items()},
                        index=list(rows), columns=list(predictions), dtype=float)


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
        if any(SPREAD_ENERGY in p.flags for p in predictions.values()):
            table = pd.concat([table, spread_rows(predictions)])
        tables.write_mse_tables(table, out)
        figures.plot_energy_parity({n: p.energies for n, p in predictions.items()},
                                   {n: data.energies for n in predictions}, out / "energy_parity.png")
        with_forces = {n: p.forces for n, p in predictions.items() if p.forces is not None}
        if data.forces is not None and with_forces:
            figures.plot_force_parity(with_forces, {n: data.forces for n in with_forces}, out / "force_parity.png")
        print((out / "mse.md").read_text())
    write_text_atomic(out / "evaluation.json", json.dumps({**record, "status": "complete"}, indent=2))
