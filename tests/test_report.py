"""Report module: MSE tables against hand-computed values, table files, and that every figure renders."""
import math
import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from siqml_cli.report import (
    force_along_bond,
    mse_table,
    plot_energy_parity,
    plot_force_parity,
    plot_lih_curve,
    plot_loss_curves,
    reference_variances,
    relative_errors,
    write_mse_tables,
)
from siqml_cli.report.tables import (
    ENERGY_MAE,
    ENERGY_MSE,
    ENERGY_RMSE,
    FORCE_MAE,
    FORCE_MSE,
    FORCE_RMSE,
    N_CONFIGS,
    REL_ENERGY,
    REL_FORCE,
    ROWS,
)


def _split(rng, n, atoms=2, e_err=0.01, f_err=0.05, forces=True):
    e_ref = rng.normal(-8.0, 0.1, n)
    out = {"energy_ref": e_ref, "energy_pred": e_ref + rng.normal(0, e_err, n)}
    if forces:
        f_ref = rng.normal(0, 1.0, (n, atoms, 3))
        out |= {"forces_ref": f_ref, "forces_pred": f_ref + rng.normal(0, f_err, f_ref.shape)}
    return out


@pytest.fixture
def splits():
    rng = np.random.default_rng(0)
    return {"train": _split(rng, 20), "test": _split(rng, 7)}


def test_known_values_exact():
    """Hand-checkable numbers: energy errors (0.1, -0.1, 0.2) eV, force errors 0.3 eV/Å on 1 of 6 components."""
    e_ref = np.array([1.0, 2.0, 3.0])
    f_ref = np.zeros((3, 2, 1))  # shape-agnostic: 6 components
    f_pred = f_ref.copy()
    f_pred[0, 0, 0] = 0.3
    table = mse_table({"train": {"energy_ref": e_ref, "energy_pred": e_ref + [0.1, -0.1, 0.2],
                                 "forces_ref": f_ref, "forces_pred": f_pred}})
    assert table.at[ENERGY_MSE, "train"] == pytest.approx(0.06 / 3)
    assert table.at[FORCE_MSE, "train"] == pytest.approx(0.09 / 6)
    assert table.at[ENERGY_RMSE, "train"] == pytest.approx(1e3 * math.sqrt(0.02))
    assert table.at[FORCE_RMSE, "train"] == pytest.approx(1e3 * math.sqrt(0.015))
    assert table.at[ENERGY_MAE, "train"] == pytest.approx(1e3 * 0.4 / 3)
    assert table.at[FORCE_MAE, "train"] == pytest.approx(1e3 * 0.3 / 6)
    assert table.at[N_CONFIGS, "train"] == 3


def test_mse_table_matches_independent_computation(splits):
    table = mse_table(splits)
    assert list(table.index) == ROWS
    assert list(table.columns) == ["train", "test"]
    for name, d in splits.items():
        de = d["energy_pred"] - d["energy_ref"]
        df = (d["forces_pred"] - d["forces_ref"]).ravel()
        assert df.size == len(de) * 2 * 3
        assert table.at[ENERGY_MSE, name] == pytest.approx(np.sum(de ** 2) / len(de), rel=1e-12)
        assert table.at[FORCE_MSE, name] == pytest.approx(np.sum(df ** 2) / df.size, rel=1e-12)
        assert table.at[ENERGY_RMSE, name] == pytest.approx(1000 * np.sqrt(np.sum(de ** 2) / len(de)))
        assert table.at[FORCE_RMSE, name] == pytest.approx(1000 * np.sqrt(np.sum(df ** 2) / df.size))
        assert table.at[ENERGY_MAE, name] == pytest.approx(1000 * np.sum(np.abs(de)) / len(de))
        assert table.at[FORCE_MAE, name] == pytest.approx(1000 * np.sum(np.abs(df)) / df.size)
        assert table.at[N_CONFIGS, name] == len(de)


def test_column_order_follows_input(splits):
    assert list(mse_table({"test": splits["test"], "train": splits["train"]}).columns) == ["test", "train"]


@pytest.mark.parametrize("missing", ["absent", "none", "pred_only_none"])
def test_missing_forces_give_nan_force_rows(splits, missing):
    d = dict(splits["test"])
    if missing == "absent":
        del d["forces_pred"], d["forces_ref"]
    elif missing == "none":
        d["forces_pred"] = d["forces_ref"] = None
    else:
        d["forces_pred"] = None
    table = mse_table({"train": splits["train"], "test": d})
    assert np.isnan(table.at[FORCE_MSE, "test"]) and np.isnan(table.at[FORCE_RMSE, "test"])
    assert np.isfinite(table.at[ENERGY_MSE, "test"]) and np.isfinite(table.at[FORCE_MSE, "train"])


def test_shape_mismatch_raises(splits):
    d = dict(splits["train"], forces_pred=splits["train"]["forces_pred"][:, :1])
    with pytest.raises(ValueError, match="shape"):
        mse_table({"train": d})


def test_relative_errors(splits):
    table = mse_table(splits)
    var = reference_variances(splits)
    rel = relative_errors(table, var)
    assert list(rel.index) == [REL_ENERGY, REL_FORCE]
    for name, d in splits.items():
        assert rel.at[REL_ENERGY, name] == pytest.approx(table.at[ENERGY_MSE, name] / np.var(d["energy_ref"]))
        assert rel.at[REL_FORCE, name] == pytest.approx(table.at[FORCE_MSE, name] / np.var(d["forces_ref"]))
    assert np.isnan(relative_errors(table, {"train": {"energy": 0.0}}).loc[REL_FORCE]).all()


def test_write_tables_roundtrip(tmp_path, splits):
    d = dict(splits["test"], forces_pred=None)
    table = mse_table({"train": splits["train"], "test": d})
    write_mse_tables(table, tmp_path / "out", stem="table1")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["table1.csv", "table1.md"]  # no temp files left behind
    assert all((tmp_path / "out" / f).stat().st_mode & 0o777 == 0o644 for f in files)
    back = pd.read_csv(tmp_path / "out" / "table1.csv", index_col=0, encoding="utf-8")
    assert list(back.index) == ROWS and list(back.columns) == ["train", "test"]
    np.testing.assert_allclose(back.to_numpy(float), table.to_numpy(float), rtol=1e-12, equal_nan=True)
    md = (tmp_path / "out" / "table1.md").read_text(encoding="utf-8")
    for row in ROWS:
        assert row in md
    assert f"{table.at[ENERGY_MSE, 'train']:.2e}" in md
    assert re.search(r"^\| n configurations +\| +20 \| +7 \|$", md, flags=re.MULTILINE)
    assert re.match(r"\| metric +\| +train \| +test \|\n\|:-+\|-+:\|-+:\|\n", md)


@pytest.fixture
def png(tmp_path):
    def check(path):
        assert path.exists() and path.stat().st_size > 0
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0  # not a blank canvas
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # temp file replaced
        assert path.stat().st_mode & 0o777 == 0o644
    return check


def test_plot_loss_curves(tmp_path, png):
    steps = np.arange(50)
    metrics = pd.DataFrame({"step": steps, "loss": np.exp(-steps / 10) + 1e-3,
                            "energy_loss": np.exp(-steps / 10), "force_loss": np.nan})
    path = tmp_path / "a" / "loss.png"
    plot_loss_curves(metrics, path)
    png(path)
    plot_loss_curves(metrics.drop(columns="force_loss"), path)  # absent column, overwrite in place
    png(path)


def test_plot_parity(tmp_path, splits, png):
    pred = {k: v["energy_pred"] for k, v in splits.items()}
    ref = {k: v["energy_ref"] for k, v in splits.items()}
    plot_energy_parity(pred, ref, tmp_path / "e" / "energy.png")
    png(tmp_path / "e" / "energy.png")
    fpred = {k: v["forces_pred"] for k, v in splits.items()}
    fref = {k: v["forces_ref"] for k, v in splits.items()}
    plot_force_parity(fpred, fref, tmp_path / "f" / "forces.png")
    png(tmp_path / "f" / "forces.png")


def test_force_along_bond():
    pos = np.array([[[0, 0, 0], [0, 0, 1.6]], [[1, 1, 1], [1, 2.5, 1]]], float)
    slope = np.array([0.3, -0.2])  # dE/dr; forces as in data.generate.label_lih
    unit = (pos[:, 1] - pos[:, 0]) / np.linalg.norm(pos[:, 1] - pos[:, 0], axis=-1, keepdims=True)
    forces = np.stack([slope[:, None] * unit, -slope[:, None] * unit], axis=1)
    np.testing.assert_allclose(force_along_bond(pos, forces), -slope)


@pytest.mark.parametrize("with_forces", [True, False])
def test_plot_lih_curve(tmp_path, png, with_forces):
    morse = lambda r: -8.0 + 2.5 * (1 - np.exp(-1.2 * (r - 1.6))) ** 2  # noqa: E731
    dmorse = lambda r: -2 * 2.5 * 1.2 * (1 - np.exp(-1.2 * (r - 1.6))) * np.exp(-1.2 * (r - 1.6))  # noqa: E731
    r_ref, grid = np.linspace(1.0, 4.0, 15), np.linspace(1.0, 4.0, 200)
    kwargs = dict(forces_ref=-dmorse(r_ref), forces_pred_grid=-dmorse(grid) * 1.05) if with_forces else {}
    path = tmp_path / "lih.png"
    plot_lih_curve(r_ref, morse(r_ref), grid, morse(grid) + 0.01, path, bond_train=r_ref[::3], **kwargs)
    png(path)
