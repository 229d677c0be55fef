"""The model families' table: test MSE / variance, RMSE and MAE of energies and forces, mean ± std over seeds,
for each molecule's default siVQLM, the generic baseline (`symmetry=none`) and the classical twin
(`model.family=twin`, as many trained weights as the siVQLM) on the same splits.

Usage: python scripts/molecule_targets.py results/targets   (folders <molecule>/<kind>/<job>/, as written by
`siqml train -m +molecule=<m> seed=0,1,2 hydra.sweep.dir=results/targets/<m>/full`, the same with
`symmetry=none ... /none` and with `model.family=twin ... /twin`). Prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

#: the folders under each molecule, and the model family each holds
KINDS = {"full": "siVQLM (the molecule's defaults)", "none": "generic VQLM",
         "twin": "classical twin (same weights count)"}


def force_mae(predictions: Path) -> float:
    """meV/Å over every component, from a run's test predictions (for runs from before run.json recorded it)."""
    from siqml_cli.data import read_dataset

    ref = read_dataset(predictions, energy_key="REF_energy", forces_key="REF_forces")
    pred = read_dataset(predictions, energy_key="siqml_energy", forces_key="siqml_forces")
    return 1000 * float(np.mean(np.abs(pred.forces - ref.forces)))


def row(runs: list[Path]) -> dict:
    ratios = {"E": [], "F": [], "E RMSE": [], "F RMSE": [], "E MAE": [], "F MAE": [], "s": []}
    for run in runs:
        summary = json.loads((run / "run.json").read_text())
        test = summary["mse"]["test"]
        ratios["E"].append(100 * test["energy MSE (eV^2)"] / summary["test_energy_variance"])
        ratios["F"].append(100 * test["force MSE (eV^2/Å^2)"] / summary["test_force_variance"])
        ratios["E RMSE"].append(test["energy RMSE (meV)"])
        ratios["F RMSE"].append(test["force RMSE (meV/Å)"])
        ratios["E MAE"].append(test["energy MAE (meV)"])
        ratios["F MAE"].append(test.get("force MAE (meV/Å)") or force_mae(run / "test_predictions.extxyz"))
        ratios["s"].append(summary["train_seconds"])
    return {k: (np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 0.0) for k, v in ratios.items()}


def main() -> None:
    root = Path(sys.argv[1])
    print("| molecule | model | seeds | test E MSE / Var | test F MSE / Var | E RMSE (meV) | F RMSE (meV/Å) "
          "| E MAE (meV) | F MAE (meV/Å) | training (s) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for molecule in sorted(p for p in root.iterdir() if p.is_dir()):
        for kind, model in KINDS.items():
            runs = sorted(p for p in (molecule / kind).glob("*_*") if (p / "run.json").is_file()
                          and json.loads((p / "run.json").read_text()).get("status") == "complete")
            if not runs:
                continue
            r = row(runs)
            print(f"| {molecule.name} | {model} | {len(runs)} | {r['E'][0]:.2f} ± {r['E'][1]:.2f}% | "
                  f"{r['F'][0]:.1f} ± {r['F'][1]:.1f}% | {r['E RMSE'][0]:.1f} ± {r['E RMSE'][1]:.1f} | "
                  f"{r['F RMSE'][0]:.0f} ± {r['F RMSE'][1]:.0f} | {r['E MAE'][0]:.1f} ± {r['E MAE'][1]:.1f} | "
                  f"{r['F MAE'][0]:.0f} ± {r['F MAE'][1]:.0f} | {r['s'][0]:.0f} |")


if __name__ == "__main__":
    main()
