"""One training run, from a composed config to a complete results folder.

The run folder (`siqml_cli.runs.RunFolder`) is marked complete only after every table, figure and
the trained weights are written; until then it says "running" (or "failed"/"interrupted"), and its
checkpoint holds the last state that `resume=<folder>` continues from.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from siqml_cli import molecules
from siqml_cli.config import ModelConfig, ModelFamily, TrainCommand, parse
from siqml_cli.data import Dataset, read_dataset, write_predictions
from siqml_cli.data.io import write_text_atomic
from siqml_cli.domain import Domain
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField, LabelScaler
from siqml_cli.models import TwinSpec, build_model
from siqml_cli.paths import resolve_input
from siqml_cli.report import figures, tables
from siqml_cli.report.tables import RELEVANT
from siqml_cli.runs import METRICS_FILE, TEST_PREDICTIONS_FILE, RunFolder, Split, model_identity
from siqml_cli.simulate import make_simulator
from siqml_cli.simulate.resources import batch_size, check_compile_size, check_resources
from siqml_cli.train.loop import LoopSettings, TrainingSet, run_loop


def split_indices(n: int, train_fraction: float, seed: int) -> Split:
    """Seeded random train/test split; both sides non-empty."""
    order = np.random.default_rng((seed, 1)).permutation(n)
    n_train = min(max(int(round(train_fraction * n)), 1), n - 1)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:]))


def noisy_energies(energies: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Eq. 20: E + N(0, sigma^2) on the training labels only."""
    if sigma == 0:
        return energies.copy()
    return energies + np.random.default_rng((seed, 2)).normal(0.0, sigma, size=energies.shape)


def loop_settings(settings: TrainCommand) -> LoopSettings:
    """What the training loop needs of the checked config."""
    train = settings.train
    return LoopSettings(steps=train.steps, lr=train.lr, batch_size=train.batch_size,
                        force_weight=settings.loss.force_weight, schedule=train.schedule.value,
                        lr_final_fraction=train.lr_final_fraction, checkpoint_every=train.checkpoint_every,
                        seed=settings.seed)


def load_training_data(cfg: DictConfig, molecule: str, need_forces: bool) -> Dataset:
    path = resolve_input(OmegaConf.select(cfg, "data.path") or cfg.molecule.data)
    shipped = molecules.species_of(molecule) == tuple(cfg.molecule.species)  # named in the message
    data = read_dataset(path, molecule if shipped else tuple(cfg.molecule.species),
                        energy_key=OmegaConf.select(cfg, "data.energy_key", default=None),
                        forces_key=OmegaConf.select(cfg, "data.forces_key", default=None))
    if not data.has_labels:
        raise SiqmlError(f"{path}: has no energies to train on; label it first with `siqml data +molecule={molecule} "
                         f"input={path} out=<labelled.h5>`")
    if need_forces and data.forces is None:
        raise SiqmlError(f"{path}: has no forces but loss.force_weight > 0; use loss.force_weight=0 "
                         "or a file with forces")
    if len(data) < 2:
        raise SiqmlError(f"{path}: needs at least 2 configurations to split into train and test")
    return data


@dataclass(frozen=True)
class RunSettings:
    """Every value of a training config, checked: what `train_run` needs besides the data."""

    loop: LoopSettings
    sigma: float
    train_fraction: float
    spec: object  # the model (a siVQLM ModelSpec or a generic VQLM)
    precision: str
    backend: object
    output_range: tuple[float, float]  # the interval of the observable the training energies map onto
    window: float | None


def checked_settings(cfg: DictConfig) -> RunSettings:
    """The config's values, or a SiqmlError naming the first bad one; cheap, so `siqml` checks every
    run's (and every job of a sweep's) values before any starts. The keys, types and ranges are the
    schema's (`siqml_cli.config.TrainCommand`); what depends on the model is checked here, its compile size
    included (so that a sweep with one model too large to compile is refused before any job starts)."""
    settings = parse(TrainCommand, cfg)
    for key, value, default in (("backend.symmetrize", settings.backend.symmetrize, 1),
                                ("backend.dry_run", settings.backend.dry_run, False)):
        if value != default:
            raise SiqmlError(f"{key} applies to `siqml evaluate` and `siqml submit`, not to training; drop it")
    molecule = molecules.from_settings(settings.molecule)
    spec = build_model(molecule.name, settings.symmetry.name, settings.model.layers, settings.model.blocks,
                       {**settings.model.options(), **molecule.model_options()})
    check_compile_size(spec)
    if isinstance(spec, TwinSpec) and settings.backend.kind != "statevector":
        raise SiqmlError("the classical twin (model.family=twin) is a classical network with no circuit; train it "
                         f"with backend=statevector, not backend={settings.backend.kind}")
    return RunSettings(loop=loop_settings(settings), sigma=settings.noise.sigma,
                       train_fraction=settings.data.train_fraction, spec=spec, precision=settings.train.precision.value,
                       backend=settings.backend, output_range=output_interval(settings.model, spec),
                       window=settings.data.relevant_window)


def describe_model(spec) -> str:
    """One line on the model about to be trained: its kind, qubits and trainable weights."""
    if isinstance(spec, TwinSpec):
        return (f"classical twin of the siVQLM with symmetry={spec.symmetry}, D={spec.layers}, B={spec.blocks} "
                f"({spec.sivqlm.n_trainable()} trainable weights): {spec.n_features} features, {spec.hidden} hidden "
                f"units, {spec.n_trainable()} trainable weights")
    kind = (f"generic VQLM ({spec.features} features)" if spec.symmetry == "none"
            else f"siVQLM ({'built automatically' if spec.options().get('construction') == 'auto' else 'hand-made'})")
    return (f"{kind}, symmetry={spec.symmetry}, {spec.n_qubits} qubits, D={spec.layers}, B={spec.blocks}, "
            f"{spec.n_trainable()} trainable weights")


def output_interval(model: ModelConfig, spec) -> tuple[float, float]:
    """`model.output_range` [low, high] if set, else the observable's spectral range shrunk by
    `model.output_margin` at each end: where the MinMax-scaled training energies go. `model.output_range` is an
    interval of a circuit's observable; the classical twin, which has none, keeps the margin's interval."""
    low, high = spec.observable_range
    if model.output_range is None or isinstance(spec, TwinSpec):
        margin = model.output_margin
        return low + margin * (high - low), high - margin * (high - low)
    a, b = model.output_range
    if not low <= a < b <= high:
        raise SiqmlError(f"model.output_range must satisfy {low:.4g} <= low < high <= {high:.4g} (the observable's "
                         f"spectrum), got [{a}, {b}]")
    return a, b


def train_run(cfg: DictConfig, folder: Path | RunFolder, resume: bool = False, progress: bool = True) -> dict:
    """Train, evaluate and write the results folder; returns the summary written to run.json."""
    run = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    if OmegaConf.select(cfg, "model.family") == ModelFamily.mace.value:
        from siqml_cli.train.mace import train_mace_run

        return train_mace_run(cfg, run, resume=resume, progress=progress)
    molecule = cfg.molecule.name
    checked = checked_settings(cfg)
    settings, sigma, spec, precision = checked.loop, checked.sigma, checked.spec, checked.precision
    train_fraction, backend, window = checked.train_fraction, checked.backend, checked.window
    identity = model_identity(spec, checked.output_range)
    twinned = {"sivqlm_n_trainable": spec.sivqlm.n_trainable()} if isinstance(spec, TwinSpec) else {}
    data = load_training_data(cfg, molecule, settings.force_weight > 0)
    print(f"{molecule}: {describe_model(spec)}", flush=True)
    if backend.kind != "statevector" and resume:
        raise SiqmlError("a run trained on a Qiskit backend cannot be resumed; start it again")

    split = split_indices(len(data), train_fraction, settings.seed)
    train_set, test_set = data.subset(split.train), data.subset(split.test)
    spec = spec.fit(train_set.positions)  # the generic VQLM's feature scaling; a siVQLM has nothing to fit
    labels = noisy_energies(train_set.energies, sigma, settings.seed)
    scaler = LabelScaler.fit(labels, checked.output_range, margin=0.0)
    forces = train_set.forces / scaler.slope if settings.force_weight > 0 else None
    positions, energies, forces = spec.training_copies(train_set.positions, scaler.to_model(labels), forces)
    training = TrainingSet(positions, energies, np.zeros_like(positions) if forces is None else forces)
    if backend.kind == "statevector":  # before any file of the run is written
        check_resources(spec, batch_size(settings.batch_size, len(positions)), precision, settings.force_weight > 0)
    domain = Domain.from_dataset(spec.species, train_set.positions)

    with run.training(OmegaConf.to_yaml(cfg, resolve=True), split, str(data.source), identity,
                      molecule=molecule, symmetry=spec.symmetry, data=str(data.source), n_train=len(split.train),
                      n_test=len(split.test), n_trainable=spec.n_trainable(), **twinned):
        sim = make_simulator(spec, precision)
        if progress and backend.kind == "statevector":
            print(f"simulator: {sim.plan_summary(batch_size(settings.batch_size, len(positions)))}", flush=True)
        if backend.kind == "statevector":
            trained = run_loop(sim, training, spec.init_weights(settings.seed), settings, run, resume=resume,
                               progress=progress)
        else:  # EstimatorQNN with parameter-shift gradients on a Qiskit backend
            from siqml_cli.train.qnn import run_qnn_loop

            trained = run_qnn_loop(spec, training, spec.init_weights(settings.seed), settings, backend)
        weights, metrics = trained.weights, trained.metrics

        forcefield = ForceField(spec, weights, scaler, simulator=sim if precision == "double" else None,
                                domain=domain)
        run.save_forcefield(forcefield, data=str(data.source), noise_sigma=sigma, seed=settings.seed, **twinned)
        splits = {"train": train_set, "test": test_set}
        if window is not None:
            splits[RELEVANT] = relevant_subset(test_set, train_set, window)
        summary = write_results(run, forcefield, metrics, splits, molecule)
        summary.update(train_seconds=round(trained.seconds, 3), seconds_per_step=trained.seconds_per_step,
                       steps=settings.steps,
                       machine=platform.processor() or platform.machine())
        run.complete(**summary)
    return summary


def relevant_subset(test: Dataset, train: Dataset, window: float) -> Dataset:
    """Test configurations within `window` eV of the lowest training energy: the low-energy region MD
    visits (the paper's "relevant" LiH test set, which drops the high-energy short-bond points)."""
    keep = np.flatnonzero(test.energies <= np.min(train.energies) + window)
    if len(keep) == 0:
        raise SiqmlError(f"no test configuration lies within data.relevant_window={window} eV of the lowest "
                         "training energy; widen the window or set it to null")
    return test.subset(keep)


def write_results(run: RunFolder, forcefield: ForceField, metrics: pd.DataFrame, splits: dict[str, Dataset],
                  molecule: str) -> dict:
    """Predictions, the MSE tables of the paper's form, and the figures."""
    folder = run.path
    write_text_atomic(run.file(METRICS_FILE), metrics.to_csv(index=False))
    results, predictions = {}, {}
    for name, part in splits.items():
        predictions[name] = prediction = forcefield.predict(part.positions)
        results[name] = {"energy_pred": prediction.energies, "energy_ref": part.energies,
                         "forces_pred": prediction.forces, "forces_ref": part.forces}
    test = splits["test"]
    write_predictions(run.file(TEST_PREDICTIONS_FILE), test, predictions["test"])
    table = tables.mse_table(results)
    tables.write_mse_tables(table, folder)
    figures.plot_loss_curves(metrics, folder / "loss.png")
    shown = {k: r for k, r in results.items() if k != RELEVANT}  # the subset would only repeat test points
    figures.plot_energy_parity({k: r["energy_pred"] for k, r in shown.items()},
                               {k: r["energy_ref"] for k, r in shown.items()}, folder / "energy_parity.png")
    if all(r["forces_ref"] is not None for r in shown.values()):
        figures.plot_force_parity({k: r["forces_pred"] for k, r in shown.items()},
                                  {k: r["forces_ref"] for k, r in shown.items()}, folder / "force_parity.png")
    if molecule == "lih":
        plot_lih(folder, forcefield, splits)
    if molecule == "water_dimer_cut":
        plot_cut(folder, forcefield, splits)
    return {"mse": {col: {row: _json_number(table.loc[row, col]) for row in table.index} for col in table.columns},
            "test_energy_variance": float(np.var(test.energies)),
            "test_force_variance": float(np.var(test.forces)) if test.forces is not None else None}


def plot_lih(folder: Path, forcefield: ForceField, splits: dict[str, Dataset]) -> None:
    """The learned curve E(d) and the force along the bond, against the reference points."""
    test, train = splits["test"], splits["train"]
    bond = lambda p: np.linalg.norm(p[:, 1] - p[:, 0], axis=-1)  # noqa: E731
    d_all = np.concatenate([bond(train.positions), bond(test.positions)])
    grid = np.linspace(d_all.min(), d_all.max(), 200)
    positions = np.zeros((len(grid), 2, 3))
    positions[:, 1, 2] = grid
    prediction = forcefield.predict(positions)
    energy, forces = prediction.energies, prediction.forces
    ref_pos = np.concatenate([train.positions, test.positions])
    ref_force = None if test.forces is None else figures.force_along_bond(
        ref_pos, np.concatenate([train.forces, test.forces]))
    figures.plot_lih_curve(d_all, np.concatenate([train.energies, test.energies]), grid, energy,
                           folder / "lih_curve.png",
                           forces_ref=ref_force, forces_pred_grid=figures.force_along_bond(positions, forces),
                           bond_train=bond(train.positions))


def plot_cut(folder: Path, forcefield: ForceField, splits: dict[str, Dataset]) -> None:
    """The learned water dimer cut and the force along it (Fig. 8), against the reference points."""
    from siqml_cli.data.generate import cut_displacement, cut_geometry, force_along_cut

    test, train = splits["test"], splits["train"]
    ref_pos = np.concatenate([train.positions, test.positions])
    x_ref = cut_displacement(ref_pos)
    grid = np.linspace(x_ref.min(), x_ref.max(), 200)
    positions = np.stack([cut_geometry(x) for x in grid])
    prediction = forcefield.predict(positions)
    energy, forces = prediction.energies, prediction.forces
    ref_force = None if test.forces is None else force_along_cut(ref_pos, np.concatenate([train.forces, test.forces]))
    figures.plot_cut_curve(x_ref, np.concatenate([train.energies, test.energies]), grid, energy,
                           folder / "cut_curve.png", forces_ref=ref_force,
                           forces_pred_grid=force_along_cut(positions, forces),
                           disp_train=cut_displacement(train.positions))


def _json_number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
