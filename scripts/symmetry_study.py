"""Symmetry as an error signal on fake devices: error against the exact model for each mitigation setting
and number of symmetric copies, at equal shots per configuration, and how well the spread tells the error.

    python scripts/symmetry_study.py <run dir> [<run dir> ...] --out <folder> [--n 50] [--device fake_torino]

Each run is a trained `symmetry=full` run. Energies only, on the first `--n` test configurations. Every
setting's result is appended to `<out>/study.csv` as soon as it is done, so an interrupted study resumes
where it stopped; `<out>/study.md` (the table) and `<out>/spread_vs_error.png` are rewritten at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.backends.forcefield import BackendForceField
from siqml_cli.backends.settings import backend_settings
from siqml_cli.backends.symmetrize import SPREAD_ENERGY
from siqml_cli.data.io import write_text_atomic
from siqml_cli.runs import RunFolder

SHOTS = 4000  # per configuration and measured basis, summed over copies and ZNE's noise factors
ZNE_FACTORS = [1, 3, 5]


def settings_list(device: str) -> dict[str, dict]:
    fake = {"kind": "fake", "name": device, "forces": "none"}
    depolarizing = {"kind": "aer", "forces": "none", "noise": {"depolarizing_1q": 0.002, "depolarizing_2q": 0.02}}
    zne = {"zne_mitigation": True}
    out = {
        "none": {**fake, "shots": SHOTS},
        "readout (TREX)": {**fake, "shots": SHOTS, "mitigation": {"resilience_level": 1}},
        "twirling": {**fake, "shots": SHOTS, "mitigation": {"twirling": True}},
        "ZNE": {**fake, "shots": SHOTS // len(ZNE_FACTORS), "mitigation": zne,
                "options": {"resilience": {"zne": {"noise_factors": ZNE_FACTORS}}}},
    }
    for k in (2, 4, 8):
        out[f"symmetrize K={k}"] = {**fake, "shots": SHOTS // k, "symmetrize": k}
    out["TREX + symmetrize K=4"] = {**fake, "shots": SHOTS // 4, "symmetrize": 4, "mitigation": {"resilience_level": 1}}
    out["ZNE + symmetrize K=4"] = {**out["ZNE"], "shots": SHOTS // len(ZNE_FACTORS) // 4, "symmetrize": 4}
    out["device noise without shots, symmetrize K=8"] = {"kind": "aer", "forces": "none", "shots": None,
                                                         "noise": {"device": device}, "symmetrize": 8}
    out["depolarizing only"] = {**depolarizing, "shots": SHOTS}
    out["depolarizing only, symmetrize K=4"] = {**depolarizing, "shots": SHOTS // 4, "symmetrize": 4}
    return out


#: the settings whose spread is plotted against the error
PLOTTED = ["symmetrize K=8", "device noise without shots, symmetrize K=8", "depolarizing only, symmetrize K=4"]


def npz_path(out: Path, molecule: str, setting: str) -> Path:
    return out / f"{molecule}_{setting.replace(' ', '_').replace('=', '').replace(',', '')}.npz"


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(pd.Series(a).corr(pd.Series(b), method="spearman"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--device", default="fake_torino")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table_path = args.out / "study.csv"
    done = pd.read_csv(table_path) if table_path.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    for run in args.runs:
        forcefield = RunFolder(run).load_forcefield()
        molecule = forcefield.spec.name
        data = RunFolder(run).test_split(molecule)
        x = data.positions[: args.n]
        exact = forcefield.predict(x).energies
        for name, settings in settings_list(args.device).items():
            if any(r["molecule"] == molecule and r["setting"] == name for r in rows):
                continue
            on_backend = BackendForceField(forcefield, backend_settings(settings))
            t0 = time.perf_counter()
            prediction = on_backend.predict(x)
            seconds = time.perf_counter() - t0
            error = prediction.energies - exact
            spread = prediction.flags.get(SPREAD_ENERGY)
            row = {"molecule": molecule, "setting": name, "shots_per_basis": settings["shots"],
                   "energy_rmse_meV": 1e3 * float(np.sqrt(np.mean(error**2))),
                   "energy_bias_meV": 1e3 * float(np.mean(error)),
                   "mean_spread_meV": None if spread is None else 1e3 * float(np.mean(spread)),
                   "spread_error_spearman": None if spread is None else spearman(spread, np.abs(error)),
                   "device_shots": on_backend.cost(len(x))["shots"], "seconds": round(seconds, 1),
                   "isa_depth": on_backend.isa.depth, "two_qubit_gates": on_backend.isa.two_qubit_gates}
            rows.append(row)
            write_text_atomic(table_path, pd.DataFrame(rows).to_csv(index=False))
            if spread is not None:
                np.savez(npz_path(args.out, molecule, name), spread=spread, error=error)
            print(f"{molecule} {name}: RMSE {row['energy_rmse_meV']:.1f} meV ({seconds:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    write_text_atomic(args.out / "study.md", table.to_markdown(index=False, floatfmt=".3g"))
    plot(args.out, table)


def plot(out: Path, table: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    molecules = list(dict.fromkeys(table["molecule"]))
    fig, axes = plt.subplots(len(molecules), len(PLOTTED), figsize=(4 * len(PLOTTED), 3.6 * len(molecules)),
                             squeeze=False)
    for row, molecule in zip(axes, molecules):
        for ax, name in zip(row, PLOTTED):
            path = npz_path(out, molecule, name)
            if not path.exists():
                ax.set_visible(False)
                continue
            with np.load(path) as npz:
                spread, error = 1e3 * npz["spread"], 1e3 * np.abs(npz["error"])
            ax.scatter(spread, error, s=12)
            ax.set_xlabel("symmetry spread (meV)")
            ax.set_ylabel("|error| vs exact model (meV)")
            ax.set_title(f"{molecule}: {name}\nSpearman {spearman(spread, error):.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "spread_vs_error.png", dpi=120)


if __name__ == "__main__":
    main()
