"""Speed benchmark of the fast simulator through the training loop `siqml train` uses.

Times one Adam step (compiled, mini-batch gather and per-step Python overhead included) of the
H2O siVQLM (D=6, B=1, symmetry breaking), the LiH siVQLM and the 12-qubit water dimer siVQLM
(D=4, B=1, symmetry breaking; the reference construction and the shipped defaults of
configs/molecule/water_dimer.yaml), energy-only and energy+force, at several batch sizes; each row
runs in its own process, so its peak RSS is its own. Writes results/bench/speed.md and .csv. Run:
`make bench`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from siqml_cli.data import read_dataset
from siqml_cli.forcefield import LabelScaler
from siqml_cli.models import build_model, water_dimer
from siqml_cli.runs import RunFolder
from siqml_cli.simulate import Simulator
from siqml_cli.train.loop import LoopSettings, TrainingSet, run_loop

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


#: the water dimer model options that `siqml train +molecule=water_dimer` uses
DIMER_DEFAULTS = {k: v for k, v in OmegaConf.to_container(
    OmegaConf.load(REPO_ROOT / "configs" / "molecule" / "water_dimer.yaml").model).items()
    if k in water_dimer.OPTIONS}


def time_steps(molecule: str, symmetry: str, layers: int, blocks: int, batch: int, force_weight: float,
               steps: int, precision: str, options: dict | None = None) -> dict:
    data = read_dataset(REPO_ROOT / "data" / f"{molecule}.h5", molecule)
    spec = build_model(molecule, symmetry, layers, blocks, options)
    scaler = LabelScaler.fit(data.energies, spec.observable_range, 0.1)
    training = TrainingSet(data.positions, scaler.to_model(data.energies), data.forces / scaler.slope)
    settings = LoopSettings(steps=steps, lr=0.01, batch_size=batch, force_weight=force_weight, schedule="cosine",
                            lr_final_fraction=0.05, checkpoint_every=10**9, seed=0)
    sim = Simulator(spec, precision)
    with tempfile.TemporaryDirectory() as tmp:
        trained = run_loop(sim, training, spec.init_weights(0), settings, RunFolder(tmp), progress=False)
        total, per_step = trained.seconds, trained.seconds_per_step
    compile_s = total - per_step * (steps - 1)
    model = f"{molecule} D={layers} B={blocks} {symmetry}" + (" (shipped defaults)" if options else "")
    return {"model": model, "precision": precision, "batch": batch,
            "loss": "energy+force" if force_weight > 0 else "energy", "ms/step": per_step * 1e3,
            "compile+first step (s)": compile_s,
            "peak RSS (MB)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def time_steps_in_child(*case) -> dict:
    """`time_steps` in a fresh process: its peak RSS is that row's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(time_steps, case)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dimer-steps", type=int, default=30, help="steps per water dimer row")
    parser.add_argument("--quick", action="store_true", help="only H2O, batch 256")
    parser.add_argument("--only-dimer", action="store_true", help="only the water dimer rows")
    parser.add_argument("--precisions", default="double,single", help="comma-separated: double, single")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    args = parser.parse_args()
    cases = [] if args.only_dimer else [("h2o", "broken", 6, 1, 256, None)]
    if not args.quick and not args.only_dimer:
        cases += [("h2o", "broken", 6, 1, 32, None), ("h2o", "broken", 6, 1, 1000, None),
                  ("lih", "full", 4, 2, 200, None)]
    if not args.quick:
        cases += [("water_dimer", "broken", 4, 1, batch, options) for options in (None, DIMER_DEFAULTS)
                  for batch in (32, 256)]
    rows = []
    for molecule, symmetry, layers, blocks, batch, options in cases:
        steps = args.dimer_steps if molecule == "water_dimer" else args.steps
        for force_weight in (0.0, 1.0):
            for precision in args.precisions.split(","):
                row = time_steps_in_child(molecule, symmetry, layers, blocks, batch, force_weight, steps, precision,
                                          options)
                print(row, flush=True)
                rows.append(row | {"steps": steps})
    table = pd.DataFrame(rows)
    header = (f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, {os.cpu_count()} cores; "
              f"jax {metadata.version('jax')}; `steps` timed per row (first step excluded), each row in its own "
              f"process (peak RSS: that process's).\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "speed_water_dimer" if args.only_dimer else "speed"
    table.to_csv(args.out / f"{stem}.csv", index=False)
    (args.out / f"{stem}.md").write_text(header + table.to_markdown(index=False, floatfmt=".2f")
                                       if _has_tabulate() else header + table.to_string(index=False))
    print(header + table.to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
