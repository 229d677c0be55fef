"""A trained run's force field evaluated on a Qiskit backend: energies, forces and their standard errors.

The ISA circuit is made once here (at construction); `pubs` turns configurations into a few PUBs
(one per `configurations_per_job` configurations, all shifted rows of a configuration together),
and `from_results` turns the estimator's values back into eV and eV/Å with the run's label scaling.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from siqml_cli.backends.estimators import make_estimator, make_target, mitigation_record
from siqml_cli.backends.isa import transpile
from siqml_cli.backends.settings import BackendSettings
from siqml_cli.backends.shift import ShiftPlan
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
                  stds: np.ndarray) -> Prediction:
    """Expectation values (N, rows) of `plan.rows(positions)` -> physical energies and forces, with the
    estimator's standard errors (0 when exact); no forces with backend.forces=none; the configurations outside
    the run's training domain flagged, as the fast simulator flags them."""
    d = plan.derivatives(positions, evs, stds)
    slope = forcefield.scaler.slope
    forces = None if d.grad is None else -slope * d.grad
    force_std = None if d.grad_std is None else slope * d.grad_std
    prediction = Prediction(forcefield.scaler.to_energy(d.f), forces, slope * d.f_std, force_std)
    return prediction.flagged(**forcefield.domain_flags(positions))


class BackendForceField:
    """`ForceField.predict`, but every expectation value comes from the backend's Estimator V2."""

    def __init__(self, forcefield: ForceField, settings: BackendSettings, target=None):
        self.forcefield, self.settings = forcefield, settings
        self.plan = plan_for(forcefield, settings)
        self.trotter = (trotter_error(forcefield.spec, self.plan.weights, settings.trotter_steps,
                                      settings.trotter_order)
                        if settings.orbit_synthesis == "trotter" and isinstance(forcefield.spec, ModelSpec) else None)
        self.target = target or make_target(settings)
        t0 = time.perf_counter()
        self.isa = transpile(self.plan.circuit, self.plan.observable, self.target, settings.optimization_level,
                             settings.seed)
        self.transpile_seconds = time.perf_counter() - t0

    def pubs(self, positions: np.ndarray) -> list[tuple]:
        rows = self.plan.rows(positions)
        return [(self.isa.circuit, self.isa.observable, rows[part])
                for part in chunks(len(rows), self.settings.configurations_per_job)]

    def predict(self, positions: np.ndarray, mode=None) -> Prediction:
        positions = np.asarray(positions, dtype=float)
        estimator = make_estimator(self.settings, self.target, mode=mode)
        result = estimator.run(self.pubs(positions)).result()
        evs = np.concatenate([np.asarray(r.data.evs, dtype=float) for r in result])
        stds = np.concatenate([np.asarray(r.data.stds, dtype=float) for r in result])
        return to_prediction(self.forcefield, self.plan, positions, evs, stds)

    def trotter_line(self) -> str | None:
        """What the product-formula export costs in accuracy, for the command's output (None when exact)."""
        if self.trotter is None:
            return None
        return (f"{self.settings.label}: {self.trotter.gates} orbit gates as product formulae (order "
                f"{self.settings.trotter_order}, {self.settings.trotter_steps} steps): largest gate error "
                f"{self.trotter.max_gate:.2e}, whole circuit within {self.trotter.circuit_bound:.2e} "
                "(operator norm, up to a global phase)")

    def record(self) -> dict:
        """Backend, circuit cost and settings for the results folder."""
        return {"backend": self.settings.label, "device": self.target.name, "settings": self.settings.record(),
                "isa": self.isa.record(), "transpile_seconds": round(self.transpile_seconds, 3),
                "rows_per_configuration": self.plan.rows_per_configuration,
                "gate_angles": int(self.plan.circuit.num_parameters),
                "mitigation": mitigation_record(self.settings),
                "trotter_error": None if self.trotter is None else asdict(self.trotter)}
