"""A trained run's force field evaluated on a Qiskit backend: energies, forces and their standard errors.

The ISA circuit is made once here (at construction); `pubs` turns configurations into a few PUBs
(one per `configurations_per_job` configurations, all shifted rows of a configuration together, and
with `backend.symmetrize=K` its K symmetric copies too), `to_prediction` turns the estimator's values
back into eV and eV/Å with the run's label scaling, and `cost` counts what a run would send.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from siqml_cli.backends.estimators import executable, make_estimator, make_target, mitigation_record
from siqml_cli.backends.isa import transpile
from siqml_cli.backends.settings import BackendSettings
from siqml_cli.backends.shift import ShiftPlan
from siqml_cli.backends.symmetrize import SymmetryCopies, kept_symmetries
from siqml_cli.config import runtime_options
from siqml_cli.forcefield import ForceField
from siqml_cli.models.spec import ModelSpec, trotter_error
from siqml_cli.prediction import Prediction


def plan_for(forcefield: ForceField, settings: BackendSettings) -> ShiftPlan:
    weights = {k: np.asarray(v, dtype=float) for k, v in forcefield.weights.items()}
    return ShiftPlan(forcefield.spec, weights, settings.forces, settings.finite_difference_step,
                     settings.orbit_export)


def chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def to_prediction(forcefield: ForceField, plan: ShiftPlan, positions: np.ndarray, evs: np.ndarray,
                  stds: np.ndarray, copies: SymmetryCopies | None = None) -> Prediction:
    """Expectation values (N, rows) of `plan.rows(positions)` (of `copies.positions(positions)` when given)
    -> physical energies and forces, with the estimator's standard errors (0 when exact); no forces with
    backend.forces=none; symmetric copies averaged, their spread as flags; the configurations outside the
    run's training domain flagged, as the fast simulator flags them."""
    evaluated = positions if copies is None else copies.positions(positions)
    d = plan.derivatives(evaluated, evs, stds)
    slope = forcefield.scaler.slope
    forces = None if d.grad is None else -slope * d.grad
    force_std = None if d.grad_std is None else slope * d.grad_std
    prediction = Prediction(forcefield.scaler.to_energy(d.f), forces, slope * d.f_std, force_std)
    if copies is not None:
        prediction = copies.combine(prediction)
    return prediction.flagged(**forcefield.domain_flags(positions))


def measured_bases(observable) -> int:
    """How many measurement settings the observable takes (its qubit-wise commuting groups)."""
    return len(observable.group_commuting(qubit_wise=True))


class BackendForceField:
    """`ForceField.predict`, but every expectation value comes from the backend's Estimator V2."""

    def __init__(self, forcefield: ForceField, settings: BackendSettings, target=None):
        self.forcefield, self.settings = forcefield, settings
        self.plan = plan_for(forcefield, settings)
        self.trotter = (trotter_error(forcefield.spec, self.plan.weights, settings.trotter_steps,
                                      settings.trotter_order)
                        if settings.orbit_synthesis == "trotter" and isinstance(forcefield.spec, ModelSpec) else None)
        self.kept = kept_symmetries(forcefield.spec) if settings.symmetrize > 1 else None
        self.target = target or make_target(settings)
        t0 = time.perf_counter()
        self.isa = transpile(self.plan.circuit, self.plan.observable, self.target, settings.optimization_level,
                             settings.seed)
        self.executable = executable(settings, self.target, self.isa.circuit, self.isa.observable)
        self.transpile_seconds = time.perf_counter() - t0
        self.batch_id: str | None = None
        self.job_ids: list[str] = []

    def copies(self, n: int) -> SymmetryCopies | None:
        """The symmetric copies of n configurations (None without backend.symmetrize), the same for a seed."""
        if self.settings.symmetrize == 1:
            return None
        return SymmetryCopies.draw(self.forcefield.spec, n, self.settings.symmetrize, self.settings.seed)

    def pubs(self, positions: np.ndarray, copies: SymmetryCopies | None = None) -> list[tuple]:
        """One PUB per `configurations_per_job` configurations: the same circuit, every row of their copies."""
        rows = self.plan.rows(positions if copies is None else copies.positions(positions))
        per_pub = self.settings.configurations_per_job * (1 if copies is None else copies.k)
        return [(self.executable.circuit, self.executable.observable, rows[part])
                for part in chunks(len(rows), per_pub)]

    def predict(self, positions: np.ndarray) -> Prediction:
        positions = np.asarray(positions, dtype=float)
        copies = self.copies(len(positions))
        pubs = self.pubs(positions, copies)
        if self.settings.runtime:  # one job per PUB, as `submit` sends them
            from qiskit_ibm_runtime import Batch

            submitted = []
            with Batch(backend=self.executable.backend) as batch:
                estimator = make_estimator(self.settings, self.target, mode=batch)
                for pub in pubs:
                    submitted.append(estimator.run([pub]))
                    if self.settings.kind != "ibm":  # local mode simulates one job at a time: bounded memory
                        submitted[-1].result()
                self.batch_id, self.job_ids = batch.session_id, [job.job_id() for job in submitted]
                result = [pub_result for job in submitted for pub_result in job.result()]
        else:
            result = make_estimator(self.settings, self.target, mode=self.executable.backend).run(pubs).result()
        evs = np.concatenate([np.asarray(r.data.evs, dtype=float) for r in result])
        stds = np.concatenate([np.asarray(r.data.stds, dtype=float) for r in result])
        return to_prediction(self.forcefield, self.plan, positions, evs, stds, copies)

    def cost(self, n: int) -> dict:
        """What evaluating n configurations sends, without sending it: PUBs, distinct circuits, parameter sets,
        shots (through the runtime, as its own pre-processing counts them, twirling and ZNE included), and the
        ISA circuit's depth and two-qubit gates."""
        positions = np.zeros((n, len(self.forcefield.spec.species), 3))
        positions[:, :, 0] = np.arange(len(self.forcefield.spec.species))  # any geometry: only shapes count
        pubs = self.pubs(positions, self.copies(n))
        parameter_sets = int(sum(np.prod(pub[2].shape[:-1]) for pub in pubs))
        bases = measured_bases(self.executable.observable)
        out = {"pubs": len(pubs), "circuits": len(pubs), "parameter_sets": parameter_sets,
               "measurement_bases": bases, "shots": None if self.settings.shots is None
               else parameter_sets * bases * self.settings.shots,
               "isa_depth": self.isa.depth, "two_qubit_gates": self.isa.two_qubit_gates}
        if self.settings.runtime:  # the runtime's own pre-processing: what its Estimator would hand the executor
            from qiskit_ibm_runtime.executor_estimator.prepare import prepare

            program, _ = prepare(pubs, runtime_options(self.settings), backend=self.executable.backend)
            out.update(circuits=len(program.items),
                       shots=int(program.shots * sum(item.size() for item in program.items)))
        return out

    def trotter_line(self) -> str | None:
        """What the product-formula export costs in accuracy, for the command's output (None when exact)."""
        if self.trotter is None:
            return None
        return (f"{self.settings.label}: {self.trotter.gates} orbit gates as product formulae (order "
                f"{self.settings.trotter_order}, {self.settings.trotter_steps} steps): largest gate error "
                f"{self.trotter.max_gate:.2e}, whole circuit within {self.trotter.circuit_bound:.2e} "
                "(operator norm, up to a global phase)")

    def record(self) -> dict:
        """Backend, circuit cost, settings, mitigation, symmetric copies and job ids for the results folder."""
        return {"backend": self.settings.label, "device": self.target.name, "settings": self.settings.record(),
                "isa": self.isa.record(), "transpile_seconds": round(self.transpile_seconds, 3),
                "simulated_qubits": self.executable.qubits,
                "rows_per_configuration": self.plan.rows_per_configuration,
                "gate_angles": int(self.plan.circuit.num_parameters),
                "mitigation": mitigation_record(self.settings),
                "symmetrize": None if self.kept is None else {"copies": self.settings.symmetrize,
                                                              "symmetries": self.kept.describe()},
                "batch_id": self.batch_id, "job_ids": self.job_ids,
                "trotter_error": None if self.trotter is None else asdict(self.trotter)}


def print_cost(on_backend: BackendForceField, n: int) -> None:
    """`backend.dry_run=true`: what evaluating or submitting n configurations would send; nothing is sent."""
    cost = on_backend.cost(n)
    copies = on_backend.settings.symmetrize
    shots = "exact (no shots)" if cost["shots"] is None else f"{cost['shots']} in all"
    qubits = on_backend.isa.record()["physical_qubits"]
    print(f"dry run, nothing sent: {on_backend.settings.label} on {on_backend.target.name}\n"
          f"  PUBs {cost['pubs']}, circuits {cost['circuits']}, parameter sets {cost['parameter_sets']} "
          f"({n} configurations x {copies} cop{'y' if copies == 1 else 'ies'} x "
          f"{on_backend.plan.rows_per_configuration} rows), measurement bases {cost['measurement_bases']}\n"
          f"  shots: {shots}\n"
          f"  ISA circuit: depth {cost['isa_depth']}, {cost['two_qubit_gates']} two-qubit gates, "
          f"model qubits on device qubits {qubits}")
