"""Figures for training runs: loss curves, energy/force parity plots, the LiH bond curve and the water
dimer cut (cf. Figs. 4, 8).

Inputs are in physical units (eV, eV/Å, Å); errors are shown in meV and meV/Å. Figures are
`matplotlib.figure.Figure` objects drawn by the Agg canvas, not pyplot's: they need no display,
leave the caller's backend and pyplot's figure list alone, and are freed with their last reference.
Saves are atomic (temp file + os.replace).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from siqml_cli.data.io import atomic_path

DPI = 150
COMPONENTS = ("x", "y", "z")


def _rmse_milli(pred, ref) -> float:
    """RMSE in milli-units (meV or meV/Å), the scale chemists quote."""
    return 1e3 * float(np.sqrt(np.mean((np.asarray(pred, float) - np.asarray(ref, float)) ** 2)))


def _subplots(*args, figsize: tuple[float, float], **kwargs):
    """`pyplot.subplots` without pyplot: a figure on its own Agg canvas, and its axes."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kwargs)


def _save(fig, path) -> None:
    """Atomic PNG save, so a crash or a concurrent reader never sees a truncated image."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")


def _relative_energy_label(which: str, zero: float) -> str:
    """Energies are drawn relative to the lowest reference energy: absolute DFT energies (~ -4151 eV for
    the dimer) differ only in the last digits, and their tick labels would overlap."""
    return f"{which} energy − ({zero:.3f} eV)"


def _diagonal(ax, values) -> None:
    """y = x over the data range, with equal limits so deviations from parity are not distorted."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")


def plot_loss_curves(metrics: pd.DataFrame, path) -> None:
    """Total/energy/force loss vs step on a log axis; columns that are absent or all NaN are skipped."""
    fig, ax = _subplots(figsize=(6, 4))
    steps = np.asarray(metrics["step"], float)
    any_positive = False
    for col, label in (("loss", "total"), ("energy_loss", "energy"), ("force_loss", "force")):
        if col not in metrics:
            continue
        y = np.asarray(metrics[col], float)
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax.plot(steps[ok], y[ok], label=label, lw=1.2)
            any_positive = True
    if any_positive:
        ax.set_yscale("log")
        ax.legend()
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (scaled units)")
    ax.set_title("Training loss")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


def plot_energy_parity(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], path) -> None:
    """Predicted vs reference energy per split; the legend carries each split's RMSE in meV."""
    fig, ax = _subplots(figsize=(5, 5))
    values = []
    zero = min(float(np.min(e)) for e in ref.values())
    for split, e_pred in pred.items():
        e_pred, e_ref = np.asarray(e_pred, float).ravel(), np.asarray(ref[split], float).ravel()
        ax.scatter(e_ref - zero, e_pred - zero, s=14, alpha=0.7,
                   label=f"{split} (RMSE {_rmse_milli(e_pred, e_ref):.3g} meV)")
        values += [e_pred - zero, e_ref - zero]
    _diagonal(ax, np.concatenate(values))
    ax.set_xlabel(_relative_energy_label("reference", zero))
    ax.set_ylabel(_relative_energy_label("predicted", zero))
    ax.set_title("Energy parity")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def plot_force_parity(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], path) -> None:
    """One panel per Cartesian component (anisotropic errors show up); legends give per-component RMSE,
    the title the overall RMSE per split. Splits whose forces are None are skipped."""
    splits = [s for s in pred if pred[s] is not None and ref.get(s) is not None]
    fig, axes = _subplots(1, 3, figsize=(13, 4.6))
    overall = []
    for split in splits:
        f_pred = np.asarray(pred[split], float).reshape(-1, 3)
        f_ref = np.asarray(ref[split], float).reshape(-1, 3)
        overall.append(f"{split} {_rmse_milli(f_pred, f_ref):.3g}")
        for k, ax in enumerate(axes):
            ax.scatter(f_ref[:, k], f_pred[:, k], s=8, alpha=0.6, rasterized=True,
                       label=f"{split} (RMSE {_rmse_milli(f_pred[:, k], f_ref[:, k]):.3g} meV/Å)")
    for k, ax in enumerate(axes):
        if splits:
            _diagonal(ax, np.concatenate([np.asarray(d[s], float).reshape(-1, 3)[:, k]
                                          for s in splits for d in (pred, ref)]))
            ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel(f"reference $F_{COMPONENTS[k]}$ (eV/Å)")
        ax.set_ylabel(f"predicted $F_{COMPONENTS[k]}$ (eV/Å)")
        ax.grid(True, alpha=0.3)
    fig.suptitle("Force parity" + (f" — overall RMSE (meV/Å): {', '.join(overall)}" if overall else ""))
    fig.tight_layout()
    _save(fig, path)


def force_along_bond(positions: np.ndarray, forces: np.ndarray) -> np.ndarray:
    """-dE/dr for a diatomic, (N, 2, 3) positions/forces -> (N,): half the difference of the two atoms'
    forces projected on the unit vector from atom 0 to atom 1 (equals F_1·û when F_0 = -F_1)."""
    bond = positions[:, 1] - positions[:, 0]
    unit = bond / np.linalg.norm(bond, axis=-1, keepdims=True)
    return 0.5 * np.einsum("ni,ni->n", forces[:, 1] - forces[:, 0], unit)


def plot_lih_curve(bond_ref, energy_ref, bond_grid, energy_pred_grid, path,
                   forces_ref=None, forces_pred_grid=None, bond_train=None) -> None:
    """Learned E(r) (line) against reference points, plus -dE/dr in a second panel if forces are given.

    Forces are the 1D force along the bond, -dE/dr in eV/Å, shape (N,) (see `force_along_bond`).
    `bond_train` marks which bond lengths the model was trained on (vertical ticks on the energy panel).
    """
    _plot_curve(bond_ref, energy_ref, bond_grid, energy_pred_grid, path, forces_ref, forces_pred_grid, bond_train,
                "LiH potential energy curve", "Li–H bond length (Å)", "force along bond, $-dE/dr$ (eV/Å)", "model")


def plot_cut_curve(disp_ref, energy_ref, disp_grid, energy_pred_grid, path,
                   forces_ref=None, forces_pred_grid=None, disp_train=None) -> None:
    """The water dimer 1D cut (Fig. 8): energy and -dE/dx of H_a1 against its displacement along x.

    The model line is predicted on cut configurations in the reference frame of the minimum, not
    randomly rotated like the data: with SB(eps) the model is not invariant, and this is its
    prediction in that one orientation.
    """
    _plot_curve(disp_ref, energy_ref, disp_grid, energy_pred_grid, path, forces_ref, forces_pred_grid, disp_train,
                "Water dimer 1D cut", "H$_{a1}$ displacement along x (Å)",
                "force on H$_{a1}$ along x, $-dE/dx$ (eV/Å)", "model (reference frame)")


def _plot_curve(x_ref, energy_ref, x_grid, energy_pred_grid, path, forces_ref, forces_pred_grid, x_train,
                title: str, xlabel: str, force_label: str, model_label: str) -> None:
    with_forces = forces_ref is not None or forces_pred_grid is not None
    fig, axes = _subplots(2 if with_forces else 1, 1, sharex=True, squeeze=False,
                          figsize=(6, 6.5 if with_forces else 4))
    ax_e = axes[0, 0]
    ax_e.plot(x_grid, energy_pred_grid, color="C0", lw=1.5, label=model_label)
    ax_e.scatter(x_ref, energy_ref, color="k", s=14, zorder=3, label="reference")
    if x_train is not None:  # on every panel: errors between the marks are interpolation
        for ax in axes[:, 0]:
            ax.plot(np.asarray(x_train, float).ravel(), np.full(np.size(x_train), 0.02), "|", color="C2",
                    ms=10, transform=ax.get_xaxis_transform(), label="training points")
    ax_e.set_ylabel("energy (eV)")
    ax_e.set_title(title)
    ax_e.legend()
    ax_e.grid(True, alpha=0.3)
    if with_forces:
        ax_f = axes[1, 0]
        if forces_pred_grid is not None:
            ax_f.plot(x_grid, np.asarray(forces_pred_grid, float).ravel(), color="C0", lw=1.5, label=model_label)
        if forces_ref is not None:
            ax_f.scatter(x_ref, np.asarray(forces_ref, float).ravel(), color="k", s=14, zorder=3,
                         label="reference")
        ax_f.axhline(0.0, color="0.5", lw=0.8)
        ax_f.set_ylabel(force_label)
        ax_f.legend()
        ax_f.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    _save(fig, path)


def plot_md_energies(energies: pd.DataFrame, path) -> None:
    """Kinetic, potential and total energy over time, relative to the start (meV), and temperature."""
    t = energies["time_fs"].to_numpy() / 1000
    fig, (ax_e, ax_t) = _subplots(2, 1, sharex=True, figsize=(6, 5.5))
    for column, label in (("ekin_eV", "kinetic"), ("epot_eV", "potential"), ("etot_eV", "total")):
        values = energies[column].to_numpy()
        ax_e.plot(t, (values - values[0]) * 1e3, label=label, lw=1.2 if column == "etot_eV" else 0.8)
    ax_e.set_ylabel("energy − initial (meV)")
    ax_e.legend()
    ax_e.grid(True, alpha=0.3)
    ax_t.plot(t, energies["temperature_K"], color="C3", lw=0.8)
    ax_t.set_ylabel("temperature (K)")
    ax_t.set_xlabel("time (ps)")
    ax_t.grid(True, alpha=0.3)
    _save(fig, path)


def plot_sweep_mse(summary: pd.DataFrame, x: str, lines: list[str], path) -> None:
    """Test MSE of energies and of forces vs a swept value (cf. the paper's Fig. 5), mean ± std over seeds.

    `summary` has one row per setting: the columns `x` and `lines`, `n` (complete runs) and
    `test_energy_mse_mean/_std`, `test_force_mse_mean/_std`. One line per combination of the `lines`
    columns (e.g. per symmetry). A numeric x with only positive values gets a log axis; a zero (noise-free
    sigma=0) is drawn as a dashed horizontal line of the same colour, so the log axis shows the rest.
    A non-numeric x is drawn at evenly spaced categories.
    """
    data = summary[summary["n"] > 0]
    xs = data[x]
    numeric = bool(len(xs)) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in xs)
    categories = list(dict.fromkeys(map(str, xs))) if not numeric else []
    positive = numeric and (np.asarray(xs, float) > 0).sum() >= 2
    fig, axes = _subplots(1, 2, figsize=(11, 4.2))
    groups = data.groupby([data[c].astype(str) for c in lines], sort=False) if lines else [((), data)]
    for i, (name, part) in enumerate(groups):
        name = name if isinstance(name, tuple) else (name,)
        label = ", ".join(f"{c}={v}" for c, v in zip(lines, name)) or None
        for ax, kind in zip(axes, ("energy", "force")):
            mean = part[f"test_{kind}_mse_mean"].to_numpy(float)
            std = np.nan_to_num(part[f"test_{kind}_mse_std"].to_numpy(float))
            if numeric:
                xv = part[x].to_numpy(float)
                order = np.argsort(xv)
                xv, mean, std = xv[order], mean[order], std[order]
            else:
                xv = np.array([categories.index(str(v)) for v in part[x]], float)
            if positive:
                for x0, m0, s0 in zip(xv[xv <= 0], mean[xv <= 0], std[xv <= 0]):
                    ax.axhline(m0, color=f"C{i}", ls="--", lw=1,
                               label=f"{label + ', ' if label else ''}{x}={x0:g} (± {s0:.1e})")
                keep = xv > 0
                xv, mean, std = xv[keep], mean[keep], std[keep]
            lower = np.minimum(std, mean * (1 - 1e-3))  # error bars stay on a log axis
            ax.errorbar(xv, mean, yerr=[lower, std], marker="o", ms=4, capsize=3, color=f"C{i}", label=label)
    for ax, kind, unit in zip(axes, ("energy", "force"), ("eV²", "eV²/Å²")):
        if positive:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(categories)), categories)
        values = data[f"test_{kind}_mse_mean"].to_numpy(float)
        if (values[np.isfinite(values)] > 0).all() and np.isfinite(values).any():
            ax.set_yscale("log")
        ax.set_xlabel(x + (" (eV)" if x == "noise.sigma" else ""))
        ax.set_ylabel(f"test {kind} MSE ({unit})")
        ax.set_title(f"Test {kind} MSE (mean ± std over seeds)")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    handles, names = axes[0].get_legend_handles_labels()
    if any(names):  # both panels have the same lines: one legend below them, clear of the data
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)
    _save(fig, path)


def plot_curves(xlabel: str, title: str, grid, curves: dict, x_ref, energy_ref, force_ref, path) -> None:
    """Several models' energy and force along one coordinate against the reference points (Figs. 4, 8).

    `curves` maps a model's label to (energies on `grid`, force along the coordinate on `grid`), in eV and
    eV/Å; the reference is given at `x_ref` (force panel drawn when `force_ref` is not None).
    """
    with_forces = force_ref is not None
    fig, axes = _subplots(2 if with_forces else 1, 1, sharex=True, squeeze=False,
                          figsize=(6.5, 6.5 if with_forces else 4))
    for i, (label, (energy, force)) in enumerate(curves.items()):
        axes[0, 0].plot(grid, energy, color=f"C{i}", lw=1.5, label=label)
        if with_forces:
            axes[1, 0].plot(grid, force, color=f"C{i}", lw=1.5, label=label)
    axes[0, 0].scatter(x_ref, energy_ref, color="k", s=10, zorder=3, label="reference")
    axes[0, 0].set_ylabel("energy (eV)")
    axes[0, 0].set_title(title)
    if with_forces:
        axes[1, 0].scatter(x_ref, force_ref, color="k", s=10, zorder=3, label="reference")
        axes[1, 0].axhline(0.0, color="0.5", lw=0.8)
        axes[1, 0].set_ylabel("force along the coordinate (eV/Å)")
    for ax in axes[:, 0]:
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    _save(fig, path)


def plot_model_parity(predictions: dict, path) -> None:
    """Predicted vs reference test energies (top) and force components (bottom), one column per model
    (Figs. 6, 7). `predictions` maps a label to (reference Dataset, energies (N,), forces (N, A, 3))."""
    n = len(predictions)
    with_forces = all(ref.forces is not None for ref, _, _ in predictions.values())
    fig, axes = _subplots(2 if with_forces else 1, n, squeeze=False, figsize=(4 * n, 7.5 if with_forces else 4))
    for k, (label, (ref, energies, forces)) in enumerate(predictions.items()):
        ax = axes[0, k]
        zero = float(np.min(ref.energies))
        ax.scatter(ref.energies - zero, energies - zero, s=6, alpha=0.6)
        _diagonal(ax, np.concatenate([ref.energies, energies]) - zero)
        ax.set_title(f"{label}\nenergy RMSE {_rmse_milli(energies, ref.energies):.1f} meV")
        ax.set_xlabel(_relative_energy_label("reference", zero))
        ax.set_ylabel(_relative_energy_label("predicted", zero))
        if with_forces:
            ax = axes[1, k]
            ax.scatter(ref.forces.ravel(), forces.ravel(), s=3, alpha=0.4)
            _diagonal(ax, np.concatenate([ref.forces.ravel(), forces.ravel()]))
            ax.set_title(f"force RMSE {_rmse_milli(forces, ref.forces):.0f} meV/Å")
            ax.set_xlabel("reference force component (eV/Å)")
            ax.set_ylabel("predicted force component (eV/Å)")
        for ax in axes[:, k]:
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
