"""Sweeps from the shell (Hydra multirun with the basic, joblib and submitit_local launchers) and
`siqml report` over their results."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

SHORT = ["+molecule=lih", "train.steps=20", "train.checkpoint_every=10"]


def statuses(sweep):
    return sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/run.json"))


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory, siqml):
    sweep = tmp_path_factory.mktemp("sweeps") / "joblib"
    result = siqml("train", "-m", *SHORT, "noise.sigma=0,0.05", "seed=0,1", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    return sweep


def test_joblib_sweep_writes_one_run_folder_per_job(joblib_sweep):
    assert statuses(joblib_sweep) == ["complete"] * 4
    recorded = (joblib_sweep / "multirun.yaml").read_text()  # Hydra keeps the sweep's overrides
    assert "noise.sigma=0,0.05" in recorded and "seed=0,1" in recorded
    jobs = set()
    for run in joblib_sweep.glob("*_lih_full"):
        config = yaml.safe_load((run / "config.yaml").read_text())
        jobs.add((config["noise"]["sigma"], config["seed"]))
        if len(os.sched_getaffinity(0)) > 1:  # two jobs on one machine: each gets its share of the cores
            assert "thread(s) per job" in (run / "train.log").read_text()
    assert jobs == {(0, 0), (0, 1), (0.05, 0), (0.05, 1)}


def test_report_summarises_a_sweep(joblib_sweep, siqml):
    result = siqml("report", str(joblib_sweep))
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(joblib_sweep / "summary_runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"complete"}
    assert sorted(runs["seed"]) == [0, 0, 1, 1]
    summary = pd.read_csv(joblib_sweep / "summary.csv")
    assert sorted(summary["noise.sigma"]) == [0.0, 0.05]
    assert list(summary["n"]) == [2, 2] and list(summary["n_failed"]) == [0, 0]
    for column in ("test_energy_mse_mean", "test_energy_mse_std", "test_force_mse_mean", "train_energy_mse_mean"):
        assert np.isfinite(summary[column]).all(), column
    markdown = (joblib_sweep / "summary.md").read_text()
    assert "noise.sigma" in markdown and "±" in markdown
    assert (joblib_sweep / "summary_mse.png").stat().st_size > 0


@pytest.mark.slow  # a second launcher through subprocesses; the joblib sweep above stays in make test
def test_submitit_local_sweep(siqml, tmp_path):
    result = siqml("train", "-m", *SHORT, "seed=0,1", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert statuses(tmp_path) == ["complete"] * 2


def test_failed_job_does_not_stop_the_sweep_and_is_reported(siqml, tmp_path):
    result = siqml("train", "-m", *SHORT, "data.path=/nope.h5,data/lih.h5", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "/nope.h5" in result.stderr
    assert statuses(tmp_path) == ["complete", "failed"]
    report = siqml("report", str(tmp_path), f"out={tmp_path / 'report'}")
    assert report.returncode == 0, report.stderr
    runs = pd.read_csv(tmp_path / "report" / "summary_runs.csv")
    assert sorted(runs["status"]) == ["complete", "failed"]
    assert "/nope.h5 does not exist" in runs.loc[runs["status"] == "failed", "error"].iloc[0]
    summary = pd.read_csv(tmp_path / "report" / "summary.csv").set_index("data.path")
    assert summary.loc["/nope.h5", "n"] == 0 and summary.loc["/nope.h5", "n_failed"] == 1
    assert summary.loc["data/lih.h5", "n"] == 1
    assert "failed" in (tmp_path / "report" / "summary.md").read_text()


def test_report_bad_input_is_one_line(siqml, tmp_path):
    for args in ([str(tmp_path)], [str(tmp_path / "nope")], []):
        result = siqml("report", *args)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("siqml report: error:"), result.stderr
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    result = siqml("report", str(run), f"out={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "siqml report: error: none of the 1 runs" in result.stderr
    assert pd.read_csv(tmp_path / "out" / "summary_runs.csv")["status"].tolist() == ["running"]


def test_slurm_launcher_config_and_unknown_launcher(siqml):
    result = siqml("train", "+molecule=lih", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                   "hydra.launcher.mem_gb=8", "--cfg", "hydra", "--package", "hydra.launcher")
    assert result.returncode == 0, result.stderr
    for line in ("partition: debug", "mem_gb: 8", "cpus_per_task: 2", "timeout_min: 120", "SlurmLauncher"):
        assert line in result.stdout, line
    bad = siqml("train", "-m", "+molecule=lih", "hydra/launcher=nope")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("siqml train: error: unknown hydra/launcher 'nope'")


def test_sweep_noise_script_usage(repo):
    script = repo / "scripts" / "sweep_noise.sh"
    for args in ([], ["lih", "0 x", "0"]):
        result = subprocess.run([str(script), *args], capture_output=True, text=True)
        assert result.returncode == 2 and "usage:" in result.stderr


def test_slurm_launcher_writes_the_sbatch_script(siqml, tmp_path, monkeypatch):
    """No cluster here: a stand-in sbatch keeps the array job's script and refuses it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/bash\nexit 0\n")
    (bin_dir / "sbatch").write_text('#!/bin/bash\nfor a in "$@"; do [ -f "$a" ] && cp "$a" "$SBATCH_COPY"; done\n'
                                    'echo "sbatch: no cluster here" >&2\nexit 1\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_COPY", str(tmp_path / "job.sh"))
    result = siqml("train", "-m", *SHORT, "seed=0,1", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                   "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=4", "hydra.launcher.mem_gb=8",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode != 0 and "no cluster here" in result.stderr
    script = (tmp_path / "job.sh").read_text()
    for line in ("--array=0-1", "--partition=debug", "--time=30", "--cpus-per-task=4", "--mem=8GB"):
        assert f"#SBATCH {line}" in script, line


def test_sweep_jobs_are_numbered_as_hydras_basic_sweeper_does():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from siqml_cli.report.summary import sweep_product

    parsed = OverridesParser.create().parse_overrides(["+molecule=lih", "seed=0,1", "noise.sigma=0,0.01", "seed=5,6"])
    assert sweep_product(parsed) == [  # a repeated key keeps its place and takes the later values
        ["+molecule=lih", "seed=5", "noise.sigma=0"], ["+molecule=lih", "seed=5", "noise.sigma=0.01"],
        ["+molecule=lih", "seed=6", "noise.sigma=0"], ["+molecule=lih", "seed=6", "noise.sigma=0.01"]]
    with pytest.raises(ValueError, match="lists of values"):
        sweep_product(OverridesParser.create().parse_overrides(["train.lr=interval(0.1,1)"]))
