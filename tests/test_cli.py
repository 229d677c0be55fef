"""The `siqml` command as a user meets it: results folders, evaluation, resuming, bad input."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from siqml_cli.data import Dataset, read_dataset, write_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

SHORT = ["train.steps=30", "train.checkpoint_every=10"]


@pytest.fixture(scope="module")
def lih_run(tmp_path_factory, siqml):
    folder = tmp_path_factory.mktemp("runs") / "lih"
    result = siqml("train", "+molecule=lih", *SHORT, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder, result


def test_train_writes_a_complete_results_folder(lih_run):
    folder, result = lih_run
    for name in ["config.yaml", "metrics.csv", "mse.csv", "mse.md", "model.json", "weights.npz",
                 "test_predictions.extxyz", "loss.png", "energy_parity.png", "force_parity.png", "lih_curve.png"]:
        assert (folder / name).stat().st_size > 0, name
    status = json.loads((folder / "run.json").read_text())
    assert status["status"] == "complete"
    table = pd.read_csv(folder / "mse.csv", index_col=0)
    assert list(table.columns) == ["train", "test"]
    assert np.isfinite(table.loc["energy MSE (eV^2)"]).all() and np.isfinite(table.loc["force MSE (eV^2/Å^2)"]).all()
    assert "energy MSE (eV^2)" in result.stdout  # the table is printed
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics["step"]) == list(range(1, 31))
    frames = ase.io.read(folder / "test_predictions.extxyz", index=":")
    assert len(frames) == status["n_test"] and frames[0].arrays["siqml_forces"].shape == (2, 3)
    assert frames[0].arrays["REF_forces"].shape == (2, 3) and "REF_energy" in frames[0].info
    assert not any(a.info["siqml_out_of_domain"] for a in frames)  # its own test split lies inside


def test_same_seed_gives_bit_identical_metrics(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    again = siqml("train", "+molecule=lih", *SHORT, f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr
    assert (folder / "metrics.csv").read_bytes() == (tmp_path / "again" / "metrics.csv").read_bytes()
    assert (folder / "mse.csv").read_bytes() == (tmp_path / "again" / "mse.csv").read_bytes()


def test_resume_continues_exactly(siqml, tmp_path):
    common = ["+molecule=lih", "train.schedule=constant", "train.checkpoint_every=5"]
    straight = siqml("train", *common, "train.steps=20", f"hydra.run.dir={tmp_path / 'straight'}")
    first = siqml("train", *common, "train.steps=10", f"hydra.run.dir={tmp_path / 'parts'}")
    with np.load(tmp_path / "parts" / "checkpoint.npz") as checkpoint:
        first_seconds = float(checkpoint["seconds"])
    resumed = siqml("train", f"resume={tmp_path / 'parts'}", "train.steps=20")
    for r in (straight, first, resumed):
        assert r.returncode == 0, r.stderr
    a = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    b = pd.read_csv(tmp_path / "parts" / "metrics.csv")
    assert len(b) == 20
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    # the training time counts both invocations; the log (Hydra's train.log) tells the story
    assert 0 < first_seconds < json.loads((tmp_path / "parts" / "run.json").read_text())["train_seconds"]
    log = (tmp_path / "parts" / "train.log").read_text()
    assert "step 10/10" in log and "resumed at step 10 of 20" in log and "step 20/20" in log


def test_evaluate_any_orientation(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    test_file = tmp_path / "moved.extxyz"
    frames = ase.io.read(folder / "test_predictions.extxyz", index=":")
    rot = Rotation.from_rotvec([0.3, -1.2, 0.7])
    for atoms in frames:
        atoms.calc = None
        atoms.positions = rot.apply(atoms.positions) + np.array([5.0, -1.0, 2.0])
    ase.io.write(test_file, frames, format="extxyz")
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={folder}", f"data.path={test_file}", f"out={out}")
    assert result.returncode == 0, result.stderr
    moved = ase.io.read(out / "predictions.extxyz", index=":")
    original = ase.io.read(folder / "test_predictions.extxyz", index=":")
    e_moved = np.array([a.info["siqml_energy"] for a in moved])
    e_orig = np.array([a.info["siqml_energy"] for a in original])
    np.testing.assert_allclose(e_moved, e_orig, rtol=0, atol=1e-6)  # extxyz keeps ~8 decimals
    f_orig = np.stack([a.arrays["siqml_forces"] for a in original])
    f_moved = np.stack([a.arrays["siqml_forces"] for a in moved])
    np.testing.assert_allclose(f_moved, rot.apply(f_orig.reshape(-1, 3)).reshape(f_orig.shape), atol=1e-5)


def test_evaluate_labelled_file_writes_mse_table(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    result = siqml("evaluate", f"run={folder}", "data.path=data/lih.h5", f"out={tmp_path / 'e'}")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "e" / "mse.csv", index_col=0)
    assert table.loc["n configurations", "data"] == 250


def test_zero_steps_is_a_valid_run(siqml, tmp_path):
    result = siqml("train", "+molecule=h2o", "train.steps=0", f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"


def test_check_symmetry_prints_the_table(siqml):
    result = siqml("check-symmetry", "+molecule=h2o", "symmetry=full", "n_configs=4", "model.layers=2")
    assert result.returncode == 0, result.stderr
    assert "exchange H1 <-> H2" in result.stdout and "FAIL" not in result.stdout
    broken = siqml("check-symmetry", "+molecule=h2o", "symmetry=rotation", "n_configs=4", "model.layers=2")
    assert broken.returncode == 0 and "broken (as designed)" in broken.stdout


def _nan_file(tmp_path):
    data = read_dataset(REPO_ROOT / "data" / "lih.h5")
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        positions = data.positions[:10].copy()
        positions[3, 0, 0] = np.nan
        f["positions"] = positions
        f["energies"] = data.energies[:10]
        f.attrs["species"] = json.dumps(list(data.species))
    return path


def _mixed_dimer_file(tmp_path):
    """Water dimer configurations written with both oxygens first: O, O, H, H, H, H."""
    data = read_dataset(REPO_ROOT / "data" / "water_dimer.h5").subset(np.arange(5))
    order = [0, 3, 1, 2, 4, 5]
    path = tmp_path / "mixed.extxyz"
    write_dataset(Dataset(tuple(data.species[i] for i in order), data.positions[:, order], data.energies,
                          data.forces[:, order]), path)
    return path


@pytest.mark.parametrize("args, message", [
    ([], "+molecule is missing"),
    (["+molecule=benzene"], "unknown molecule 'benzene'"),
    (["+molecule=h2o", "symmetry=octahedral"], "unknown symmetry 'octahedral'"),
    (["+molecule=lih", "train.stepz=3"], "train.stepz"),
    (["-m", "+molecule=lih", "train.stepz=3,4"], "train.stepz"),
    (["+molecule=lih", "train.steps=-5"], "train.steps must be an integer >= 0"),
    (["+molecule=lih", "train.lr=fast"], "train.lr must be a number"),
    (["+molecule=lih", "data.path=/nonexistent/file.h5"], "does not exist"),
    (["+molecule=h2o", "data.path=data/lih.h5"], "atoms are Li-H but molecule 'h2o' needs O-H-H"),
    (["+molecule=lih", "NAN_FILE"], "NaN or infinite coordinates"),
    (["+molecule=water_dimer", "MIXED_DIMER"], "atoms are O-O-H-H-H-H but molecule 'water_dimer' needs O-H-H-O-H-H"),
    (["+molecule=h2o", "symmetry=none", "model.features=polar"], "model.features"),
    (["+molecule=water_dimer", "symmetry=none"],
     "symmetry=none (the generic VQLM baseline) is not available for water_dimer"),
    (["+molecule=water_dimer", "model.frame=com"], "model.frame must be one of midpoint, bonds"),
    (["+molecule=h2o", "model.frame=bonds"],
     "model.frame, model.atom_readout and model.observable apply to the water dimer"),
    (["+molecule=lih", "model.observable=trained"], "model.observable apply to the water dimer only"),
    (["+molecule=water_dimer", "model.observable=learned"], "model.observable must be one of fixed, trained"),
    (["+molecule=h2o", "model.alpha_init=big"], "model.alpha_init must be a number"),
    (["+molecule=water_dimer", "model.output_margin=0.5"], "model.output_margin must lie in [0.0, 0.5)"),
])
def test_bad_input_is_one_line_and_leaves_no_results_folder(siqml, tmp_path, args, message):
    files = {"NAN_FILE": _nan_file, "MIXED_DIMER": _mixed_dimer_file}
    args = [f"data.path={files[a](tmp_path)}" if a in files else a for a in args]
    run_dir = tmp_path / "run"
    steps = [] if any(a.startswith("train.steps") for a in args) else ["train.steps=1"]
    result = siqml("train", *args, f"hydra.run.dir={run_dir}", *steps)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and lines[0].startswith("siqml train: error:")
    assert "Traceback" not in result.stderr
    assert not run_dir.exists() or not (run_dir / "mse.csv").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, signum):
    """Ctrl-C, and SIGTERM (what SLURM sends at a time limit): the run stops with a checkpoint, says how to
    continue and is marked interrupted."""
    import subprocess
    import time

    from conftest import SIQML

    def as_in_a_terminal():
        """A test worker may have SIGINT ignored or blocked (multiprocessing's resource trackers do that
        while they start), and a child inherits both; a user's shell gives the default handling."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    folder = tmp_path / "run"
    proc = subprocess.Popen([str(SIQML), "train", "+molecule=lih", "train.steps=200000", "train.checkpoint_every=50",
                             f"hydra.run.dir={folder}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_terminal)
    try:  # on a busy machine start-up and compilation can take minutes: wait for the first checkpoint
        deadline = time.monotonic() + 400
        while not (folder / "checkpoint.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (folder / "checkpoint.npz").exists(), "no checkpoint written"
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)  # a loaded machine can take long to unwind and exit
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"siqml train resume={folder}" in err
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"
    assert not (folder / "mse.csv").exists()
    done = np.load(folder / "checkpoint.npz")["step"]
    assert done >= 50


def test_data_labels_user_configurations(siqml, tmp_path):
    from ase import Atoms

    given = tmp_path / "mine.extxyz"
    ase.io.write(given, [Atoms("LiH", positions=[[0, 0, 0], [0, 0, d]]) for d in (1.5, 2.0)], format="extxyz")
    out = tmp_path / "mine.h5"
    result = siqml("data", "+molecule=lih", f"input={given}", f"out={out}", f"export={tmp_path / 'mine_out.extxyz'}")
    assert result.returncode == 0, result.stderr
    labelled = read_dataset(out, "lih")
    assert -214.6 < labelled.energies[0] < -214.4 < labelled.energies[1]  # 1.5 Å sits near the STO-3G minimum
    assert np.isfinite(labelled.forces).all()
    assert np.allclose(labelled.forces.sum(axis=1), 0.0)
    back = ase.io.read(tmp_path / "mine_out.extxyz", index=":")
    assert back[1].get_potential_energy() == pytest.approx(labelled.energies[1])


def _lih_file(path: Path, distances, **cell) -> Path:
    from ase import Atoms

    ase.io.write(path, [Atoms("LiH", positions=[[0, 0, 0], [0, 0, d]], **cell) for d in distances], format="extxyz")
    return path


def test_evaluate_flags_configurations_outside_the_training_domain(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    given = _lih_file(tmp_path / "odd.extxyz", [1.6, 0.0, 2.0, 1000.0])  # one point; 1000 Å apart
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={folder}", f"data.path={given}", f"out={out}")
    assert result.returncode == 0, result.stderr
    frames = ase.io.read(out / "predictions.extxyz", index=":")
    assert [a.info["siqml_out_of_domain"] for a in frames] == [False, True, False, True]
    assert all(np.isfinite(a.info["siqml_energy"]) for a in frames)
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("siqml evaluate: warning: 2 of 4 configurations lie outside the training domain "
                                  "(configuration 1: H-Li distance 0.000 Å outside the trained range ")
    assert "configuration 3: H-Li distance 1000.000 Å" in warnings[0]
    assert "predictions for 4 configurations (2 outside the training domain)" in result.stdout
    record = json.loads((out / "evaluation.json").read_text())
    assert record["out_of_domain"] == 2 and record["out_of_domain_configurations"] == [1, 3]
    assert record["status"] == "complete"


def test_evaluate_with_domain_error_refuses_and_writes_nothing(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    given = _lih_file(tmp_path / "odd.extxyz", [1.6, 0.0, 1000.0])
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={folder}", f"data.path={given}", f"out={out}", "domain=error")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("siqml evaluate: error: 2 of 3 configurations lie outside the training domain")
    assert "give domain=warn" in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()
    inside = siqml("evaluate", f"run={folder}", f"out={tmp_path / 'own'}", "domain=error")  # its own test split
    assert inside.returncode == 0, inside.stderr
    assert json.loads((tmp_path / "own" / "evaluation.json").read_text())["out_of_domain"] == 0
    bad = siqml("evaluate", f"run={folder}", "domain=strict")
    assert bad.returncode != 0 and "domain must be one of warn, error" in bad.stderr


def test_evaluate_refuses_a_periodic_cell_in_one_line(lih_run, siqml, tmp_path):
    folder, _ = lih_run
    given = _lih_file(tmp_path / "crystal.extxyz", [1.6], cell=[4, 4, 4], pbc=True)
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={folder}", f"data.path={given}", f"out={out}")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"siqml evaluate: error: {given}: configuration 0: a periodic cell (periodic along xyz) was "
                     "given, but siqml models are molecular and know no periodic images; give the molecule without "
                     "periodic boundaries (pbc=False)"]
    assert not out.exists()
    open_cell = _lih_file(tmp_path / "open.extxyz", [1.6], cell=[4, 4, 4], pbc=False)
    assert siqml("evaluate", f"run={folder}", f"data.path={open_cell}", f"out={out}").returncode == 0


@pytest.mark.slow  # two trainings and an evaluation through the CLI
def test_label_keys_reach_training_and_evaluation(lih_run, siqml, tmp_path):
    """An extxyz file of another tool, labels under its own keys: train and evaluate read them, and the run's
    test split is read again under the keys of its config.yaml."""
    from ase import Atoms

    data = read_dataset(REPO_ROOT / "data" / "lih.h5").subset(np.arange(40))
    frames = []
    for i in range(len(data)):
        atoms = Atoms("LiH", positions=data.positions[i])
        atoms.info["dft_energy"] = float(data.energies[i])
        atoms.new_array("dft_forces", data.forces[i])
        frames.append(atoms)
    given = tmp_path / "other_tool.extxyz"
    ase.io.write(given, frames, format="extxyz")
    keys = ["data.energy_key=dft_energy", "data.forces_key=dft_forces"]
    run = tmp_path / "run"
    result = siqml("train", "+molecule=lih", "train.steps=2", f"data.path={given}", *keys, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={run}", f"out={out}")  # the run's test split, its keys from config.yaml
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out / "mse.csv", index_col=0).loc["n configurations", "data"] == 8
    frames = ase.io.read(out / "predictions.extxyz", index=":")
    assert "REF_energy" in frames[0].info and "REF_forces" in frames[0].arrays
    result = siqml("evaluate", f"run={run}", f"data.path={given}", *keys, f"out={tmp_path / 'all'}")
    assert result.returncode == 0, result.stderr
    missing = siqml("evaluate", f"run={run}", f"data.path={given}", "data.energy_key=nope", f"out={tmp_path / 'x'}")
    assert missing.returncode == 1 and "no configuration has the energy key 'nope'" in missing.stderr
