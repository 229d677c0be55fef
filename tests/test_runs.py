"""A run folder never lies and is never damaged: a refused resume or a damaged file is one line, and every
file of the run (and its status) stays exactly as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from siqml_cli.errors import SiqmlError
from siqml_cli.runs import COMPLETE, RunFolder

TINY = ["+molecule=lih", "model.layers=1", "train.steps=20", "train.checkpoint_every=10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, siqml) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "lih"
    result = siqml("train", *TINY, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, for a test to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def status(folder: Path) -> str:
    return json.loads((folder / "run.json").read_text())["status"]


def assert_one_line_error(result, command: str, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"siqml {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def assert_refused_resume(siqml, run: Path, *args: str, fragments: tuple[str, ...]) -> None:
    before = hashes(run)
    result = siqml("train", f"resume={run}", *args)
    assert_one_line_error(result, "train", 2, *fragments)
    assert hashes(run) == before
    assert status(run) == COMPLETE


def test_the_run_records_its_model_everywhere(trained):
    record = json.loads((trained / "run.json").read_text())
    model = json.loads((trained / "model.json").read_text())
    with np.load(trained / "checkpoint.npz") as checkpoint:
        saved = str(checkpoint["fingerprint"])
    assert record["status"] == COMPLETE and record["model"]["layers"] == 1
    assert record["fingerprint"] == model["fingerprint"] == saved


def test_resume_after_config_edited_by_hand_is_refused(siqml, run):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("layers: 1", "layers: 2"))
    assert_refused_resume(siqml, run, "train.steps=30", fragments=("config.yaml", "layers 1 -> 2"))


def test_resume_from_a_truncated_checkpoint_is_refused(siqml, run):
    checkpoint = run / "checkpoint.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    assert_refused_resume(siqml, run, "train.steps=30", fragments=("checkpoint.npz is damaged",))


def test_bad_override_on_a_complete_run_leaves_it_complete(siqml, run):
    assert_refused_resume(siqml, run, "train.lr=-1", fragments=("train.lr",))


def test_fewer_steps_than_trained_is_refused(siqml, run):
    assert_refused_resume(siqml, run, "train.steps=10", fragments=("train.steps=10", "20 steps"))


def test_resume_a_complete_run_to_more_steps_continues_it(siqml, run):
    result = siqml("train", f"resume={run}", "train.steps=25")
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == COMPLETE and record["steps"] == 25
    with np.load(run / "checkpoint.npz") as checkpoint:
        assert int(checkpoint["step"]) == 25


@pytest.mark.parametrize("command, args", [
    ("evaluate", ["run={run}"]),
    ("md", ["run={run}", "md.steps=2"]),
    ("check-symmetry", ["+molecule=lih", "weights={run}", "n_configs=2"]),
])
def test_corrupt_weights_are_one_line_for_every_command(siqml, run, command, args):
    weights = run / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:100])
    before = hashes(run)
    result = siqml(command, *(a.format(run=run) for a in args))
    assert_one_line_error(result, command, 1, "weights.npz is damaged")
    assert hashes(run) == before and status(run) == COMPLETE


def test_weights_of_another_shape_are_refused(run, tmp_path):
    with np.load(run / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    weights["theta"] = np.concatenate([weights["theta"], weights["theta"]])
    np.savez(run / "weights.npz", **weights)
    with pytest.raises(SiqmlError, match=r"weights.npz is damaged \(ValueError: 'theta' has shape"):
        RunFolder(run).load_forcefield()


def test_corrupt_split_is_one_line(siqml, run):
    (run / "split.npz").write_bytes(b"not a zip")
    result = siqml("evaluate", f"run={run}")
    assert_one_line_error(result, "evaluate", 1, "split.npz is damaged", "data.path=")


def test_evaluate_out_an_existing_file_is_one_line(siqml, run, tmp_path):
    existing = tmp_path / "table.csv"
    existing.write_text("keep me\n")
    before = hashes(run)
    result = siqml("evaluate", f"run={run}", f"out={existing}")
    assert_one_line_error(result, "evaluate", 1, "is an existing file")
    assert existing.read_text() == "keep me\n" and hashes(run) == before


def test_status_changes_only_inside_training(tmp_path):
    with pytest.raises(RuntimeError, match="outside the training"):
        RunFolder(tmp_path).complete()


@pytest.mark.parametrize("raised, expected", [(KeyboardInterrupt, "interrupted"), (SiqmlError, "failed")])
def test_training_ends_interrupted_or_failed(tmp_path, raised, expected):
    from siqml_cli.runs import Split

    run = RunFolder(tmp_path / "run")
    with pytest.raises(raised):
        with run.training("seed: 0\n", Split(np.arange(2), np.arange(2, 4)), "data/lih.h5", {"molecule": "lih"}):
            assert status(run.path) == "running"
            raise raised("stopped")
    assert status(run.path) == expected
    assert RunFolder(run.path).split()[1] == "data/lih.h5"
