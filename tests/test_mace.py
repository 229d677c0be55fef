"""The classical anchor MACE (`model.family=mace`, siqml_cli/train/mace.py): the one-line error without the
`baselines` extra, and, where mace-torch is installed, a tiny training through `mace_run_train` end to end."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from siqml_cli.data import read_dataset, write_dataset
from siqml_cli.train.mace import MAKE_TARGET, mace_arguments, validation_split
from siqml_cli.train.run import split_indices

MACE_INSTALLED = importlib.util.find_spec("mace") is not None


def _error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.skipif(MACE_INSTALLED, reason="mace-torch is installed here (`make baselines`)")
def test_missing_extra_is_one_line_naming_the_make_target(siqml, tmp_path):
    folder = tmp_path / "run"
    proc = siqml("train", "+molecule=h2o", "model.family=mace", f"hydra.run.dir={folder}")
    assert proc.returncode != 0
    line = _error_line(proc)
    assert line.startswith("siqml train: error: model.family=mace needs the optional mace-torch package")
    assert f"`{MAKE_TARGET}`" in line
    assert not folder.exists()


def test_bad_mace_setting_is_one_line(siqml, tmp_path):
    folder = tmp_path / "run"
    proc = siqml("train", "+molecule=h2o", "model.family=mace", "model.mace.max_num_epochs=1",
                 f"hydra.run.dir={folder}")
    assert proc.returncode != 0
    assert _error_line(proc) == "siqml train: error: model.mace.max_num_epochs must be an integer >= 2, got 1"
    assert not folder.exists()


def test_validation_split_holds_out_part_of_the_training_split():
    fit, valid = validation_split(80, 0.1, seed=0)
    assert len(valid) == 8 and len(fit) == 72
    assert sorted({*fit, *valid}) == list(range(80))
    assert np.array_equal(validation_split(80, 0.1, seed=0)[1], valid)
    assert not np.array_equal(validation_split(80, 0.1, seed=1)[1], valid)


def test_hidden_irreps_follow_channels_and_max_L(tmp_path):
    from siqml_cli.config import MaceConfig

    def hidden(**kw):
        args = mace_arguments(MaceConfig(**kw), tmp_path, 0, tmp_path / "t", tmp_path / "v")
        return next(a.split("=", 1)[1] for a in args if a.startswith("--hidden_irreps="))

    assert hidden(num_channels=16, max_L=0) == "16x0e"
    assert hidden(num_channels=8, max_L=2) == "8x0e+8x1o+8x2e"


@pytest.mark.slow
def test_tiny_mace_run_end_to_end(siqml, repo, tmp_path):
    """2 epochs on 40 H2O configurations: the same split as a siqml run, the same results files, the
    parameter count and training time recorded, and `siqml evaluate` on the run reproducing its test numbers."""
    pytest.importorskip("mace")
    data = read_dataset(repo / "data" / "h2o.h5", "h2o")
    source = tmp_path / "h2o40.extxyz"
    write_dataset(data.subset(np.arange(40)), source)
    folder = tmp_path / "run"
    proc = siqml("train", "+molecule=h2o", "model.family=mace", f"data.path={source}", "model.mace.max_num_epochs=2",
                 "model.mace.num_channels=8", "model.mace.batch_size=8", f"hydra.run.dir={folder}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "complete" and record["family"] == "mace"
    assert record["n_trainable"] > 0 and record["train_seconds"] > 0 and record["epochs"] == 2
    with np.load(folder / "split.npz") as npz:
        expected = split_indices(40, 0.8, seed=0)
        assert np.array_equal(npz["train"], expected.train) and np.array_equal(npz["test"], expected.test)
    for name in ("mse.csv", "mse.md", "metrics.csv", "test_predictions.extxyz", "energy_parity.png",
                 "force_parity.png", "loss.png", "model.json"):
        assert (folder / name).is_file(), name
    test = record["mse"]["test"]
    assert np.isfinite(test["energy RMSE (meV)"]) and np.isfinite(test["force MAE (meV/Å)"])

    out = tmp_path / "evaluation"
    proc = siqml("evaluate", f"run={folder}", f"out={out}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    predicted = read_dataset(out / "predictions.extxyz", "h2o", energy_key="siqml_energy", forces_key="siqml_forces")
    trained = read_dataset(folder / "test_predictions.extxyz", "h2o", energy_key="siqml_energy",
                           forces_key="siqml_forces")
    np.testing.assert_allclose(predicted.energies, trained.energies, rtol=0, atol=1e-9)
    np.testing.assert_allclose(predicted.forces, trained.forces, rtol=0, atol=1e-9)


def test_qiskit_backend_is_refused_for_mace(siqml, tmp_path):
    pytest.importorskip("mace")
    folder = tmp_path / "run"
    proc = siqml("train", "+molecule=h2o", "model.family=mace", "backend=aer", f"hydra.run.dir={folder}")
    assert proc.returncode != 0
    assert _error_line(proc) == ("siqml train: error: backend=aer runs circuits; MACE has none: leave out backend= "
                                 "with model.family=mace")
    assert not folder.exists()
