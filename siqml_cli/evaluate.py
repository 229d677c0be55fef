"""`siqml evaluate`: a trained run's predictions for any configurations of its molecule.

With `backend=aer|fake|ibm` the same configurations also run on that backend; its predictions and
MSE table sit next to the fast simulator's, tagged with the backend's settings (`backend.json`);
`backend.dry_run=true` only counts what would run.

Configurations outside the run's training domain are flagged (`siqml_out_of_domain` in predictions.extxyz),
counted in evaluation.json and named in one warning line; with `domain=error` they are refused before
anything is computed or written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from siqml_cli.config import DomainCheck, EvaluateCommand, EvaluationData, parse_command
from siqml_cli.data import Dataset, read_dataset
from siqml_cli.domain import describe_outside
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField
from siqml_cli.paths import resolve_input
from siqml_cli.report.evaluation import STATEVECTOR, outside_count, write_backend_evaluation, write_evaluation
from siqml_cli.runs import RunFolder
from siqml_cli.simulate.resources import batch_size, check_resources
from siqml_cli.train.mace import MaceForceField


def evaluation_data(chosen: EvaluationData, run: Path, molecule: str) -> Dataset:
    """The given file (labels under `data.energy_key` / `data.forces_key`) or the run's test split, cut to
    `data.max_configurations` (the first ones) if set."""
    if chosen.path:
        data = read_dataset(resolve_input(chosen.path), molecule, energy_key=chosen.energy_key,
                            forces_key=chosen.forces_key)
    else:
        data = RunFolder(run).test_split(molecule)
    if chosen.max_configurations is not None:
        data = data.subset(np.arange(min(chosen.max_configurations, len(data))))
    return data


def evaluate_command(cfg: DictConfig) -> None:
    command = parse_command("evaluate", cfg)
    run, settings = RunFolder(command.run), command.backend
    forcefield = run.load_forcefield()
    if isinstance(forcefield, MaceForceField):
        return evaluate_mace(forcefield, command, run)
    data = evaluation_data(command.data, run.path, forcefield.spec.name)
    outside = check_domain(forcefield, data, command.domain)
    check_resources(forcefield.spec, batch_size(forcefield.chunk, len(data)), "double", False,
                    batch_option="data.max_configurations" if len(data) < forcefield.chunk else None,
                    precision_option=None)
    exact = settings.kind == STATEVECTOR
    out = run.output_folder("evaluations", command.out, "" if exact else f"_{settings.label}", make=False)
    if exact:
        model = forcefield
    else:
        from siqml_cli.backends.forcefield import BackendForceField, print_cost

        model = BackendForceField(forcefield, settings)
        if settings.dry_run:
            print_cost(model, len(data))
            return
        copies = f" x {settings.symmetrize} symmetric copies ({model.kept.describe()})" if model.kept else ""
        print(f"{settings.label}: ISA circuit depth {model.isa.depth}, {model.isa.two_qubit_gates} two-qubit gates; "
              f"{len(data)} configurations{copies} x {model.plan.rows_per_configuration} parameter sets ...",
              flush=True)
        if line := model.trotter_line():
            print(line)
    t0 = time.perf_counter()
    prediction = model.predict(data.positions)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    if exact:
        write_evaluation(out, run.path, data, {"data": prediction})
        print(f"predictions for {len(data)} configurations{outside_count(prediction)}: {out / 'predictions.extxyz'}")
    else:
        write_backend_evaluation(out, run.path, forcefield, data, prediction,
                                 {**model.record(), "run_seconds": round(seconds, 3)})
    if outside:
        print(f"siqml evaluate: warning: {outside}", file=sys.stderr)


def evaluate_mace(forcefield: MaceForceField, command: EvaluateCommand, run: RunFolder) -> None:
    """A MACE run's predictions, written as a quantum run's on the fast simulator (MACE runs on no Qiskit backend)."""
    if command.backend.kind != STATEVECTOR:
        raise SiqmlError(f"{run.path} is a MACE run: it has no circuits to run on backend={command.backend.kind}; "
                         "leave out backend=")
    data = evaluation_data(command.data, run.path, forcefield.molecule)
    out = run.output_folder("evaluations", command.out)
    write_evaluation(out, run.path, data, {"data": forcefield.predict(data.positions)})
    print(f"predictions for {len(data)} configurations: {out / 'predictions.extxyz'}")


def check_domain(forcefield: ForceField, data: Dataset, policy: DomainCheck) -> str:
    """The line that names the configurations outside the run's training domain ("" when none, or when the
    run records no domain); with `domain=error` a SiqmlError instead, before anything is computed."""
    if forcefield.domain is None:
        return ""
    flagged, reasons = forcefield.domain.check(data.positions)
    if not flagged.any():
        return ""
    line = describe_outside(flagged, reasons)
    if policy == DomainCheck.error:
        raise SiqmlError(f"{line}; the model's answers there mean nothing: evaluate configurations like its training "
                         "data, or give domain=warn to get them flagged")
    return line
