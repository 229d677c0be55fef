"""The compile-size and memory guard: too large is refused in seconds with one line; what ships passes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from siqml_cli.errors import SiqmlError
from siqml_cli.models import build_model
from siqml_cli.simulate import make_simulator
from siqml_cli.simulate.resources import MAX_TRACED_GATES, check_resources, estimate, traced_gates

SHIPPED = [("lih", "full", 6, 2, {}), ("h2o", "broken", 6, 1, {}), ("h2o", "none", 6, 1, {}),
           ("water_dimer", "broken", 4, 1, {"frame": "bonds", "atom_readout": True, "observable": "trained"})]


def test_blocks_1000_is_refused_at_once_with_one_line(siqml, tmp_path):
    run_dir = tmp_path / "run"
    start = time.monotonic()
    result = siqml("train", "+molecule=lih", "model.blocks=1000", f"hydra.run.dir={run_dir}", timeout=60)
    assert time.monotonic() - start < 20
    assert result.returncode == 2  # refused with the command line's values, before Hydra starts the run
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("siqml train: error: model.layers=6 model.blocks=1000 traces 4004 gates")
    assert f"beyond the limit of {MAX_TRACED_GATES}" in lines[0] and "lower model.blocks or model.layers" in lines[0]
    assert not run_dir.exists()


@pytest.mark.parametrize("molecule, symmetry, layers, blocks, options", SHIPPED)
def test_shipped_models_pass(molecule, symmetry, layers, blocks, options):
    spec = build_model(molecule, symmetry, layers, blocks, options)
    assert traced_gates(spec) < MAX_TRACED_GATES / 10
    found = check_resources(spec, 256, "double", force_loss=True)
    assert found.peak_bytes < 4 * 2**30


def test_make_simulator_refuses_what_cannot_compile():
    with pytest.raises(SiqmlError, match="traces 2004 gates"):
        make_simulator(build_model("lih", "full", 2, 500))


def test_a_batch_beyond_memory_names_the_estimate_and_the_knobs():
    spec = build_model("water_dimer", "broken", 4, 1)
    with pytest.raises(SiqmlError) as error:
        check_resources(spec, 10**9, "double", force_loss=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith("this needs about ")
    assert "12-qubit states x batch 1000000000 with forces" in message
    assert "lower train.batch_size (now 1000000000), train.precision=single or model.layers" in message
    with pytest.raises(SiqmlError, match="lower data.max_configurations"):
        check_resources(spec, 10**9, "single", force_loss=False, batch_option="data.max_configurations")


def test_estimate_bounds_the_measured_peak(repo):
    """One compile and one energy + force Adam step of H2O at batch 256: the peak RSS stays below the estimate."""
    script = """
import json
import jax.numpy as jnp
from siqml_cli.models import build_model
from siqml_cli.simulate import make_simulator
from siqml_cli.train.loop import LoopSettings, make_optimizer, make_step
spec = build_model("h2o", "broken", 6, 1)
sim = make_simulator(spec, "single")
opt = make_optimizer(LoopSettings(1, 0.01, None, 1.0, "constant", 0.1, 1, 0))
w = {k: jnp.asarray(v, dtype=sim.real) for k, v in spec.init_weights(0).items()}
x = jnp.asarray(jnp.tile(jnp.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), (256, 1, 1)), dtype=sim.real)
out = make_step(sim, opt, 1.0)(w, opt.init(w), x, jnp.zeros(256, sim.real), jnp.zeros_like(x))
out[2].block_until_ready()
# VmHWM: this program's own peak (ru_maxrss would carry the parent's peak over fork and exec)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps(int(hwm.split()[1]) * 1024))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=repo, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    predicted = estimate(build_model("h2o", "broken", 6, 1), 256, "single", force_loss=True).peak_bytes
    assert measured < predicted < 3 * measured


def test_a_sweep_with_a_model_too_large_to_compile_is_refused_before_any_job(siqml, tmp_path):
    sweep = tmp_path / "sweep"
    result = siqml("train", "-m", "+molecule=lih", "model.blocks=1,1000", "train.steps=1", f"hydra.sweep.dir={sweep}",
                   timeout=120)
    assert result.returncode != 0
    assert "traces 4004 gates" in result.stderr and "Traceback" not in result.stderr
    assert not sweep.exists() or not any(sweep.rglob("run.json"))
