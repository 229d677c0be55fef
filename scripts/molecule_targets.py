"""The any-molecule targets table: test MSE / variance of energies and forces, mean ± std over seeds, for
each molecule's default siVQLM and the generic baseline (`symmetry=none`) on the same splits.

Usage: python scripts/molecule_targets.py results/targets   (folders <molecule>/<symmetry>/<job>/, as written by
`siqml train -m +molecule=<m> seed=0,1,2 hydra.sweep.dir=results/targets/<m>/full` and the same with
`symmetry=none ... /none`). Prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def row(runs: list[Path]) -> dict:
    ratios = {"E": [], "F": [], "E RMSE": [], "F RMSE": [], "s": []}
    for run in runs:
        summary = json.loads((run / "run.json").read_text())
        test = summary["mse"]["test"]
        ratios["E"].append(100 * test["energy MSE (eV^2)"] / summary["test_energy_variance"])
        ratios["F"].append(100 * test["force MSE (eV^2/Å^2)"] / summary["test_force_variance"])
        ratios["E RMSE"].append(test["energy RMSE (meV)"])
        ratios["F RMSE"].append(test["force RMSE (meV/Å)"])
        ratios["s"].append(summary["train_seconds"])
    return {k: (np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 0.0) for k, v in ratios.items()}


def main() -> None:
    root = Path(sys.argv[1])
    print("| molecule | model | seeds | test E MSE / Var | test F MSE / Var | E RMSE (meV) | F RMSE (meV/Å) "
          "| training (s) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for molecule in sorted(p for p in root.iterdir() if p.is_dir()):
        for kind in ("full", "none"):
            runs = sorted(p for p in (molecule / kind).glob("*_*") if (p / "run.json").is_file()
                          and json.loads((p / "run.json").read_text()).get("status") == "complete")
            if not runs:
                continue
            r = row(runs)
            model = "siVQLM (automatic)" if kind == "full" else "generic VQLM (Z-matrix)"
            print(f"| {molecule.name} | {model} | {len(runs)} | {r['E'][0]:.2f} ± {r['E'][1]:.2f}% | "
                  f"{r['F'][0]:.1f} ± {r['F'][1]:.1f}% | {r['E RMSE'][0]:.1f} ± {r['E RMSE'][1]:.1f} | "
                  f"{r['F RMSE'][0]:.0f} ± {r['F RMSE'][1]:.0f} | {r['s'][0]:.0f} |")


if __name__ == "__main__":
    main()
