"""Error tables in the paper's format (Tables 1-4: energy/force MSE per split), plus RMSE/MAE.

All inputs are in physical units: energies in eV, shape (N,); forces in eV/Å, shape (N, A, 3).
"""
from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from siqml_cli.data.io import write_text_atomic

ENERGY_MSE = "energy MSE (eV^2)"
FORCE_MSE = "force MSE (eV^2/Å^2)"
ENERGY_RMSE = "energy RMSE (meV)"
FORCE_RMSE = "force RMSE (meV/Å)"
ENERGY_MAE = "energy MAE (meV)"
FORCE_MAE = "force MAE (meV/Å)"  # over every force component, as MLIP papers (MACE's rMD17 numbers) report it
N_CONFIGS = "n configurations"
ROWS = [ENERGY_MSE, FORCE_MSE, ENERGY_RMSE, FORCE_RMSE, ENERGY_MAE, FORCE_MAE, N_CONFIGS]

#: the column of the low-energy test subset (`data.relevant_window`), the paper's "relevant" LiH test set
RELEVANT = "test_relevant"

REL_ENERGY = "energy MSE / Var(E)"
REL_FORCE = "force MSE / Var(F)"


def _mse(pred, ref) -> float:
    """Mean over every element, so the force MSE averages all N*A*3 components as in the paper."""
    pred, ref = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    return float(np.mean((pred - ref) ** 2))


def _split_column(data: dict) -> dict[str, float]:
    """One column of the table; force rows are NaN when a split has no force labels or predictions."""
    e_pred, e_ref = np.asarray(data["energy_pred"], float), np.asarray(data["energy_ref"], float)
    e_mse = _mse(e_pred, e_ref)
    f_pred, f_ref = data.get("forces_pred"), data.get("forces_ref")
    f_mse = _mse(f_pred, f_ref) if f_pred is not None and f_ref is not None else math.nan
    return {
        ENERGY_MSE: e_mse,
        FORCE_MSE: f_mse,
        ENERGY_RMSE: 1e3 * math.sqrt(e_mse),
        FORCE_RMSE: 1e3 * math.sqrt(f_mse),
        ENERGY_MAE: 1e3 * float(np.mean(np.abs(e_pred - e_ref))),
        FORCE_MAE: 1e3 * float(np.mean(np.abs(np.asarray(f_pred, float) - np.asarray(f_ref, float))))
        if f_pred is not None and f_ref is not None else math.nan,
        N_CONFIGS: float(e_ref.shape[0]),
    }


def mse_table(splits: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Rows = metrics, columns = splits (in the given order), like the paper's Tables 1-4."""
    columns = {name: _split_column(data) for name, data in splits.items()}
    return pd.DataFrame(columns, index=ROWS, columns=list(splits), dtype=float)


def reference_variances(splits: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Var(E_ref) and Var(F_ref) per split (F over all components), the baseline of a constant model."""
    out = {}
    for name, data in splits.items():
        f_ref = data.get("forces_ref")
        out[name] = {"energy": float(np.var(np.asarray(data["energy_ref"], float))),
                     "forces": float(np.var(np.asarray(f_ref, float))) if f_ref is not None else math.nan}
    return out


def relative_errors(table: pd.DataFrame, variances: dict[str, dict[str, float]]) -> pd.DataFrame:
    """MSE / Var(reference): < 1 means better than predicting the mean, so scales compare across molecules.

    `variances` maps split -> {"energy": Var(E_ref), "forces": Var(F_ref)} (see `reference_variances`).
    """
    rows = {}
    for split in table.columns:
        var = variances.get(split, {})
        var_e, var_f = var.get("energy", math.nan), var.get("forces", math.nan)
        rows[split] = {REL_ENERGY: _ratio(table.at[ENERGY_MSE, split], var_e),
                       REL_FORCE: _ratio(table.at[FORCE_MSE, split], var_f)}
    return pd.DataFrame(rows, index=[REL_ENERGY, REL_FORCE], columns=list(table.columns), dtype=float)


def _ratio(num, den) -> float:
    """NaN instead of inf/ZeroDivisionError when the reference is constant or missing."""
    if den is None or not np.isfinite(den) or den <= 0:
        return math.nan
    return float(num) / float(den)


def _format_cell(row: str, value) -> str:
    """Counts as integers, everything else in 3-significant-digit scientific notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if row == N_CONFIGS:
        return str(int(round(float(value))))
    return f"{float(value):.2e}"


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas through tabulate), metrics left and numbers right-aligned, cells as `_format_cell`
    writes them (numbers are not parsed again, so 1.20e-04 keeps its three digits)."""
    cells = pd.DataFrame([[_format_cell(row, value) for value in table.loc[row]] for row in table.index],
                         index=pd.Index(table.index, name="metric"), columns=table.columns)
    return cells.to_markdown(colalign=("left", *["right"] * len(table.columns)), disable_numparse=True) + "\n"


def pipe_table(cells: pd.DataFrame, numbers: Collection[str]) -> str:
    """A pipe table (pandas through tabulate) of cells already written as text, without the index: the columns
    named in `numbers` right-aligned, the others left-aligned; cells are not parsed again as numbers."""
    align = ["right" if column in numbers else "left" for column in cells.columns]
    return cells.to_markdown(index=False, colalign=align, disable_numparse=True)


def write_mse_tables(table: pd.DataFrame, folder: Path, stem: str = "mse") -> None:
    """Write `<stem>.csv` (full precision, for re-analysis) and `<stem>.md` (for reading)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"{stem}.csv", table.to_csv(index_label="metric"))
    write_text_atomic(folder / f"{stem}.md", to_markdown(table))
