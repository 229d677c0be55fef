"""The paper's experiments as presets: every preset composes with each of its models, a short real
experiment writes the combined table, a resumed one skips what is complete, bad input is one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from siqml_cli.cli import preflight, preset_arms
from siqml_cli.paths import config_options

PRESETS = config_options("experiment")


def test_the_paper_has_five_presets():
    assert PRESETS == ["h2o", "lih_exact", "lih_noise", "water_dimer", "water_dimer_cut"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_with_each_of_its_models(name):
    from siqml_cli.cli import compose_check

    overrides = preflight("train", [f"experiment={name}"])
    cfg = compose_check("train", overrides)
    arms = preset_arms(cfg, overrides)
    assert len(arms) >= 2, arms
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.experiment.name == name
    assert str(cfg.hydra.sweeper.params.seed).split(",") == ["0", "1", "2"]


@pytest.fixture(scope="module")
def h2o_experiment(tmp_path_factory, siqml):
    """Two of the H2O models, two seeds, a few steps: the whole path of a preset, quickly."""
    folder = tmp_path_factory.mktemp("experiments") / "h2o"
    result = siqml("train", "experiment=h2o", "+arm=h2o_sivqlm,h2o_sivqlm_sb", "seed=0,1", "train.steps=3",
                   f"hydra.sweep.dir={folder}", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder, result


def test_experiment_writes_one_table_with_every_model(h2o_experiment):
    folder, result = h2o_experiment
    text = (folder / "experiment.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("|") and "siVQLM" in line)
    assert "siVQLM" in header and "siVQLM + SB" in header
    assert text.count(" ± ") >= 8  # 4 rows x 2 models, mean ± std over 2 seeds
    table = pd.read_csv(folder / "experiment.csv")
    assert set(table["arm"]) == {"h2o_sivqlm", "h2o_sivqlm_sb"} and (table["n"] == 2).all()
    assert (folder / "experiment.png").stat().st_size > 10_000
    assert "experiment.md" in result.stdout
    statuses = [json.loads(p.read_text())["status"] for p in folder.glob("*/run.json")]
    assert statuses == ["complete"] * 4


def test_report_rewrites_the_experiment_table(h2o_experiment, siqml):
    folder, _ = h2o_experiment
    (folder / "experiment.md").unlink()
    result = siqml("report", str(folder))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (folder / "experiment.md").is_file() and (folder / "summary.md").is_file()


def test_resuming_an_experiment_skips_complete_jobs_and_reruns_unfinished(h2o_experiment, siqml):
    folder, _ = h2o_experiment
    job = next(folder.glob("0_*"))
    record = json.loads((job / "run.json").read_text())
    (job / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    before = {p: p.stat().st_mtime_ns for p in folder.glob("[123]_*/weights.npz")}
    result = siqml("train", f"resume={folder}", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("is complete; skipped") == 3
    assert json.loads((job / "run.json").read_text())["status"] == "complete"
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the complete ones were not touched


def test_changed_settings_leave_a_finished_job_untouched(h2o_experiment, siqml):
    folder, _ = h2o_experiment
    records = {p: p.read_text() for p in folder.glob("*/run.json")}
    result = siqml("train", f"resume={folder}", "train.lr=0.5", timeout=600)
    assert "holds a run with other settings" in result.stderr
    assert {p: p.read_text() for p in records} == records


@pytest.mark.parametrize("args,message", [
    (["experiment=nope"], "unknown experiment 'nope'"),
    (["experiment=h2o", "+arm=h2o_sivqlm,nope"], "unknown arm 'nope'"),
    (["experiment=h2o", "train.steps=-1"], "train.steps"),
])
def test_bad_experiment_input_is_one_line(siqml, tmp_path, args, message):
    result = siqml("train", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "sweep").exists()
