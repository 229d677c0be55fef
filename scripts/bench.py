"""Speed benchmark of the fast simulator through the training loop `siqml train` uses.

Times one Adam step (compiled, mini-batch gather and per-step Python overhead included) of the
H2O siVQLM (D=6, B=1, symmetry breaking), the LiH siVQLM and the 12-qubit water dimer siVQLM
(D=4, B=1, symmetry breaking; the reference construction and the shipped defaults of
configs/molecule/water_dimer.yaml), energy-only and energy+force, at several batch sizes; each row
runs in its own process, so its peak RSS is its own. Writes results/bench/speed.md and .csv. Run:
`make bench`.

With `--scan`: the qubit scan, side by side with TensorCircuit-NG on the same circuits (single
precision, energy and energy + force loss, batch 32 and 256): synthetic ring models of 4..16 qubits,
the shipped models and the automatically built NH3, CH4 and H2O2. Each cell runs in its own process
under a time limit (a peer that runs out of memory or compiles too long gets that noted in its
cell), is appended to results/bench/scan.jsonl at once, and is skipped when the scan is run again,
so an interrupted scan resumes; then scan.md (the table) and scan.png (time per step against qubits,
log scale).
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


# ============================================================================ the qubit scan (`--scan`)

#: the scan's models: synthetic rings of 4..16 qubits, the shipped models, and the automatically built ones
SCAN_RINGS = tuple(range(4, 17, 2))
SCAN_SHIPPED = {"h2o": ("h2o", "broken", 6, 1), "lih": ("lih", "full", 4, 2),
                "water_dimer": ("water_dimer", "full", 4, 1)}
#: reference geometries (Angstrom) of the automatically built models (`siqml_cli.models.auto.build_auto`)
_A = 1.09 / np.sqrt(3.0)
SCAN_AUTO = {
    "nh3": (("N", "H", "H", "H"), [[0.0, 0.0, 0.116], [0.0, 0.939, -0.271], [0.813, -0.470, -0.271],
                                   [-0.813, -0.470, -0.271]]),
    "ch4": (("C", "H", "H", "H", "H"), [[0.0, 0.0, 0.0], [_A, _A, _A], [-_A, -_A, _A], [-_A, _A, -_A], [_A, -_A, -_A]]),
    "h2o2": (("O", "O", "H", "H"), [[0.0, 0.7375, -0.0528], [0.0, -0.7375, -0.0528], [0.819, 0.817, 0.422],
                                    [-0.819, -0.817, 0.422]]),
}
SCAN_IMPLS = ("siqml", "tensorcircuit")
SCAN_LOSSES = {"energy": 0.0, "energy+force": 1.0}


def scan_spec(model: str):
    """The `ModelSpec` of a scan row: `ringN`, a shipped model, or an automatically built one (D=4, B=1, broken)."""
    if model.startswith("ring"):
        from siqml_cli.simulate.synthetic import ring_spec

        return ring_spec(int(model[4:]))
    if model in SCAN_SHIPPED:
        return build_model(*SCAN_SHIPPED[model])
    from siqml_cli.models.auto import build_auto

    species, reference = SCAN_AUTO[model]
    return build_auto(species, reference, 4, 1, "broken", name=model)


def scan_training_set(model: str, spec, batch: int):
    """Configurations near a reference geometry with random labels: a step's time does not depend on the labels."""
    if model in SCAN_AUTO:
        reference = np.asarray(SCAN_AUTO[model][1])
    else:
        molecule = "h2o" if model.startswith("ring") else SCAN_SHIPPED[model][0]
        reference = read_dataset(REPO_ROOT / "data" / f"{molecule}.h5", molecule).positions[0]
    rng = np.random.default_rng(0)
    n = 4 * batch
    positions = reference + rng.normal(scale=0.05, size=(n,) + reference.shape)
    return TrainingSet(positions, rng.normal(size=n), rng.normal(scale=0.1, size=positions.shape))


def time_cell(model: str, impl: str, batch: int, loss: str, budget: float) -> dict:
    """One scan cell in this process: compile + first step, then steps for `budget` seconds (at least 2)."""
    import time

    import jax
    import jax.numpy as jnp

    from siqml_cli.train.loop import LoopSettings, make_optimizer, make_step

    spec = scan_spec(model)
    training = scan_training_set(model, spec, batch)
    if impl == "siqml":
        sim = Simulator(spec, "single")
        plan = sim.plan_summary(batch)
        layout = sim.layout(batch)
        micro = sim.micro_batch(batch, SCAN_LOSSES[loss] > 0)
        path = "small-state" if sim.dense else "general" + (f", micro-batches of {micro}" if micro < batch else "")
        extra = {"path": path, "block": layout.fusion, "plan": plan}
    else:
        from bench_peers import make_jax_impl

        sim = make_jax_impl("tensorcircuit", spec, "single")
        extra = {"path": "TensorCircuit-NG, gate by gate", "block": 2, "plan": ""}
    force_weight = SCAN_LOSSES[loss]
    settings = LoopSettings(steps=10**6, lr=0.01, batch_size=None, force_weight=force_weight, schedule="constant",
                            lr_final_fraction=1.0, checkpoint_every=10**9, seed=0)
    opt = make_optimizer(settings)
    weights = {k: jnp.asarray(v, dtype=sim.real) for k, v in spec.init_weights(0).items()}
    opt_state = opt.init(weights)
    step = make_step(sim, opt, force_weight)
    x, y, f = (jnp.asarray(a[:batch], dtype=sim.real) for a in (training.positions, training.energies,
                                                                 training.forces))
    start = time.perf_counter()
    weights, opt_state, losses = step(weights, opt_state, x, y, f)
    jax.block_until_ready(losses)
    compile_s = time.perf_counter() - start
    start, steps = time.perf_counter(), 0
    while steps < 2 or time.perf_counter() - start < budget:
        weights, opt_state, losses = step(weights, opt_state, x, y, f)
        jax.block_until_ready(losses)
        steps += 1
    seconds = (time.perf_counter() - start) / steps
    if not np.all(np.isfinite(np.asarray(losses)[:2])):
        raise FloatingPointError("non-finite loss")
    return {"seconds": seconds, "compile_s": compile_s, "steps": steps, "n_qubits": spec.n_qubits,
            "peak_rss_mb": _own_peak_rss_mb()} | extra


def _own_peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would carry a parent's peak over fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device() -> str:
    """The device JAX computes on: the accelerator's kind, or the CPU's model and cores."""
    import jax

    first = jax.devices()[0]
    if first.platform == "cpu":
        return f"CPU: {cpu_model()}, {os.cpu_count()} cores"
    return f"{first.platform.upper()}: {first.device_kind}"


def scan_cells(sizes, batches, models=None) -> list[tuple[str, int, str, str]]:
    models = models or [f"ring{n}" for n in sizes] + list(SCAN_SHIPPED) + list(SCAN_AUTO)
    return [(model, batch, loss, impl) for model in models for batch in batches for loss in SCAN_LOSSES
            for impl in SCAN_IMPLS]


def run_scan(args) -> None:
    """Every cell in its own process with a time limit; each result appended to scan.jsonl as it comes, and
    cells already there skipped, so an interrupted scan continues where it stopped."""
    import json
    import sys

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "scan.jsonl"
    done = {(r["model"], r["batch"], r["loss"], r["impl"]) for r in map(json.loads, log.read_text().splitlines())
            } if log.exists() else set()
    sizes = [int(n) for n in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    models = args.scan_models.split(",") if args.scan_models else None
    for model, batch, loss, impl in scan_cells(sizes, batches, models):
        if (model, batch, loss, impl) in done:
            continue
        cell = {"model": model, "batch": batch, "loss": loss, "impl": impl}
        command = [sys.executable, str(Path(__file__).resolve()), "--cell", json.dumps(cell), "--budget",
                   str(args.budget)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=args.cell_timeout, cwd=REPO_ROOT)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode == 0 and lines:
                cell |= json.loads(lines[-1])
            else:
                tail = (proc.stderr.strip().splitlines() or ["killed (memory?)"])[-1]
                cell |= {"failed": f"exit {proc.returncode}: {tail}"[:200]}
        except subprocess.TimeoutExpired:
            cell |= {"failed": f"over {args.cell_timeout:.0f} s (compile or steps)"}
        print(json.dumps(cell), flush=True)
        with log.open("a") as handle:
            handle.write(json.dumps(cell) + "\n")
    write_scan_report(args.out, [json.loads(line) for line in log.read_text().splitlines()])


def write_scan_report(out: Path, cells: list[dict]) -> None:
    """scan.md (one row per model, batch and loss; siqml's path, block size, counted GFLOP, GFLOP/s and % of
    peak, compile time and peak RSS, TensorCircuit-NG's time and the speed-up) and scan.png (time per step
    against qubits, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from bench_peers import flops, peak_gflops

    peak, peak_text = peak_gflops("single")
    by_key = {(c["model"], c["batch"], c["loss"], c["impl"]): c for c in cells}
    lines = [f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {device()}; jax {metadata.version('jax')}"
             f"; single precision; one Adam step (`train.loop.make_step`), first call excluded.", "",
             "| model | qubits | batch | loss | siqml | path | block | GFLOP/step (gate by gate) | GFLOP/s | % of peak "
             "| compile (s) | peak RSS (MB) | TensorCircuit-NG | speed-up |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    specs = {}
    for model, batch, loss, impl in sorted(by_key, key=lambda k: (by_key[k].get("n_qubits", 0), k)):
        if impl != "siqml":
            continue
        mine, peer = by_key[model, batch, loss, "siqml"], by_key.get((model, batch, loss, "tensorcircuit"), {})
        if "failed" in mine:
            lines.append(f"| {model} | | {batch} | {loss} | {mine['failed']} | | | | | | | | | |")
            continue
        spec = specs.setdefault(model, scan_spec(model))
        counted = flops(spec, batch, loss)["gates"]
        rate = counted / mine["seconds"] / 1e9
        if "seconds" in peer:
            theirs, ratio = f"{peer['seconds'] * 1e3:.3g} ms", f"{peer['seconds'] / mine['seconds']:.2f}x"
        else:
            theirs, ratio = peer.get("failed", "not run"), "—"
        lines.append(f"| {model} | {mine['n_qubits']} | {batch} | {loss} | {mine['seconds'] * 1e3:.3g} ms | "
                     f"{mine['path']} | {mine['block']} | {counted / 1e9:.3g} | {rate:.3g} | "
                     f"{100 * rate / peak:.2g}% | "
                     f"{mine['compile_s']:.1f} | {mine['peak_rss_mb']:.0f} | {theirs} | {ratio} |")
    lines += ["", f"Peak (single precision): {peak:.0f} GFLOP/s = {peak_text}. GFLOP counted gate by gate: each gate "
              "(an orbit-sum gate as the dense gate on its qubits) 8 x 2^g flops per amplitude, x3 for the energy "
              "loss's reverse pass, x9 for the force loss."]
    (out / "scan.md").write_text("\n".join(lines) + "\n")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, loss in zip(axes, SCAN_LOSSES):
        for impl, marker in zip(SCAN_IMPLS, ("o", "s")):
            for batch, style in zip(sorted({c["batch"] for c in cells}), ("-", "--", ":")):
                points = sorted((c["n_qubits"], c["seconds"]) for c in cells if c["model"].startswith("ring")
                                and c["impl"] == impl and c["loss"] == loss and c["batch"] == batch and "seconds" in c)
                if points:
                    axis.plot(*zip(*points), style, marker=marker, label=f"{'siqml' if impl == 'siqml' else 'TC-NG'}, "
                              f"batch {batch}")
        axis.set_yscale("log")
        axis.set_xlabel("qubits (synthetic ring models)")
        axis.set_title(loss)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds per Adam step")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "scan.png", dpi=120)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dimer-steps", type=int, default=30, help="steps per water dimer row")
    parser.add_argument("--quick", action="store_true", help="only H2O, batch 256")
    parser.add_argument("--only-dimer", action="store_true", help="only the water dimer rows")
    parser.add_argument("--precisions", default="double,single", help="comma-separated: double, single")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    parser.add_argument("--scan", action="store_true",
                        help="the qubit scan against TensorCircuit-NG instead (resumable: results/bench/scan.jsonl)")
    parser.add_argument("--sizes", default=",".join(map(str, SCAN_RINGS)), help="ring sizes of the scan")
    parser.add_argument("--batches", default="32,256", help="batch sizes of the scan")
    parser.add_argument("--scan-models", default=None,
                        help="comma-separated scan models instead of all (ringN, h2o, lih, water_dimer, nh3, ...)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed steps per scan cell")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds before a scan cell is given up")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # one scan cell, as JSON (internal)
    args = parser.parse_args()
    if args.cell:
        import json

        cell = json.loads(args.cell)
        print(json.dumps(time_cell(cell["model"], cell["impl"], cell["batch"], cell["loss"], args.budget)))
        return
    if args.scan:
        return run_scan(args)
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
