"""Speed benchmark of the fast simulator through the training loop `siqml train` uses.

Times one Adam step (compiled, mini-batch gather and per-step Python overhead included) of the
H2O siVQLM (D=6, B=1, symmetry breaking) and the LiH siVQLM, energy-only and energy+force, at
several batch sizes; writes results/bench/speed.md and .csv. Run: `make bench`.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.data import read_dataset
from siqml_cli.forcefield import LabelScaler
from siqml_cli.models import build_model
from siqml_cli.paths import REPO_ROOT
from siqml_cli.simulate import Simulator
from siqml_cli.train.loop import LoopSettings, TrainingSet, run_loop


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def time_steps(molecule: str, symmetry: str, layers: int, blocks: int, batch: int, force_weight: float,
               steps: int, precision: str) -> dict:
    data = read_dataset(REPO_ROOT / "data" / f"{molecule}.h5", molecule)
    spec = build_model(molecule, symmetry, layers, blocks)
    scaler = LabelScaler.fit(data.energies, spec.observable_range, 0.1)
    training = TrainingSet(data.positions, scaler.to_model(data.energies), data.forces / scaler.slope)
    settings = LoopSettings(steps=steps, lr=0.01, batch_size=batch, force_weight=force_weight, schedule="cosine",
                            lr_final_fraction=0.05, checkpoint_every=10**9, seed=0)
    sim = Simulator(spec, precision)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _, _, per_step = run_loop(sim, training, spec.init_weights(0), settings, Path(tmp), progress=False)
        total = time.perf_counter() - t0
    compile_s = total - per_step * (steps - 1)
    return {"model": f"{molecule} D={layers} B={blocks} {symmetry}", "precision": precision, "batch": batch,
            "loss": "energy+force" if force_weight > 0 else "energy", "ms/step": per_step * 1e3,
            "compile+first step (s)": compile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="only H2O, batch 256")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    args = parser.parse_args()
    cases = [("h2o", "broken", 6, 1, 256)]
    if not args.quick:
        cases += [("h2o", "broken", 6, 1, 32), ("h2o", "broken", 6, 1, 1000), ("lih", "full", 4, 2, 200)]
    rows = []
    for molecule, symmetry, layers, blocks, batch in cases:
        for force_weight in (0.0, 1.0):
            for precision in ("double", "single"):
                row = time_steps(molecule, symmetry, layers, blocks, batch, force_weight, args.steps, precision)
                print(row, flush=True)
                rows.append(row)
    table = pd.DataFrame(rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    header = (f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, {os.cpu_count()} cores; "
              f"jax {metadata.version('jax')}, {args.steps} steps per row (first step excluded); "
              f"peak RSS {peak_mb:.0f} MB.\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "speed.csv", index=False)
    (args.out / "speed.md").write_text(header + table.to_markdown(index=False, floatfmt=".2f")
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
