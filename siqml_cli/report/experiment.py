"""The paper's experiments as presets: one combined table and figure per experiment.

`siqml train experiment=<name>` composes `configs/experiment/<name>.yaml`, a Hydra multirun over the
experiment's models (the `arm` config group: one file per model of the comparison) and seeds, and,
when every job has ended, `ExperimentReport` writes into the sweep folder

- `experiment.md` / `experiment.csv`: the table in the form of the paper's (models as columns, the
  train/test energy and force MSE as rows; or, for a noise sweep, one row per noise level), mean ± std
  over the seeds, plus one row per run;
- `experiment.png`: the experiment's figure (the LiH curve, MSE vs noise, parity plots, or the 1D cut).

`siqml report <experiment folder>` writes the same again (after a failed job was rerun, say).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from siqml_cli.data.io import write_text_atomic
from siqml_cli.errors import SiqmlError, fail
from siqml_cli.report import figures
from siqml_cli.report.tables import ENERGY_MSE, FORCE_MSE, RELEVANT, pipe_table
from siqml_cli.runs import CONFIG_FILE, RUN_FILE, RunFolder

SWEEP_FILE = "multirun.yaml"
#: table rows: (row label, split in run.json, metric in run.json)
MODEL_ROWS = [("energy MSE, train (eV²)", "train", ENERGY_MSE), ("energy MSE, test (eV²)", "test", ENERGY_MSE),
              ("force MSE, train (eV²/Å²)", "train", FORCE_MSE), ("force MSE, test (eV²/Å²)", "test", FORCE_MSE)]


class ExperimentReport(Callback):
    """Hydra callback of every experiment preset: the combined table once the sweep has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        try:
            write_experiment(Path(config.hydra.sweep.dir))
        except SiqmlError as exc:  # no job completed: the runs' folders say why; no table that looks complete
            fail("train", f"experiment table not written: {exc}")


@dataclass(frozen=True)
class ArmRun:
    """One job of an experiment: which model (arm), seed and noise level, and what it measured."""

    arm: str
    seed: int
    sigma: float
    folder: Path
    status: str
    mse: dict

    def value(self, split: str, metric: str) -> float:
        value = (self.mse.get(split) or {}).get(metric)
        return math.nan if value is None or self.status != "complete" else float(value)


def is_experiment(folder: Path) -> bool:
    """A sweep folder started from an experiment preset (its multirun.yaml has an `experiment` section)."""
    path = Path(folder) / SWEEP_FILE
    return path.is_file() and bool(OmegaConf.select(OmegaConf.load(path), "experiment", default=None))


def experiment_settings(folder: Path) -> tuple[dict, list[str], dict[str, str]]:
    """(the preset's `experiment` section, its arms in sweep order, arm -> label) from multirun.yaml."""
    path = folder / SWEEP_FILE
    if not path.is_file():
        raise SiqmlError(f"{folder} is not an experiment folder (no {SWEEP_FILE}); give the folder that "
                         "`siqml train experiment=<name>` printed")
    conf = OmegaConf.load(path)
    settings = OmegaConf.to_container(conf.get("experiment") or {}, resolve=False)
    if not settings:
        raise SiqmlError(f"{folder}: the sweep was not started from an experiment preset (no `experiment` "
                         "section); use `siqml report` for a plain sweep")
    params = OmegaConf.select(conf, "hydra.sweeper.params") or {}
    overrides = list(OmegaConf.select(conf, "hydra.overrides.task") or [])
    arms_text = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("arm=")),
                     params.get("+arm", params.get("arm", "")))
    arms = [a.strip() for a in str(arms_text).split(",") if a.strip()]
    labels = {arm: _arm_label(arm) for arm in arms}
    return settings, arms, labels


def _arm_label(arm: str) -> str:
    from siqml_cli.paths import config_files

    path = config_files().joinpath("arm", f"{arm}.yaml")
    label = OmegaConf.select(OmegaConf.create(path.read_text()), "arm.label") if path.is_file() else None
    return str(label or arm)


def collect_runs(folder: Path) -> list[ArmRun]:
    runs = []
    for record_path in sorted(folder.glob(f"*/{RUN_FILE}")):
        run = RunFolder(record_path.parent)
        record = run.record()
        config = run.config() if run.file(CONFIG_FILE).is_file() else OmegaConf.create()
        arm = OmegaConf.select(config, "arm.name")
        if arm is None:
            continue
        runs.append(ArmRun(arm=str(arm), seed=int(OmegaConf.select(config, "seed", default=0)),
                           sigma=float(OmegaConf.select(config, "noise.sigma", default=0.0)), folder=run.path,
                           status=record.get("status", "unknown"), mse=record.get("mse") or {}))
    return runs


def _stats(values: list[float]) -> tuple[float, float, int]:
    finite = np.array([v for v in values if np.isfinite(v)])
    if not len(finite):
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else 0.0, len(finite)


def _pm(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.2e} ± {std:.1e}" if std > 0 else f"{mean:.2e}"


def long_table(runs: list[ArmRun], arms: list[str], labels: dict[str, str]) -> pd.DataFrame:
    """Mean, std and count over seeds for every arm, noise level, split and metric."""
    rows = []
    for arm in arms:
        mine = [r for r in runs if r.arm == arm]
        for sigma in sorted({r.sigma for r in mine}):
            group = [r for r in mine if r.sigma == sigma]
            for split in ("train", "test", RELEVANT):
                for metric in (ENERGY_MSE, FORCE_MSE):
                    mean, std, n = _stats([r.value(split, metric) for r in group])
                    if n:
                        rows.append({"arm": arm, "model": labels[arm], "noise.sigma": sigma, "split": split,
                                     "metric": metric, "mean": mean, "std": std, "n": n,
                                     "seeds": " ".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed)
                                                       if np.isfinite(r.value(split, metric)))})
    return pd.DataFrame(rows, columns=["arm", "model", "noise.sigma", "split", "metric", "mean", "std", "n", "seeds"])


def _cell(table: pd.DataFrame, **where) -> str:
    mask = np.ones(len(table), bool)
    for key, value in where.items():
        mask &= (table[key] == value).to_numpy()
    part = table[mask]
    return _pm(float(part["mean"].iloc[0]), float(part["std"].iloc[0])) if len(part) else "n/a"


def models_markdown(table: pd.DataFrame, arms: list[str], labels: dict[str, str]) -> list[str]:
    """The paper's Tables 1-4: models as columns, "(relevant)" columns for the low-energy test subset."""
    columns = []
    for arm in arms:
        columns.append((labels[arm], arm, "test"))
        if ((table["arm"] == arm) & (table["split"] == RELEVANT)).any():
            columns.append((f"{labels[arm]} (relevant)", arm, RELEVANT))
    rows = []
    for row, split, metric in MODEL_ROWS:
        cells = [row]
        for _, arm, test_split in columns:
            if split == "train" and test_split == RELEVANT:
                cells.append("—")  # the same training as the full column
            else:
                cells.append(_cell(table, arm=arm, split=test_split if split == "test" else split, metric=metric))
        rows.append(cells)
    names = [c[0] for c in columns]
    return pipe_table(pd.DataFrame(rows, columns=["", *names]), numbers=names).splitlines()


def noise_markdown(table: pd.DataFrame, arms: list[str], labels: dict[str, str]) -> list[str]:
    """One row per noise level (Fig. 5): test energy and force MSE of every model."""
    columns = []
    for arm in arms:
        for split in ("test", RELEVANT):
            if ((table["arm"] == arm) & (table["split"] == split)).any():
                suffix = " (relevant)" if split == RELEVANT else ""
                columns += [(f"{labels[arm]}{suffix}: E test (eV²)", arm, split, ENERGY_MSE),
                            (f"{labels[arm]}{suffix}: F test (eV²/Å²)", arm, split, FORCE_MSE)]
    rows = [[f"{sigma:g}", *(_cell(table, arm=arm, split=split, metric=metric, **{"noise.sigma": sigma})
                             for _, arm, split, metric in columns)]
            for sigma in sorted(table["noise.sigma"].unique())]
    names = ["σ (eV)", *(c[0] for c in columns)]
    return pipe_table(pd.DataFrame(rows, columns=names), numbers=names).splitlines()


def runs_markdown(runs: list[ArmRun], labels: dict[str, str]) -> list[str]:
    rows = []
    for r in sorted(runs, key=lambda r: (list(labels).index(r.arm) if r.arm in labels else 99, r.sigma, r.seed)):
        values = [r.value(split, metric) for _, split, metric in MODEL_ROWS]
        rows.append([labels.get(r.arm, r.arm), f"{r.sigma:g}", str(r.seed), r.status,
                     *(f"{v:.2e}" if np.isfinite(v) else "n/a" for v in values), f"`{r.folder.name}`"])
    numbers = ["σ (eV)", "seed", "E train", "E test", "F train", "F test"]
    cells = pd.DataFrame(rows, columns=["model", *numbers[:2], "status", *numbers[2:], "run"])
    return pipe_table(cells, numbers).splitlines()


def write_experiment(folder: Path) -> Path:
    """experiment.md, experiment.csv and experiment.png for the experiment sweep in `folder`."""
    folder = Path(folder)
    settings, arms, labels = experiment_settings(folder)
    runs = collect_runs(folder)
    table = long_table(runs, arms, labels)
    if table.empty:
        raise SiqmlError(f"{folder}: no complete run yet ({len(runs)} run folders); rerun the missing jobs with "
                         f"`siqml train resume={folder}`")
    write_text_atomic(folder / "experiment.csv", table.to_csv(index=False))
    figure = None
    try:
        figure = plot_experiment(settings.get("figure"), folder, runs, arms, labels, table)
    except SiqmlError as exc:
        print(f"siqml: experiment figure not drawn: {exc}", file=sys.stderr)
    kind = settings.get("table", "models")
    body = noise_markdown(table, arms, labels) if kind == "noise" else models_markdown(table, arms, labels)
    incomplete = [r for r in runs if r.status != "complete"]
    seeds = sorted({r.seed for r in runs})
    lines = [f"# Experiment `{settings.get('name', folder.parent.name)}` (paper: {settings.get('paper', '')})", "",
             str(settings.get("description", "")).strip(), "",
             f"Mean ± sample std over seeds {', '.join(map(str, seeds))}; "
             f"{len(runs) - len(incomplete)} of {len(runs)} runs complete."
             + (" \"(relevant)\": the test configurations within data.relevant_window eV of the lowest training "
                "energy." if (table["split"] == RELEVANT).any() else ""), "", *body, ""]
    if figure:
        lines += [f"![{settings.get('paper', '')}]({figure})", ""]
    lines += ["## Runs", "", *runs_markdown(runs, labels), ""]
    text = "\n".join(lines)
    write_text_atomic(folder / "experiment.md", text)
    print("\n".join(["", *lines[:8 + len(body)]]))
    print(f"experiment: {folder}/experiment.md, experiment.csv" + (f", {figure}" if figure else ""))
    return folder / "experiment.md"


# ---------------------------------------------------------------------------------------- figures

def _first_complete(runs: list[ArmRun], arm: str) -> ArmRun | None:
    done = sorted((r for r in runs if r.arm == arm and r.status == "complete" and r.sigma == 0.0),
                  key=lambda r: r.seed)
    return done[0] if done else None


def _forcefield(run: ArmRun):
    return RunFolder(run.folder).load_forcefield()


def plot_experiment(kind: str | None, folder: Path, runs: list[ArmRun], arms: list[str], labels: dict[str, str],
                    table: pd.DataFrame) -> str | None:
    """The experiment's figure, drawn from the lowest complete seed of each model (mean ± std for noise)."""
    path = folder / "experiment.png"
    if kind == "noise":
        summary = noise_summary(table)
        figures.plot_sweep_mse(summary, "noise.sigma", ["model"], path)
        return path.name
    chosen = {arm: _first_complete(runs, arm) for arm in arms}
    chosen = {arm: run for arm, run in chosen.items() if run is not None}
    if not chosen:
        return None
    if kind == "lih_curve":
        lih_figure({labels[a]: _forcefield(r) for a, r in chosen.items()}, _reference(chosen), path)
    elif kind == "parity":
        figures.plot_model_parity({labels[a]: _test_predictions(r) for a, r in chosen.items()}, path)
    elif kind == "cut":
        cut_figure({labels[a]: _forcefield(r) for a, r in chosen.items()}, _reference(chosen), path)
    else:
        return None
    return path.name


def noise_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The layout `figures.plot_sweep_mse` draws: one row per model and noise level, test MSE mean/std."""
    rows = []
    for split in ("test", RELEVANT):
        part = table[table["split"] == split]
        for (model, sigma), group in part.groupby(["model", "noise.sigma"], sort=False):
            row = {"model": model + (" (relevant)" if split == RELEVANT else ""), "noise.sigma": sigma,
                   "n": int(group["n"].max())}
            for metric, name in ((ENERGY_MSE, "energy"), (FORCE_MSE, "force")):
                hit = group[group["metric"] == metric]
                row[f"test_{name}_mse_mean"] = float(hit["mean"].iloc[0]) if len(hit) else math.nan
                row[f"test_{name}_mse_std"] = float(hit["std"].iloc[0]) if len(hit) else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def lih_figure(forcefields: dict, reference, path: Path) -> None:
    """Fig. 4: every model's E(d) and -dE/dd on a dense grid of bond lengths, over the reference points."""
    bond = np.linalg.norm(reference.positions[:, 1] - reference.positions[:, 0], axis=-1)
    grid = np.linspace(bond.min(), bond.max(), 300)
    positions = np.zeros((len(grid), 2, 3))
    positions[:, 1, 2] = grid
    curves = {}
    for label, forcefield in forcefields.items():
        prediction = forcefield.predict(positions)
        curves[label] = (prediction.energies, figures.force_along_bond(positions, prediction.forces))
    reference_force = None if reference.forces is None else figures.force_along_bond(reference.positions,
                                                                                      reference.forces)
    figures.plot_curves("Li–H bond length (Å)", "LiH potential energy curve", grid, curves, bond,
                        reference.energies, reference_force, path)


def cut_figure(forcefields: dict, reference, path: Path) -> None:
    """Fig. 8: every model's energy and force on H_a1 along the water dimer cut, over the reference points.
    The grid is in the minimum's own frame (with SB(eps) a model is not rotation invariant)."""
    from siqml_cli.data.generate import cut_displacement, cut_geometry, force_along_cut

    x_ref = cut_displacement(reference.positions)
    grid = np.linspace(x_ref.min(), x_ref.max(), 200)
    positions = np.stack([cut_geometry(x) for x in grid])
    curves = {}
    for label, forcefield in forcefields.items():
        prediction = forcefield.predict(positions)
        curves[label] = (prediction.energies, force_along_cut(positions, prediction.forces))
    reference_force = None if reference.forces is None else force_along_cut(reference.positions, reference.forces)
    figures.plot_curves("H$_{a1}$ displacement along the cut (Å)", "Water dimer 1D cut", grid, curves, x_ref,
                        reference.energies, reference_force, path)


def _reference(chosen: dict[str, ArmRun]):
    """The whole data set the runs were trained on (train and test), for reference curves."""
    run = RunFolder(next(iter(chosen.values())).folder)
    return run.dataset(str(run.config().molecule.name))


def _test_predictions(run: ArmRun):
    """(reference, predicted energies, predicted forces) on the run's own test split."""
    folder = RunFolder(run.folder)
    test = folder.test_split(str(folder.config().molecule.name))
    prediction = _forcefield(run).predict(test.positions)
    return test, prediction.energies, prediction.forces
