"""`siqml report <sweep folder | run folders ...> [out=<dir>]`: one table and figures for many runs.

Finds the run folders (those with `run.json`) under the given paths, reads each run's resolved
config (`config.yaml`) and status/MSE (`run.json`), and writes

- `summary_runs.csv`: one row per run (complete, running, failed, interrupted; and, for a Hydra
  sweep folder, `missing` for each job of the sweep that left no run folder: it failed before
  training, or has not started yet);
- `summary.csv`, `summary.md`: runs grouped by the swept keys other than the seed, mean ± std
  over seeds of the train/test energy and force MSE, with n runs and n failed;
- `summary_mse.png`: test MSE of energies and forces vs the swept numeric value, one line per
  model (cf. the paper's Fig. 5 for a noise sweep).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.data.io import write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.report.tables import pipe_table
from siqml_cli.runs import CONFIG_FILE, RUN_FILE, RunFolder

SWEEP_FILE = "multirun.yaml"
ENERGY_MSE, FORCE_MSE = "energy MSE (eV^2)", "force MSE (eV^2/Å^2)"

# Always in the table, in this order (config keys, dotted); any other swept key is added after them.
BASE_KEYS = ["molecule.name", "symmetry.name", "model.layers", "model.blocks", "noise.sigma", "loss.force_weight",
             "train.steps", "seed"]
LABELS = {"molecule.name": "molecule", "symmetry.name": "symmetry"}
METRICS = {"train_energy_mse": ("train", ENERGY_MSE), "test_energy_mse": ("test", ENERGY_MSE),
           "train_force_mse": ("train", FORCE_MSE), "test_force_mse": ("test", FORCE_MSE)}
IGNORED_KEYS = {"resume"}
X_PREFERENCE = ["noise.sigma", "loss.force_weight", "model.layers", "model.blocks", "train.steps", "train.lr",
                "data.train_fraction"]
FAILED = ("failed", "interrupted", "missing")


def _label(key: str) -> str:
    return LABELS.get(key, key)


def _flatten(tree, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _load_yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    conf = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(conf, resolve=True)
    except Exception:  # an interpolation that only Hydra can resolve (${now:...}): keep it as text
        return OmegaConf.to_container(conf, resolve=False)


# ---------------------------------------------------------------------------------------- finding runs

def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Run folders (with run.json) and Hydra sweep folders (with multirun.yaml) under the paths."""
    runs, sweeps = [], []
    for path in paths:
        if not path.exists():
            raise SiqmlError(f"{path}: no such folder; give a sweep folder (results/multirun/<date>_<time>) "
                             f"or run folders")
        if not path.is_dir():
            raise SiqmlError(f"{path}: not a folder; give a sweep folder or run folders")
        for name, found in ((RUN_FILE, runs), (SWEEP_FILE, sweeps)):
            for file in sorted(path.rglob(name)):
                if not any(part.startswith(".") for part in file.relative_to(path).parts[:-1]):
                    found.append(file.parent.resolve())
    unique = lambda folders: list(dict.fromkeys(folders))  # noqa: E731
    return unique(runs), unique(sweeps)


def sweep_jobs(sweep: Path) -> list[list[str]]:
    """The overrides of every job of a basic-sweeper Hydra sweep, in job-number order ([] if unknown)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        conf = OmegaConf.load(sweep / SWEEP_FILE)
        target = OmegaConf.select(conf, "hydra.sweeper._target_") or ""
        if not target.endswith("BasicSweeper"):
            return []
        params = OmegaConf.select(conf, "hydra.sweeper.params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(OmegaConf.select(conf, "hydra.overrides.task"))
        return sweep_product(OverridesParser.create().parse_overrides(arguments))
    except Exception as exc:  # an unreadable multirun.yaml costs only the list of missing jobs
        warn(f"{sweep / SWEEP_FILE}: cannot list the sweep's jobs ({exc})")
        return []


def sweep_product(overrides) -> list[list[str]]:
    """The jobs of parsed overrides as Hydra's basic sweeper numbers them: the Cartesian product of each
    key's values (a later override of a key replaces an earlier one), the first key varying slowest."""
    choices: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ValueError(f"{override.input_line}: the basic sweeper takes only lists of values")
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


def _job_num(run: Path) -> int | None:
    path = run / ".hydra" / "hydra.yaml"
    if not path.exists():
        return None
    from omegaconf import OmegaConf

    try:
        return OmegaConf.select(OmegaConf.load(path), "hydra.job.num")
    except Exception:
        return None


def _config_from_overrides(overrides: list[str]) -> dict:
    """The composed train config of a job that left no folder; the overrides alone if it does not compose."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from siqml_cli.paths import CONFIG_PACKAGE

    try:
        with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        return _flatten(OmegaConf.to_container(cfg, resolve=True))
    except Exception:
        flat = {}
        for override in overrides:
            key, _, value = override.lstrip("+~").partition("=")
            if key in ("molecule", "symmetry"):
                key += ".name"
            flat[key] = _parse_value(value)
        return flat


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except Exception:
        return text


# ---------------------------------------------------------------------------------------- the table

def run_row(run: Path) -> tuple[dict, dict]:
    """(flat config, row of status and metrics) for one run folder."""
    record = RunFolder(run).record()
    config = _flatten(_load_yaml(run / CONFIG_FILE)) if (run / CONFIG_FILE).exists() else {}
    row = {"status": record.get("status", "unknown"), "error": record.get("error", "")}
    mse = record.get("mse") or {}
    for column, (split, metric) in METRICS.items():
        value = (mse.get(split) or {}).get(metric)
        row[column] = float(value) if value is not None else math.nan
    var_e, var_f = record.get("test_energy_variance"), record.get("test_force_variance")
    row["test_energy_mse_rel"] = row["test_energy_mse"] / var_e if var_e else math.nan
    row["test_force_mse_rel"] = row["test_force_mse"] / var_f if var_f else math.nan
    row["path"] = str(run)
    return config, row


def collect(paths: list[Path]) -> pd.DataFrame:
    """One row per run (and per missing sweep job), config columns first."""
    runs, sweeps = find_runs(paths)
    configs, rows = [], []
    for run in runs:
        try:
            config, row = run_row(run)
        except (OSError, ValueError, SiqmlError) as exc:
            warn(f"{run}: unreadable {RUN_FILE} or {CONFIG_FILE} ({exc}); skipped")
            continue
        if not config:
            warn(f"{run}: no config.yaml; its settings are unknown")
        if row["status"] == "complete" and math.isnan(row["test_energy_mse"]):
            warn(f"{run}: complete but without test MSE in run.json")
        configs.append(config)
        rows.append(row)
    for sweep in sweeps:
        found = {_job_num(r) for r in runs if sweep in r.parents}
        for num, overrides in enumerate(sweep_jobs(sweep)):
            if num in found:
                continue
            configs.append(_config_from_overrides(overrides))
            logs = " or .submitit/*/*_log.err" if (sweep / ".submitit").is_dir() else ""
            rows.append({"status": "missing", "error": "no run folder: the job failed before training "
                         f"(its error is in the sweep's output{logs}) or has not started; "
                         f"overrides: {' '.join(overrides)}",
                         **{c: math.nan for c in [*METRICS, "test_energy_mse_rel", "test_force_mse_rel"]},
                         "path": str(sweep / f"job {num}")})
    if not rows:
        raise SiqmlError(f"no runs under {', '.join(map(str, paths))}: no folder with {RUN_FILE}; give a sweep "
                         f"folder (results/multirun/<date>_<time>) or run folders")
    keys = BASE_KEYS + [k for k in swept_keys(configs) if k not in BASE_KEYS]
    table = pd.DataFrame([{_label(k): c.get(k) for k in keys} for c in configs])
    table = pd.concat([table, pd.DataFrame(rows)], axis=1)
    return table.sort_values([_label(k) for k in keys if table[_label(k)].notna().any()] + ["path"],
                             key=_sort_key, ignore_index=True)


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(lambda v: (0, float(v), "") if _is_number(v) else (1, 0.0, str(v)))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def swept_keys(configs: list[dict]) -> list[str]:
    """Config keys whose values differ between runs (a key missing from a run counts as a value)."""
    present = [c for c in configs if c]
    keys = dict.fromkeys(k for c in present for k in c)
    out = []
    for key in keys:
        if key in IGNORED_KEYS or (key.startswith("molecule.") and key != "molecule.name"):
            continue  # the rest of molecule.* follows from its name
        values = {_normalise(c.get(key)) for c in present}
        if len(values) > 1:
            out.append(key)
    return out


def _normalise(value):
    return float(value) if _is_number(value) else repr(value)


def group_columns(table: pd.DataFrame) -> list[str]:
    """Swept columns other than the seed: what the summary groups by."""
    config_columns = table.columns[:table.columns.get_loc("status")]
    return [c for c in config_columns if c != "seed" and table[c].map(_normalise).nunique(dropna=False) > 1]


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over the complete runs of each group, n runs, n failed, n running."""
    groups = group_columns(table)
    fixed = [_label(k) for k in ("molecule.name", "symmetry.name") if _label(k) not in groups]
    keys = [*fixed, *groups]
    rows = []
    grouped = table.groupby([table[c].map(_group_value) for c in keys], sort=False, dropna=False) if keys else \
        [((), table)]
    for _, part in grouped:
        done = part[(part["status"] == "complete") & np.isfinite(part["test_energy_mse"].astype(float))]
        row = {c: part[c].iloc[0] for c in keys}
        row.update(n=len(done), n_failed=int(part["status"].isin(FAILED).sum()),
                   n_running=int((part["status"] == "running").sum()),
                   seeds=" ".join(str(s) for s in sorted(part["seed"].dropna().unique(), key=_sort_value)))
        for column in [*METRICS, "test_energy_mse_rel", "test_force_mse_rel"]:
            values = done[column].astype(float).to_numpy()
            values = values[np.isfinite(values)]
            row[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else math.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(keys, key=_sort_key, ignore_index=True) if keys else out


def _group_value(value):
    return "<unset>" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _sort_value(value):
    return (0, float(value), "") if _is_number(value) else (1, 0.0, str(value))


# ---------------------------------------------------------------------------------------- writing

def _cell(value) -> str:
    """A config value as YAML writes it: null for unset (e.g. data.path null = the shipped data)."""
    return "null" if _group_value(value) == "<unset>" else str(value)


def _pm(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3e} ± {std:.1e}" if np.isfinite(std) and std > 0 else f"{mean:.3e}"


def to_markdown(summary: pd.DataFrame, table: pd.DataFrame, paths: list[Path], figure: str | None) -> str:
    groups = group_columns(table)
    keys = [c for c in summary.columns if c not in ("n", "n_failed", "n_running", "seeds")
            and not c.endswith(("_mean", "_std"))]
    metric_cols = [("test energy MSE (eV²)", "test_energy_mse"), ("test force MSE (eV²/Å²)", "test_force_mse"),
                   ("test E MSE/Var", "test_energy_mse_rel"), ("test F MSE/Var", "test_force_mse_rel"),
                   ("train energy MSE (eV²)", "train_energy_mse"), ("train force MSE (eV²/Å²)", "train_force_mse")]
    swept = ", ".join(f"`{c}`" for c in groups + (["seed"] if table["seed"].nunique() > 1 else []))
    lines = ["# Sweep summary", "",
             f"Runs under: {', '.join(f'`{p}`' for p in paths)}  ",
             f"{len(table)} runs: " + ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().items()) + "  ",
             f"Swept: {swept or 'nothing'}"
             "; mean ± std (sample std) over the complete runs of each group (seeds).", ""]
    groups_table = pd.DataFrame({
        **{k: summary[k].map(_cell) for k in keys},
        "n": summary["n"].astype(str),
        "n failed": [str(failed) + (f" (+{running} running)" if running else "")
                     for failed, running in zip(summary["n_failed"], summary["n_running"])],
        "seeds": summary["seeds"].astype(str),
        **{name: [_pm(m, s) for m, s in zip(summary[f"{c}_mean"], summary[f"{c}_std"])] for name, c in metric_cols}})
    lines.append(pipe_table(groups_table, numbers=list(groups_table.columns[len(keys):])))
    bad = table[table["status"] != "complete"]
    if len(bad):
        runs = pd.DataFrame({"status": bad["status"], "seed": bad["seed"].map(_cell),
                             "run": [f"`{p}`" for p in bad["path"]],
                             "error": [str(e or "").replace("|", "\\|").replace("\n", " ") for e in bad["error"]]})
        lines += ["", "## Runs not complete", "", pipe_table(runs, numbers=())]
    if figure:
        lines += ["", f"![test MSE]({figure})"]
    return "\n".join(lines) + "\n"


def x_key(summary: pd.DataFrame, groups: list[str]) -> str | None:
    """The swept value to put on the x axis: numeric, by preference (noise first); else the first swept."""
    numeric = [c for c in groups if summary[c].map(lambda v: _is_number(v) or v is None).all()
               and summary[c].map(_is_number).any()]
    for key in X_PREFERENCE:
        if _label(key) in numeric:
            return _label(key)
    return numeric[0] if numeric else (groups[0] if groups else None)


def report(paths: list[Path], out: Path | None) -> Path:
    from siqml_cli.report.experiment import is_experiment, write_experiment
    from siqml_cli.report.figures import plot_sweep_mse

    table = collect(paths)
    if out is None:
        out = paths[0] if len(paths) == 1 else \
            Path("results/report") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "summary_runs.csv", table.to_csv(index=False))
    summary = summarise(table)
    write_text_atomic(out / "summary.csv", summary.to_csv(index=False))
    groups = group_columns(table)
    x = x_key(summary, groups)
    figure = None
    if x is not None and (summary["n"] > 0).any():
        lines = [c for c in groups if c != x]
        plot_sweep_mse(summary, x, lines, out / "summary_mse.png")
        figure = "summary_mse.png"
    write_text_atomic(out / "summary.md", to_markdown(summary, table, paths, figure))
    print(to_markdown(summary, table, paths, None).rstrip())
    print(f"\nsummary: {out}/summary.md, summary.csv, summary_runs.csv" + (f", {figure}" if figure else ""))
    if len(paths) == 1 and is_experiment(paths[0]):
        write_experiment(paths[0])  # the paper-style table of an experiment preset, too
    if not (summary["n"] > 0).any():
        raise SiqmlError(f"none of the {len(table)} runs has test MSE (statuses: "
                         f"{', '.join(sorted(set(table['status'])))}); the run listing is in {out}/summary_runs.csv")
    return out


def warn(message: str) -> None:
    print(f"siqml report: warning: {message}", file=sys.stderr)


def main(argv: list[str]) -> None:
    """`siqml report PATH ... [out=DIR]`; SiqmlError for anything the user can fix."""
    parser = argparse.ArgumentParser(prog="siqml report", description=(
        "Summarise training runs: one row per run (status, MSE), mean ± std over seeds per setting of the "
        "swept keys, and a figure of test MSE vs the swept value."),
        epilog="examples:\n  siqml report results/multirun/2026-11-24_22-10-31\n"
               "  siqml report results/lih/full/run_a results/lih/full/run_b out=results/report/lih",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a sweep folder (results/multirun/<date>_<time>), run folders, or folders holding runs")
    parser.add_argument("--out", "-o", dest="out_flag", metavar="DIR", help="same as out=DIR")
    paths, out = [], None
    for arg in argv:
        if arg.startswith("out="):
            out = arg.split("=", 1)[1]
        else:
            paths.append(arg)
    if not paths:
        raise SiqmlError("no folder given; usage: siqml report <sweep folder | run folders ...> [out=<dir>]")
    args = parser.parse_args(paths)
    out = out or args.out_flag
    if out == "":
        raise SiqmlError("out= is empty; give a folder, e.g. out=results/report/noise")
    report([Path(p) for p in args.paths], Path(out) if out else None)
