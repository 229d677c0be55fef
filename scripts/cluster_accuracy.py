"""How good the water-cluster force field is: the model against PBE's own second-order expansion and against
full PBE, on the labelled cluster sets, next to the truncation error of the expansion itself.

For each cluster set (default: the trimer, tetramer and hexamer sets that exist in data/): energy RMSE per
molecule (absolute, and of relative energies: each set's mean removed from both sides) and force RMSE of
  - the model against the expansion (`mbe2_energies`, `mbe2_forces`): the model's own error;
  - the model against full PBE (`energies`, `forces`);
  - the expansion against full PBE: what second order leaves out, whatever the model;
and the monomer model's force RMSE on its own test split (the floor of the cluster's force error). Writes
cluster_accuracy.csv and the parity figure of relative energies per cluster size into --out.

    python scripts/cluster_accuracy.py --monomer RUN --pair RUN [--data data/water_trimer.h5 ...] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.cluster import load_cluster
from siqml_cli.data import read_dataset
from siqml_cli.data.clusters import water_count
from siqml_cli.report.figures import plot_energy_parity
from siqml_cli.runs import RunFolder

SETS = ("data/water_trimer.h5", "data/water_tetramer.h5", "data/water_hexamer.h5")


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def errors(pred_e, pred_f, ref_e, ref_f, n_molecules: int) -> dict:
    """Energy RMSE per molecule (meV), the same of relative energies (means removed), force RMSE (meV/Å)."""
    return {"energy RMSE (meV/molecule)": 1000 * rmse(pred_e, ref_e) / n_molecules,
            "relative energy RMSE (meV/molecule)": 1000 * rmse(pred_e - np.mean(pred_e), ref_e - np.mean(ref_e))
            / n_molecules,
            "force RMSE (meV/Å)": 1000 * rmse(pred_f, ref_f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monomer", required=True)
    parser.add_argument("--pair", required=True)
    parser.add_argument("--data", nargs="*", default=[s for s in SETS if Path(s).exists()])
    parser.add_argument("--out", default="results/cluster_accuracy")
    args = parser.parse_args()
    cluster = load_cluster(args.monomer, args.pair)
    monomer_test = RunFolder(args.monomer).test_split()
    floor = 1000 * rmse(cluster.monomer.predict(monomer_test.positions).forces, monomer_test.forces)
    rows, parity_pred, parity_ref = [], {}, {}
    for path in args.data:
        full = read_dataset(path)
        mbe2 = read_dataset(path, energy_key="mbe2_energies", forces_key="mbe2_forces")
        n = water_count(full.species, path)
        model = cluster.predict(full.positions)
        for against, e, f, reference in (("model vs expansion", model.energies, model.forces, mbe2),
                                         ("model vs PBE", model.energies, model.forces, full),
                                         ("expansion vs PBE", mbe2.energies, mbe2.forces, full)):
            rows.append({"set": Path(path).stem, "molecules": n, "configurations": len(full), "comparison": against,
                         **errors(e, f, reference.energies, reference.forces, n),
                         "monomer test force RMSE (meV/Å)": floor,
                         "out of domain": int(np.sum(model.flags.get("out_of_domain", 0)))})
        name = f"{n} molecules"
        parity_pred[name] = model.energies - mbe2.energies.min()
        parity_ref[name] = mbe2.energies - mbe2.energies.min()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "cluster_accuracy.csv", index=False)
    plot_energy_parity(parity_pred, parity_ref, out / "cluster_energy_parity.png")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
