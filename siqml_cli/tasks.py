"""The Hydra task behind each command: compose -> run -> one line on failure."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from siqml_cli import interrupts
from siqml_cli.errors import SiqmlError, fail
from siqml_cli.runs import RunFolder

logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notes are not news
for _chatty in ("qiskit", "qiskit_ibm_runtime", "qiskit_aer", "stevedore"):  # per-pass transpiler timings
    logging.getLogger(_chatty).setLevel(logging.WARNING)


def _cap_threads() -> None:
    """Jobs that share a machine (hydra/launcher=joblib, submitit_local) each get their share of the
    cores, so parallel jobs do not fight over threads. Must run before JAX is imported in this process;
    values the user set in the environment are kept."""
    import os

    hydra_cfg = HydraConfig.get()
    launcher = hydra_cfg.runtime.choices.get("hydra/launcher")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if launcher == "joblib":
        n_jobs = hydra_cfg.launcher.get("n_jobs") or -1
        threads = 1 if n_jobs < 0 else max(1, cores // n_jobs)  # n_jobs=-1: one job per core
    elif launcher == "submitit_local" and hydra_cfg.launcher.get("cpus_per_task"):
        threads = int(hydra_cfg.launcher.cpus_per_task)
    else:
        return
    if threads >= cores:
        return
    if "jax" not in sys.modules:  # else: a worker reused by joblib, set up by its first job
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        flags = os.environ.get("XLA_FLAGS", "")
        if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:  # XLA has no flag for N > 1 threads
            single = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            os.environ["XLA_FLAGS"] = f"{flags} {single}".strip()
    logging.getLogger("siqml").info("hydra/launcher=%s on %d cores: %d thread(s) per job (OMP_NUM_THREADS=%s, "
                                    "XLA_FLAGS=%s)", launcher, cores, threads, os.environ.get("OMP_NUM_THREADS", ""),
                                    os.environ.get("XLA_FLAGS", ""))


def _setup() -> Path:
    """Per-command set-up: thread caps for parallel jobs, the compilation cache, and the run folder Hydra made."""
    _cap_threads()
    from siqml_cli.simulate.statevector import enable_compilation_cache

    enable_compilation_cache()
    return Path(HydraConfig.get().runtime.output_dir)


def train(cfg: DictConfig) -> None:
    """One training job; SIGTERM stops it like Ctrl-C. The `siqml` process handles both signals already
    (`interrupts.install`); a sweep's worker process gets the same SIGTERM handler for the job, and its own
    back afterwards (a reused joblib worker)."""
    if interrupts.installed() or threading.current_thread() is not threading.main_thread():
        return _train(cfg)
    previous = signal.signal(signal.SIGTERM, interrupts.signal_handler(interrupts.Terminated))
    try:
        return _train(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(cfg: DictConfig) -> None:
    folder = _setup()  # first: it caps threads before these imports bring in JAX
    from siqml_cli.train.resume import resumed_config
    from siqml_cli.train.run import train_run

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    run = RunFolder(folder)
    forget = interrupts.on_interrupt(run.stop_forced)  # if the process must be ended while it compiles
    try:
        if cfg.resume:
            cfg = resumed_config(folder, list(HydraConfig.get().overrides.task))
        resume = bool(cfg.resume)
        if multirun and run.has_record:  # a sweep run again into its folder
            if not continue_sweep_job(run, cfg):
                return  # complete, or another run's folder: left as it is
            resume = True
        summary = train_run(cfg, run, resume=resume, progress=sys.stderr.isatty() or not multirun)
    except SiqmlError as exc:
        if multirun:  # keep a new job's folder for `siqml report`, and let the other jobs go on
            run.record_failed_job(_config_text(cfg), str(exc))
            print(f"siqml train: error in {folder}: {exc}", file=sys.stderr)
            return
        run.remove_unfinished()
        fail("train", str(exc))
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, interrupts.Terminated)
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        if run.has_checkpoint:
            print(f"\nsiqml train: {how}; continue with: siqml train resume={folder}", file=sys.stderr)
        else:
            run.remove_unfinished()
        sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))
    finally:
        forget()
    print(run.file("mse.md").read_text())
    print(f"results: {folder}  ({summary['train_seconds']:.1f} s training, "
          f"{summary['seconds_per_step'] * 1e3:.2f} ms/step)")


def continue_sweep_job(run: RunFolder, cfg: DictConfig) -> bool:
    """A sweep job whose folder exists (`siqml train resume=<sweep folder>`): True to continue it from its
    checkpoint (verified first) or from the start, with the same settings; False when it is complete or holds
    a run with other settings, which stays untouched."""
    from omegaconf import OmegaConf

    from siqml_cli.runs import COMPLETE, CONFIG_FILE
    from siqml_cli.train.resume import verify_resumable

    folder = run.path
    saved = run.file(CONFIG_FILE).read_text() if run.file(CONFIG_FILE).exists() else None
    if saved is not None and saved != OmegaConf.to_yaml(cfg, resolve=True):
        print(f"siqml train: error in {folder}: it holds a run with other settings (changed on the command line, "
              "or by a newer siqml); left as it is. Resume with the same settings, or start a new sweep",
              file=sys.stderr)
        return False
    if run.status == COMPLETE:
        print(f"siqml train: {folder.name} is complete; skipped")
        return False
    if run.has_checkpoint:
        verify_resumable(run, cfg)
    return True


def _config_text(cfg: DictConfig) -> str:
    """The resolved config, or as given when a value does not resolve (that value is part of what failed)."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # OmegaConf's several interpolation errors
        return OmegaConf.to_yaml(cfg)


def command_task(command: str, module: str, function: str):
    """A Hydra task that runs `module.function(cfg)` and turns a SiqmlError into one line."""

    def task(cfg: DictConfig) -> None:
        import importlib

        _setup()
        try:
            getattr(importlib.import_module(module), function)(cfg)
        except SiqmlError as exc:
            fail(command, str(exc))

    return task


TASKS = {
    "train": train,
    "data": command_task("data", "siqml_cli.data.commands", "data_command"),
    "evaluate": command_task("evaluate", "siqml_cli.evaluate", "evaluate_command"),
    "submit": command_task("submit", "siqml_cli.backends.jobs", "submit_command"),
    "retrieve": command_task("retrieve", "siqml_cli.backends.jobs", "retrieve_command"),
    "check-symmetry": command_task("check-symmetry", "siqml_cli.symmetry", "check_symmetry_command"),
    "md": command_task("md", "siqml_cli.dynamics", "md_command"),
    "vibrations": command_task("vibrations", "siqml_cli.dynamics", "vibrations_command"),
}
