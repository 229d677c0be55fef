"""Hyper-parameter search on a validation split carved from the TRAINING split only.

The test split of `siqml train` (seed 0) is never seen: the training configurations are written
to a development file, and each candidate trains on 80% of it and is scored on the other 20%.
Usage: python scripts/search.py h2o "model.layers=4,6" "train.steps=3000,10000" "loss.force_weight=0,1"
Appends to results/search/<molecule>.csv and rewrites results/search/<molecule>.md from it.
With --frequencies, each candidate also gets its harmonic frequencies at its own minimum (`siqml
vibrations`' method), next to the reference method's (PySCF, computed once and kept in
results/search/<molecule>_reference_frequencies.json): a criterion that is not the test split.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_module

from siqml_cli import molecules
from siqml_cli.data import read_dataset, write_dataset
from siqml_cli.paths import CONFIG_PACKAGE
from siqml_cli.precision import double_precision
from siqml_cli.simulate.statevector import enable_compilation_cache
from siqml_cli.train.run import split_indices, train_run

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and results/


def development_file(molecule: str, folder: Path) -> Path:
    data = read_dataset(REPO_ROOT / "data" / f"{molecule}.h5", molecule)
    train = split_indices(len(data), 0.8, seed=0).train
    path = folder / f"{molecule}_dev.h5"
    write_dataset(data.subset(train), path)
    return path


def frequencies(run: Path | None, molecule: str, start: np.ndarray, out: Path) -> np.ndarray:
    """Harmonic frequencies (cm^-1) of a trained run, or of the reference method when `run` is None."""
    from ase import Atoms

    from siqml_cli.ase import SIQMLCalculator
    from siqml_cli.dynamics import ReferenceCalculator, harmonic_frequencies

    atoms = Atoms(symbols=list(read_dataset(REPO_ROOT / "data" / f"{molecule}.h5", molecule).species), positions=start)
    atoms.calc = ReferenceCalculator(molecules.get(molecule).sampler) if run is None else SIQMLCalculator(run)
    out.mkdir(parents=True, exist_ok=True)
    return harmonic_frequencies(atoms, out, "reference" if run is None else "model", fmax=1e-4, delta=0.005)[0]


def reference_frequencies(molecule: str, start: np.ndarray, folder: Path) -> np.ndarray:
    path = REPO_ROOT / "results" / "search" / f"{molecule}_reference_frequencies.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(frequencies(None, molecule, start, folder / "reference").tolist()))
    return np.array(json.loads(path.read_text()))


@double_precision
def main() -> None:
    with_frequencies = "--frequencies" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--frequencies"]
    molecule, grid = args[0], args[1:]
    keys = [g.split("=", 1)[0] for g in grid]
    values = [g.split("=", 1)[1].split(",") for g in grid]
    enable_compilation_cache()
    rows = []
    out = REPO_ROOT / "results" / "search"
    with tempfile.TemporaryDirectory() as tmp:
        dev = development_file(molecule, Path(tmp))
        start = read_dataset(dev, molecule).positions[0]
        reference = reference_frequencies(molecule, start, Path(tmp)) if with_frequencies else None
        for combo in itertools.product(*values):
            overrides = [f"+molecule={molecule}", f"data.path={dev}", *(f"{k}={v}" for k, v in zip(keys, combo))]
            with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
                cfg = compose(config_name="train", overrides=overrides)
            summary = train_run(cfg, Path(tmp) / "_".join(combo), progress=False)
            mse = summary["mse"]["test"]
            row = {**dict(zip(keys, combo)),
                   "val energy MSE / Var": mse["energy MSE (eV^2)"] / summary["test_energy_variance"],
                   "val force MSE / Var": mse["force MSE (eV^2/Å^2)"] / summary["test_force_variance"],
                   "val energy RMSE (meV)": mse["energy RMSE (meV)"],
                   "val force RMSE (meV/Å)": mse["force RMSE (meV/Å)"],
                   "train s": summary["train_seconds"]}
            if reference is not None:
                model = frequencies(Path(tmp) / "_".join(combo), molecule, start, Path(tmp) / "vib" / "_".join(combo))
                row.update({f"freq {k + 1} (cm^-1)": f for k, f in enumerate(model)},
                           **{"max |freq - ref| (cm^-1)": float(np.max(np.abs(model - reference)))})
            print(row, flush=True)
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{molecule}.csv"
    table = pd.concat([pd.read_csv(csv, dtype=str), pd.DataFrame(rows)]) if csv.exists() else pd.DataFrame(rows)
    table.to_csv(csv, index=False)
    (out / f"{molecule}.md").write_text(table.to_string(index=False, float_format=lambda x: f"{x:.3g}") + "\n")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
