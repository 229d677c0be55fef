"""The optimisation loop: one compiled Adam step (optax), checkpoints that resume bit-identically.

Mini-batches for step t are drawn from `default_rng((seed, t))`, so a resumed run sees exactly the
batches an uninterrupted one would have seen; they are drawn and sent to the device in blocks of
steps, so a step costs one call of the compiled function and nothing else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from siqml_cli.errors import SiqmlError
from siqml_cli.precision import double_precision
from siqml_cli.runs import CHECKPOINT_FILE, Checkpoint, RunFolder
from siqml_cli.simulate import Simulator, expectation_and_gradient

METRIC_COLUMNS = ["step", "loss", "energy_loss", "force_loss"]
PROGRESS_LINES = 10  # progress lines per run in the log (Hydra's train.log), for runs without a terminal
log = logging.getLogger("siqml")


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    lr: float
    batch_size: int | None
    force_weight: float
    schedule: str
    lr_final_fraction: float
    checkpoint_every: int
    seed: int


class LoopResult(NamedTuple):
    weights: dict
    metrics: pd.DataFrame
    seconds_per_step: float  # of this invocation, after the first (compiled) step
    seconds: float  # wall time of the whole training, earlier invocations of a resumed run included


@dataclass
class TrainingSet:
    """Positions (N, A, 3), scaled energies (N,) and scaled forces (N, A, 3) (zeros when unused)."""

    positions: np.ndarray
    energies: np.ndarray
    forces: np.ndarray


def make_optimizer(s: LoopSettings) -> optax.GradientTransformation:
    if s.schedule == "cosine":
        lr = optax.cosine_decay_schedule(s.lr, max(s.steps, 1), alpha=s.lr_final_fraction)
    else:
        lr = s.lr
    return optax.adam(lr)


INDEX_BLOCK = 200  # steps whose mini-batch indices are drawn and uploaded together


def make_step(sim: Simulator, opt: optax.GradientTransformation, force_weight: float):
    """A jitted (weights, opt_state, X, y, F, batches, row) -> (weights, opt_state, [loss, E loss, F loss]).

    `batches` is a block of mini-batch indices (steps x batch) and `row` this step's row; `None`
    for full-batch training.
    """

    def loss_fn(weights, x, y, forces):
        if force_weight > 0:
            f, grad = expectation_and_gradient(sim, weights, x)
            energy_loss = jnp.mean((f - y) ** 2)
            force_loss = jnp.mean((grad + forces) ** 2)  # predicted scaled forces are -grad
            return energy_loss + force_weight * force_loss, (energy_loss, force_loss)
        energy_loss = jnp.mean((sim.expectation(weights, x) - y) ** 2)
        return energy_loss, (energy_loss, jnp.full_like(energy_loss, jnp.nan))

    @jax.jit
    def step(weights, opt_state, x, y, forces, batches=None, row=0):
        if batches is not None:
            index = batches[row]
            x, y, forces = x[index], y[index], forces[index]
        (loss, (e_loss, f_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(weights, x, y, forces)
        updates, opt_state = opt.update(grads, opt_state, weights)
        return optax.apply_updates(weights, updates), opt_state, jnp.stack([loss, e_loss, f_loss])

    return step


def batch_block(n: int, batch_size: int | None, seed: int, first_step: int) -> np.ndarray | None:
    """Indices (INDEX_BLOCK, batch_size) for steps first_step, first_step + 1, ...; None = full batch."""
    if batch_size is None or batch_size >= n:
        return None
    return np.stack([np.random.default_rng((seed, t)).choice(n, size=batch_size, replace=False)
                     for t in range(first_step, first_step + INDEX_BLOCK)])


def save_checkpoint(run: RunFolder, step: int, weights, opt_state, metrics: pd.DataFrame, seconds: float) -> None:
    run.write_checkpoint(step, jax.tree_util.tree_leaves((weights, opt_state)), metrics[METRIC_COLUMNS].to_numpy(),
                         seconds)


def restore(checkpoint: Checkpoint, weights, opt_state):
    """(weights, opt_state) of `checkpoint` in the structure of freshly built ones; a SiqmlError naming the
    checkpoint when its state does not fit that structure (another model's, or damaged)."""
    treedef = jax.tree_util.tree_structure((weights, opt_state))
    fresh = jax.tree_util.tree_leaves((weights, opt_state))
    shapes = [tuple(np.shape(leaf)) for leaf in checkpoint.leaves]
    if shapes != [tuple(np.shape(leaf)) for leaf in fresh]:
        raise SiqmlError(f"{CHECKPOINT_FILE} holds a state of {len(shapes)} arrays {shapes[:3]}... that does not fit "
                         f"this run's model and optimiser ({len(fresh)} arrays: another model, or another "
                         "train.schedule); the run cannot be continued with these settings")
    leaves = [jnp.asarray(leaf, dtype=jnp.asarray(f).dtype) for leaf, f in zip(checkpoint.leaves, fresh)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def fresh_state(weights: dict, s: LoopSettings, real=None):
    """The (weights, optimiser state) a run starts from (in the simulator's `real` dtype); a checkpoint must
    have this structure."""
    weights = {k: jnp.asarray(v, dtype=real) for k, v in weights.items()}
    return weights, make_optimizer(s).init(weights)


@double_precision
def run_loop(sim: Simulator, data: TrainingSet, weights: dict, s: LoopSettings, run: RunFolder,
             resume: bool = False, progress: bool = True) -> LoopResult:
    """Train from `weights` (or from the run's checkpoint when resuming), checkpointing into `run`."""
    t_start = time.perf_counter()
    opt = make_optimizer(s)
    weights, opt_state = fresh_state(weights, s, sim.real)
    metrics = pd.DataFrame(columns=METRIC_COLUMNS)
    start, seconds_before = 0, 0.0
    if resume and run.has_checkpoint:
        checkpoint = run.read_checkpoint()
        weights, opt_state = restore(checkpoint, weights, opt_state)
        start, seconds_before = checkpoint.step, checkpoint.seconds
        metrics = pd.DataFrame(checkpoint.metrics, columns=METRIC_COLUMNS)
        metrics["step"] = metrics["step"].astype(int)
        log.info("resumed at step %d of %d", start, s.steps)
    step_fn = make_step(sim, opt, s.force_weight)
    block = None
    x_all = jnp.asarray(data.positions, dtype=sim.real)
    y_all = jnp.asarray(data.energies, dtype=sim.real)
    f_all = jnp.asarray(data.forces, dtype=sim.real)
    pending: list[tuple[int, jnp.ndarray]] = []
    rows = [metrics] if len(metrics) else []
    t_first = None
    bar = tqdm(range(start, s.steps), initial=start, total=s.steps, desc="train", unit="step",
               disable=not progress, mininterval=0.5)

    def flush() -> None:
        """Bring the pending losses from the device into `rows`."""
        if pending:
            values = np.asarray(jnp.stack([v for _, v in pending]), dtype=np.float64)
            rows.append(pd.DataFrame({"step": [p[0] for p in pending], "loss": values[:, 0],
                                      "energy_loss": values[:, 1], "force_loss": values[:, 2]}))
            pending.clear()
            bar.set_postfix(refresh=False, loss=f"{values[-1, 0]:.3e}", E=f"{values[-1, 1]:.3e}",
                            F=f"{values[-1, 2]:.3e}" if s.force_weight > 0 else "-")

    def table() -> pd.DataFrame:
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=METRIC_COLUMNS)

    def seconds() -> float:
        return seconds_before + time.perf_counter() - t_start

    report_every = max(1, s.steps // PROGRESS_LINES)

    def report(step: int) -> None:
        last = rows[-1].iloc[-1]
        force = f", force loss {last['force_loss']:.3e}" if s.force_weight > 0 else ""
        log.info("step %d/%d: loss %.3e, energy loss %.3e%s (%.0f s)", step, s.steps, last["loss"],
                 last["energy_loss"], force, seconds())

    with logging_redirect_tqdm(loggers=[logging.getLogger()]):  # log lines above the bar, not through it
        for step in bar:
            row = (step - start) % INDEX_BLOCK
            if row == 0:
                block = batch_block(len(data.positions), s.batch_size, s.seed, step)
                block = None if block is None else jnp.asarray(block)
            weights, opt_state, losses = step_fn(weights, opt_state, x_all, y_all, f_all, block, row)
            if t_first is None:
                jax.block_until_ready(losses)
                t_first, first_step = time.perf_counter(), step
            pending.append((step + 1, losses))
            if len(pending) >= 50:
                flush()
            if (step + 1) % s.checkpoint_every == 0 or step + 1 == s.steps:
                flush()
                save_checkpoint(run, step + 1, weights, opt_state, table(), seconds())
            if (step + 1) % report_every == 0 or step + 1 == s.steps:
                flush()
                report(step + 1)
    bar.close()
    flush()
    timed = (s.steps - 1 - first_step) if t_first is not None else 0
    per_step = (time.perf_counter() - t_first) / timed if timed > 0 else float("nan")
    return LoopResult({k: np.asarray(v) for k, v in weights.items()}, table(), per_step, seconds())
