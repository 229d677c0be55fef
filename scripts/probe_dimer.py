"""Quick probes of water dimer siVQLM settings on the validation split that scripts/search.py uses.

The test split of `siqml train` (seed 0) is never seen: seed 0's training split is split 80/20 again
and each setting trains on the first part (mini-batches of 32, Adam, cosine decay to
`lr_final_fraction` of the rate, default 1%, single precision) and is scored on the second (double
precision). Faster to iterate than search.py: no results folder, and the output interval is given directly.
This is how the dimer's defaults (configs/molecule/water_dimer.yaml) were found;
docs/reproducing.md, "Water dimer", lists the runs.

Usage: python scripts/probe_dimer.py '{"frame": "bonds", "atom_readout": true, "alpha_init": 3.0,
       "output_range": [-4.55, -3.45], "steps": 4000}'
Keys (all optional): frame, atom_readout, alpha_init, observable, output_range or output_margin, symmetry, layers,
blocks, steps, lr, lr_final_fraction, batch, seed (the initialisation). Prints one JSON line with train and val
MSE / Var.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from siqml_cli.config import parse_model
from siqml_cli.data import read_dataset
from siqml_cli.forcefield import LabelScaler
from siqml_cli.models import build_model, water_dimer
from siqml_cli.precision import double_precision
from siqml_cli.simulate import make_simulator
from siqml_cli.simulate.statevector import enable_compilation_cache
from siqml_cli.train.loop import make_step
from siqml_cli.train.run import output_interval, split_indices

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/


@double_precision
def main() -> None:
    opts = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    enable_compilation_cache()
    data = read_dataset(REPO_ROOT / "data" / "water_dimer.h5", "water_dimer")
    dev = data.subset(split_indices(len(data), 0.8, seed=0).train)
    split = split_indices(len(dev), 0.8, seed=0)
    train, val = dev.subset(split.train), dev.subset(split.test)
    spec = build_model("water_dimer", opts.get("symmetry", "broken"), opts.get("layers", 4), opts.get("blocks", 1),
                       {k: opts[k] for k in (*water_dimer.OPTIONS, "alpha_init") if k in opts})
    model = parse_model({k: opts[k] for k in ("output_margin", "output_range") if k in opts})
    scaler = LabelScaler.fit(train.energies, output_interval(model, spec), margin=0.0)
    steps, batch = opts.get("steps", 1500), opts.get("batch", 32)
    sim = make_simulator(spec, "single")
    weights = {k: jnp.asarray(v, jnp.float32) for k, v in spec.init_weights(opts.get("seed", 0)).items()}
    schedule = optax.cosine_decay_schedule(opts.get("lr", 0.05), steps, alpha=opts.get("lr_final_fraction", 0.01))
    opt = optax.adam(schedule)
    state = opt.init(weights)
    step = make_step(sim, opt, 0.0)
    x = jnp.asarray(train.positions, jnp.float32)
    y = jnp.asarray(scaler.to_model(train.energies), jnp.float32)
    zeros = jnp.zeros_like(x)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        index = jnp.asarray(rng.choice(len(x), batch, replace=False))
        weights, state, _ = step(weights, state, x[index], y[index], zeros[index])
    seconds = time.perf_counter() - t0
    exact = make_simulator(spec, "double")
    energy = jax.jit(exact.expectation)
    w64 = {k: jnp.asarray(v, jnp.float64) for k, v in weights.items()}

    def mse_over_var(part) -> float:
        predicted = scaler.to_energy(np.asarray(energy(w64, jnp.asarray(part.positions))))
        return float(np.mean((predicted - part.energies) ** 2) / np.var(part.energies))

    print(json.dumps({**opts, "train MSE/Var": mse_over_var(train), "val MSE/Var": mse_over_var(val),
                      "train s": round(seconds, 1)}))


if __name__ == "__main__":
    main()
