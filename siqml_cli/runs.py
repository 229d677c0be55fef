"""A training run's folder: the one place that knows its files, changes its status and loads what it holds.

`siqml train` writes it; every other command (evaluate, md, vibrations, check-symmetry, submit/retrieve,
report, the ASE calculator) reads it through `RunFolder`:

    config.yaml             the resolved config (a resume's overrides applied)
    split.npz               train/test indices into the data file, and that file's path
    run.json                status and summary: `running` first, `complete` last
    checkpoint.npz          the last training state, what `siqml train resume=<run>` continues
    model.json, weights.npz the trained model: its definition, label scaling and domain, its weights
    metrics.csv, mse.csv, mse.md, test_predictions.extxyz, *.png   the results
    evaluations/, md/, vibrations/, hardware/                      later commands' outputs, one folder each

Status goes `running` -> `complete` | `failed` | `interrupted`, and only inside `RunFolder.training`,
the invocation that trains: a refused resume or any other command leaves a run exactly as it was. The one
other writer is `record_failed_job`, which marks a new sweep job `failed` in a folder that holds no run.
Every file is checked when it is read; a damaged one is a one-line SiqmlError naming it.

A fingerprint of what defines the model (molecule, symmetry, sizes, build options, the observable's
interval the energies map onto) is recorded in run.json, model.json and the checkpoint, so that a
checkpoint is never continued, nor weights loaded, under another model than the one they were trained as.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np

from siqml_cli.data.io import atomic_path, write_text_atomic
from siqml_cli.errors import SiqmlError

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.npz"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.npz"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
METRICS_FILE = "metrics.csv"
TEST_PREDICTIONS_FILE = "test_predictions.extxyz"
HYDRA_FILES = (".hydra", "train.log")  # what Hydra writes into a run folder before our code runs
SETUP_FILES = (CONFIG_FILE, SPLIT_FILE, RUN_FILE)  # written together when training starts, run.json last

RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"
CLASSICAL_MACE = "mace"  # run.json's `family` of a MACE run (`siqml_cli.train.mace`)

T = TypeVar("T")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def model_identity(spec, output_range: tuple[float, float]) -> dict:
    """What gives trained weights their meaning: the model as built from the config (before any fit to the
    training data) and the interval of the observable the training energies map onto."""
    return json.loads(json.dumps({
        "molecule": spec.name, "symmetry": spec.symmetry, "layers": spec.layers, "blocks": spec.blocks,
        "options": spec.options(), "alpha_init": getattr(spec, "alpha_init", None),
        "output_range": [float(v) for v in output_range]}, default=str))


def model_fingerprint(identity: dict) -> str:
    """A short hash of `model_identity`, recorded with every file that depends on it."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def identity_changes(recorded: dict, now: dict) -> str:
    """'layers 1 -> 2, ...': how two model identities differ, for an error message."""
    flat = lambda d: {**{k: v for k, v in d.items() if k != "options"},  # noqa: E731
                      **{f"model.{k}": v for k, v in (d.get("options") or {}).items()}}
    before, after = flat(recorded), flat(now)
    return ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in sorted({*before, *after})
                     if before.get(k) != after.get(k))


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Checkpoint:
    """A training state as saved: the flattened (weights, optimiser state) leaves, the loss history."""

    step: int
    leaves: list[np.ndarray]
    metrics: np.ndarray  # (step, 4): step, loss, energy loss, force loss
    seconds: float  # training wall time up to `step`, all invocations
    fingerprint: str | None  # None in checkpoints written before fingerprints were recorded


class RunFolder:
    """One training run's folder (it need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._training = False
        self.fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def has_record(self) -> bool:
        return self.file(RUN_FILE).is_file()

    @property
    def has_checkpoint(self) -> bool:
        return self.file(CHECKPOINT_FILE).is_file()

    @property
    def is_trained(self) -> bool:
        return self.file(MODEL_FILE).is_file() and self.file(WEIGHTS_FILE).is_file()

    # ------------------------------------------------------------------ reading, every file checked

    def damaged(self, name: str, reason: object, advice: str) -> SiqmlError:
        """The one-line error for a file of this run that cannot be used."""
        reason = str(reason).splitlines()[0] if str(reason).strip() else type(reason).__name__
        return SiqmlError(f"{self.file(name)} is damaged ({reason}); {advice}")

    def _read(self, name: str, reader: Callable[[Path], T], advice: str) -> T:
        try:
            return reader(self.file(name))
        except SiqmlError:
            raise
        except Exception as exc:  # zip, JSON, YAML and numpy each raise their own types; all mean damaged
            raise self.damaged(name, f"{type(exc).__name__}: {exc}", advice) from None

    def record(self) -> dict:
        """run.json: the status and summary ({} for a folder without one)."""
        if not self.has_record:
            return {}
        record = self._read(RUN_FILE, lambda p: json.loads(p.read_text()),
                            "restore it, or train the run again")
        if not isinstance(record, dict):
            raise self.damaged(RUN_FILE, "not a JSON object", "restore it, or train the run again")
        return record

    @property
    def status(self) -> str | None:
        return self.record().get("status")

    def config(self):
        """config.yaml as saved (an OmegaConf DictConfig)."""
        from omegaconf import DictConfig, OmegaConf

        config = self._read(CONFIG_FILE, OmegaConf.load, "restore it, or start a new run")
        if not isinstance(config, DictConfig):
            raise self.damaged(CONFIG_FILE, "not a mapping of settings", "restore it, or start a new run")
        return config

    def split(self) -> tuple[Split, str]:
        """The train/test indices and the data file they index."""
        advice = "its test split is unknown: give the configurations with data.path=..., or train the run again"
        if not self.file(SPLIT_FILE).is_file():
            raise SiqmlError(f"{self.path} has no {SPLIT_FILE}; give the configurations with data.path=...")

        def read(path: Path) -> tuple[Split, str]:
            with np.load(path) as npz:
                train, test = np.asarray(npz["train"]), np.asarray(npz["test"])
                data_path = str(npz["data_path"])
            for part in (train, test):
                if part.ndim != 1 or not np.issubdtype(part.dtype, np.integer) or (part < 0).any():
                    raise ValueError("indices are not non-negative integers")
            return Split(train, test), data_path

        return self._read(SPLIT_FILE, read, advice)

    def data_path(self) -> Path:
        """The data file the run was trained on."""
        from siqml_cli.paths import resolve_input

        return resolve_input(self.split()[1])

    def dataset(self, molecule: str | None = None):
        """The whole data set the run was trained on (train and test), its labels read under the keys the
        run was trained with (`data.energy_key`, `data.forces_key` of its config.yaml)."""
        from omegaconf import OmegaConf

        from siqml_cli.data import read_dataset

        config = self.config() if self.file(CONFIG_FILE).is_file() else OmegaConf.create()
        keys = {key: OmegaConf.select(config, f"data.{key}", default=None) for key in ("energy_key", "forces_key")}
        return read_dataset(self.data_path(), molecule, **keys)

    def test_split(self, molecule: str | None = None):
        """The run's own test configurations, as a Dataset."""
        split, _ = self.split()
        data = self.dataset(molecule)
        if len(split.test) == 0 or split.test.max() >= len(data):
            raise self.damaged(SPLIT_FILE, f"its test indices do not fit the {len(data)} configurations of "
                               f"{data.source}", "give the configurations with data.path=..., or train the run again")
        return data.subset(split.test)

    def read_checkpoint(self) -> Checkpoint:
        advice = ("the run cannot be continued from it; start a new run (a complete run's results and weights "
                  "are unaffected)")

        def read(path: Path) -> Checkpoint:
            with np.load(path) as npz:
                files = set(npz.files)
                n_leaves = sum(1 for f in files if f.startswith("leaf_"))
                missing = [f for f in ("step", "metrics", *(f"leaf_{i}" for i in range(n_leaves))) if f not in files]
                if missing or not n_leaves:
                    raise ValueError(f"missing {', '.join(missing) or 'the model state'}")
                fingerprint = str(npz["fingerprint"]) if "fingerprint" in files else None
                checkpoint = Checkpoint(step=int(npz["step"]), leaves=[np.asarray(npz[f"leaf_{i}"])
                                                                      for i in range(n_leaves)],
                                        metrics=np.asarray(npz["metrics"], dtype=float),
                                        seconds=float(npz["seconds"]) if "seconds" in files else 0.0,
                                        fingerprint=fingerprint)
            if checkpoint.step < 0 or checkpoint.metrics.shape != (checkpoint.step, 4):
                raise ValueError(f"its loss history does not cover its {checkpoint.step} steps")
            if not all(np.all(np.isfinite(leaf)) for leaf in checkpoint.leaves):
                raise ValueError("NaN or infinite values in the model state")
            return checkpoint

        if not self.has_checkpoint:
            raise SiqmlError(f"cannot resume {self.path}: it has no {CHECKPOINT_FILE}; give a run folder written by "
                             "`siqml train`")
        return self._read(CHECKPOINT_FILE, read, advice)

    def load_forcefield(self, **kwargs):
        """The trained force field, after checking model.json, weights.npz and (if present) run.json agree;
        with the domain model.json records (none in runs trained before domains were recorded).

        A run that has a record must be complete: a run that is running, failed or interrupted may hold the
        weights of an earlier state that its record no longer describes."""
        from siqml_cli.domain import Domain
        from siqml_cli.forcefield import ForceField, LabelScaler
        from siqml_cli.models import build_model

        record = self.record()
        if record.get("family") == CLASSICAL_MACE and self.file(MODEL_FILE).is_file():
            return self._load_mace(record)
        if not self.is_trained:
            raise SiqmlError(f"{self.path} is not a trained run (no {MODEL_FILE} and {WEIGHTS_FILE}); "
                             "give a folder written by `siqml train`")
        status = record.get("status", COMPLETE)
        if status != COMPLETE:
            raise SiqmlError(f"{self.path} is {status}, not complete; continue it with `siqml train "
                             f"resume={self.path}` (or use a complete run)")
        advice = "the trained model cannot be loaded: restore the file, or train the run again"
        info = self._read(MODEL_FILE, lambda p: json.loads(p.read_text()), advice)
        try:
            spec = build_model(info["molecule"], info["symmetry"], info["layers"], info["blocks"], info.get("options"))
            scaler = LabelScaler(**info["scaler"])
            domain = Domain.from_dict(info["domain"]) if info.get("domain") is not None else None
            if domain is not None and domain.species != tuple(spec.species):
                raise SiqmlError(f"its domain is of {'-'.join(domain.species)}, its model of {'-'.join(spec.species)}")
        except SiqmlError as exc:
            raise self.damaged(MODEL_FILE, exc, advice) from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise self.damaged(MODEL_FILE, f"{type(exc).__name__}: {exc}", advice) from None
        recorded = record.get("fingerprint")
        if recorded and info.get("fingerprint") and recorded != info["fingerprint"]:
            raise SiqmlError(f"{self.file(MODEL_FILE)} belongs to another model than {self.file(RUN_FILE)} records "
                             f"(fingerprint {info['fingerprint']} vs {recorded}); {advice}")

        def read_weights(path: Path) -> dict:
            with np.load(path) as npz:
                weights = {k: np.asarray(npz[k]) for k in npz.files}
            expected = spec.weight_shapes()
            if set(weights) != set(expected):
                raise ValueError(f"weights {sorted(weights)} but the model of {MODEL_FILE} has {sorted(expected)}")
            for name, shape in expected.items():
                if weights[name].shape != tuple(shape):
                    raise ValueError(f"'{name}' has shape {weights[name].shape}, the model of {MODEL_FILE} "
                                     f"needs {tuple(shape)}")
                if not np.all(np.isfinite(weights[name])):
                    raise ValueError(f"'{name}' holds NaN or infinite values")
            return weights

        weights = self._read(WEIGHTS_FILE, read_weights, advice)
        return ForceField(spec, weights, scaler, domain=domain, **kwargs)

    def _load_mace(self, record: dict):
        """A complete MACE run's model (`siqml_cli.train.mace`): model.json names MACE's model file."""
        from siqml_cli.train.mace import load_mace_forcefield

        if record.get("status") != COMPLETE:
            raise SiqmlError(f"{self.path} is {record.get('status')}, not complete; a MACE run cannot be continued: "
                             "train it again")
        advice = "the trained model cannot be loaded: restore the file, or train the run again"
        info = self._read(MODEL_FILE, lambda p: json.loads(p.read_text()), advice)
        if not isinstance(info, dict) or not isinstance(info.get("model_file"), str) or not info.get("species"):
            raise self.damaged(MODEL_FILE, "it names no MACE model file and species", advice)
        return load_mace_forcefield(self, info)

    # ------------------------------------------------------------------ training: the only status changes

    @contextmanager
    def training(self, config_text: str, split: Split, data_path: str, identity: dict,
                 **fields) -> Iterator[RunFolder]:
        """Write the set-up files and mark the run `running`; on the way out mark it `failed` (an error) or
        `interrupted` (Ctrl-C, SIGTERM) unless `complete` was marked inside, and re-raise."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.file(CONFIG_FILE), config_text)
        with atomic_path(self.file(SPLIT_FILE)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, train=split.train, test=split.test, data_path=data_path)
        self.fingerprint = model_fingerprint(identity)
        self._training = True
        self._set_status(RUNNING, fingerprint=self.fingerprint, model=identity, started=now(), **fields)
        try:
            yield self
        except KeyboardInterrupt:
            self._set_status(INTERRUPTED)
            raise
        except SiqmlError as exc:
            self._set_status(FAILED, error=str(exc))
            raise
        except Exception as exc:  # a bug: the record says so, the traceback shows where
            self._set_status(FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._training = False

    def complete(self, **summary) -> None:
        """The last write of a training run: every result is in place."""
        self._set_status(COMPLETE, **summary)

    def _set_status(self, status: str, **fields) -> None:
        if not self._training:
            raise RuntimeError(f"{self.path}: status {status} outside the training that owns it")
        record = self.record()
        if status in (RUNNING, COMPLETE):
            record.pop("error", None)
        record.update(status=status, updated=now(), **fields)
        write_text_atomic(self.file(RUN_FILE), json.dumps(record, indent=2))

    def record_failed_job(self, config_text: str, error: str) -> None:
        """A new sweep job that failed before training: its settings and the reason, so that `siqml report`
        lists it; a folder that already held a run is left as it is."""
        if self.has_record:
            return
        if not self.file(CONFIG_FILE).exists():
            write_text_atomic(self.file(CONFIG_FILE), config_text)
        record = {"status": FAILED, "updated": now(), "error": error}
        write_text_atomic(self.file(RUN_FILE), json.dumps(record, indent=2))

    def write_checkpoint(self, step: int, leaves: list, metrics: np.ndarray, seconds: float) -> None:
        arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
        if self.fingerprint:
            arrays["fingerprint"] = np.asarray(self.fingerprint)
        with atomic_path(self.file(CHECKPOINT_FILE)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, step=step, seconds=seconds, metrics=np.asarray(metrics, dtype=float), **arrays)

    def save_forcefield(self, forcefield, **extra) -> None:
        """weights.npz, then model.json (a model.json always describes the weights beside it), with the
        force field's training domain."""
        from dataclasses import asdict

        spec = forcefield.spec
        info = {"molecule": spec.name, "symmetry": spec.symmetry, "layers": spec.layers, "blocks": spec.blocks,
                "species": list(spec.species), "scaler": asdict(forcefield.scaler), "n_trainable": spec.n_trainable(),
                "options": spec.options(), **({"fingerprint": self.fingerprint} if self.fingerprint else {}),
                **({"domain": forcefield.domain.to_dict()} if forcefield.domain is not None else {}), **extra}
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file(WEIGHTS_FILE)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in forcefield.weights.items()})
        write_text_atomic(self.file(MODEL_FILE), json.dumps(info, indent=2))

    def stop_forced(self) -> str | None:
        """What a training process ended from outside its main thread (`siqml_cli.interrupts.on_interrupt`)
        leaves, as a stopped training leaves it: the run marked `interrupted` when this invocation was
        training it and it has a checkpoint to continue from (returns the note that says how), the unfinished
        folder removed when it has none, and a run this invocation did not train exactly as it was."""
        if self._training and self.has_checkpoint:
            self._set_status(INTERRUPTED)
            return f"continue with: siqml train resume={self.path}"
        if self._training or not self.has_record:
            self.remove_unfinished()
        return None

    def remove_unfinished(self) -> None:
        """Undo a new run that ended before its first checkpoint: remove Hydra's and the set-up files, then
        the folder if it is empty. Anything else in it (a folder the user pointed hydra.run.dir at) stays."""
        if not self.path.is_dir() or self.has_checkpoint:
            return
        ours = SETUP_FILES if self.has_record else ()
        for name in (*HYDRA_FILES, *ours):
            path = self.file(name)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass  # not empty: it holds the user's own files

    # ------------------------------------------------------------------ other commands' outputs

    def output_folder(self, kind: str, out: str | Path | None = None, suffix: str = "", make: bool = True) -> Path:
        """`out` if given, else `<run>/<kind>/<date>_<time><suffix>` (kind: evaluations, md, vibrations,
        hardware); refused if it is a file, made unless `make` is False (a command that makes it only once
        it has something to write)."""
        folder = Path(out) if out else self.path / kind / f"{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}{suffix}"
        if folder.exists() and not folder.is_dir():
            raise SiqmlError(f"out={folder} is an existing file, not a folder; give a new or existing folder")
        if make:
            folder.mkdir(parents=True, exist_ok=True)
        return folder
