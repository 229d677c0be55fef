"""The Python API (`siqml_cli.api`): it trains as `siqml train` does, predicts as `siqml evaluate` does, refuses
what the command line refuses with the same line, keeps `import siqml_cli` free of JAX, and the examples of
docs/api.md run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siqml_cli import SiqmlError, build_model, load_run
from siqml_cli.api import TrainedRun, train
from siqml_cli.data import read_dataset
from siqml_cli.runs import COMPLETE, MODEL_FILE, WEIGHTS_FILE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    return train(["+molecule=lih", "train.steps=20"], output_dir=tmp_path_factory.mktemp("api") / "lih",
                 progress=False)


def test_train_returns_a_complete_run_that_predicts_as_evaluate_does(trained, siqml, tmp_path):
    assert isinstance(trained, TrainedRun) and trained.status == COMPLETE
    assert all(trained.file(name).is_file() for name in (MODEL_FILE, WEIGHTS_FILE, "mse.md", "metrics.csv"))
    assert trained.record()["steps"] == 20

    result = siqml("evaluate", f"run={trained.path}", f"out={tmp_path / 'evaluation'}")
    assert result.returncode == 0, result.stderr
    evaluated = read_dataset(tmp_path / "evaluation" / "predictions.extxyz", energy_key="siqml_energy",
                             forces_key="siqml_forces")
    test = trained.test_split()
    np.testing.assert_allclose(evaluated.positions, test.positions, atol=1e-8)  # the same configurations
    prediction = load_run(trained.path).predict(test.positions)
    np.testing.assert_allclose(prediction.energies, evaluated.energies, rtol=0, atol=1e-9)
    np.testing.assert_allclose(prediction.forces, evaluated.forces, rtol=0, atol=1e-7)


def test_train_writes_where_hydra_run_dir_says_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train("+molecule=lih train.steps=0 hydra.run.dir=runs/${molecule.name}_${symmetry.name}", progress=False)
    assert run.path == tmp_path / "runs" / "lih_full"
    assert run.status == COMPLETE


@pytest.mark.parametrize("overrides", [["+molecule=lih", "train.steps=-1"], ["+molecule=benzene"],
                                       ["+molecule=lih", "model.nope=1"]])
def test_bad_overrides_raise_the_command_lines_message_and_write_nothing(overrides, siqml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SiqmlError) as refused:
        train(overrides)
    assert "\n" not in str(refused.value)
    assert not any(tmp_path.iterdir()), "a refused training leaves nothing behind"
    if overrides[-1] == "train.steps=-1":  # one run of the real command line: it prints the very same line
        result = siqml("train", *overrides, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == f"siqml train: error: {refused.value}"


def test_sweeps_stay_with_the_command_line():
    for overrides in (["-m", "+molecule=lih", "seed=0,1"], ["experiment=h2o"]):
        with pytest.raises(SiqmlError, match="siqml train"):
            train(overrides)


def test_load_run_refuses_a_folder_that_is_not_a_trained_run(tmp_path):
    with pytest.raises(SiqmlError, match="not a trained run"):
        load_run(tmp_path)
    with pytest.raises(SiqmlError, match="not a folder"):
        load_run(tmp_path / "missing")


def test_predict_takes_one_configuration_or_many_and_refuses_other_shapes(trained):
    test = trained.test_split()
    many = trained.predict(test.positions[:3])
    one = trained.predict(test.positions[1])
    assert len(one) == 1 and one.forces.shape == (1, 2, 3)
    np.testing.assert_allclose(one.energies[0], many.energies[1], atol=1e-12)
    with pytest.raises(SiqmlError, match=r"\(N, 2, 3\)"):
        trained.predict(np.zeros((3, 3, 3)))


def test_build_model_refuses_an_unknown_option_instead_of_ignoring_it():
    with pytest.raises(SiqmlError, match="unknown model option frme"):
        build_model("h2o", frme="bonds")
    assert build_model("lih").layers == 6  # the molecule's config's size, as `+molecule=lih` trains it


def test_the_api_computes_in_double_precision_in_a_fresh_process_and_imports_no_jax_until_used(trained):
    """JAX's 32-bit default is left on in the child, as a notebook has it; the predictions still agree with
    the double-precision ones of this process, and `import siqml_cli` alone brings in neither JAX nor Qiskit."""
    positions = trained.test_split().positions[:2]
    code = f"""
import json, sys
import numpy as np
import siqml_cli
heavy = sorted(m for m in ("jax", "qiskit", "hydra") if m in sys.modules)
siqml_cli.load_run, siqml_cli.build_model, siqml_cli.Prediction  # the lazy exports resolve
heavy += sorted(m for m in ("jax", "qiskit") if m in sys.modules)
import jax
assert not jax.config.jax_enable_x64
run = siqml_cli.load_run({str(trained.path)!r})
positions = np.array({positions.tolist()!r})
prediction = run.predict(positions)
from ase import Atoms
atoms = Atoms("LiH", positions=positions[0])
atoms.calc = run.calculator()
print(json.dumps({{"heavy": heavy, "energies": prediction.energies.tolist(), "x64": jax.config.jax_enable_x64,
                  "calculator": atoms.get_potential_energy()}}))
"""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["heavy"] == []
    assert child["x64"] is False  # the caller's setting is restored
    expected = trained.predict(positions).energies
    np.testing.assert_allclose(child["energies"], expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(child["calculator"], expected[0], rtol=0, atol=1e-10)


def test_the_examples_of_docs_api_md_run_as_written(tmp_path, monkeypatch):
    """Every ```python block of the page, in order, in one namespace, in an empty working directory."""
    page = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/api.md, example {number}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "h2o_broken.qpy").is_file() and (tmp_path / "h2o_broken.qasm").read_text().startswith(
        "OPENQASM 3")
    assert namespace["run"].status == COMPLETE
