"""A trained force field: a model, its weights and its label scaling, in physical units.

This is what training produces, what a run folder (`siqml_cli.runs.RunFolder`) saves and loads, and
what `siqml evaluate` and the ASE calculator run. Energies in eV, forces in eV/Å, positions in Å.
It carries the domain of its training configurations (`siqml_cli.domain.Domain`; None for runs trained
before domains were recorded), and every prediction flags the configurations outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from siqml_cli.domain import Domain
from siqml_cli.errors import SiqmlError
from siqml_cli.models import GenericSpec, ModelSpec
from siqml_cli.precision import double_precision
from siqml_cli.prediction import Prediction
from siqml_cli.simulate import GenericSimulator, Simulator, expectation_and_gradient, make_simulator


@dataclass(frozen=True)
class LabelScaler:
    """MinMax map of energies [e_min, e_max] (training split) onto [out_lo, out_hi] of the observable.

    Forces scale with the same factor: F = -dE/dX = -slope * df/dX.
    """

    e_min: float
    e_max: float
    out_lo: float
    out_hi: float

    @classmethod
    def fit(cls, energies: np.ndarray, observable_range: tuple[float, float], margin: float) -> LabelScaler:
        lo, hi = observable_range
        width = hi - lo
        e_min, e_max = float(np.min(energies)), float(np.max(energies))
        if not e_max > e_min:
            raise SiqmlError("all training energies are equal; a force field needs varying energies")
        return cls(e_min, e_max, lo + margin * width, hi - margin * width)

    @property
    def slope(self) -> float:
        """eV per unit of the observable."""
        return (self.e_max - self.e_min) / (self.out_hi - self.out_lo)

    def to_model(self, energies):
        return self.out_lo + (energies - self.e_min) / self.slope

    def to_energy(self, f):
        return self.e_min + (f - self.out_lo) * self.slope


class ForceField:
    """Energies and forces of a model (siVQLM or generic VQLM) with given weights, batched and compiled once per
    chunk size."""

    @double_precision  # the simulator computes in 64 bits whatever the caller's JAX setting
    def __init__(self, spec: ModelSpec | GenericSpec, weights: dict, scaler: LabelScaler, chunk: int = 256,
                 simulator: Simulator | GenericSimulator | None = None, domain: Domain | None = None):
        self.spec = spec
        self.scaler = scaler
        self.domain = domain
        self.sim = simulator or make_simulator(spec)
        self.weights = {k: jnp.asarray(v, dtype=self.sim.real) for k, v in weights.items()}
        self.chunk = chunk
        self._predict = jax.jit(lambda w, x: expectation_and_gradient(self.sim, w, x))

    def domain_flags(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """{"out_of_domain": (N,) bool} for `Prediction.flagged`; {} without a recorded domain."""
        if self.domain is None:
            return {}
        return {"out_of_domain": self.domain.check(positions)[0]}

    @double_precision  # compiled and called in the precision its weights were made in
    def predict(self, positions: np.ndarray) -> Prediction:
        """Energies (N,) in eV and forces (N, A, 3) in eV/Å, exact (no standard errors), with the
        configurations outside the training domain flagged (`domain_flags`)."""
        positions = np.asarray(positions, dtype=float)
        n = len(positions)
        size = min(self.chunk, max(n, 1))
        energies, forces = [], []
        for start in range(0, n, size):
            block = positions[start:start + size]
            pad = size - len(block)
            if pad:  # keep one shape so the compiled function is reused
                block = np.concatenate([block, np.repeat(block[-1:], pad, axis=0)])
            f, grad = self._predict(self.weights, jnp.asarray(block, dtype=self.sim.real))
            energies.append(np.asarray(f)[:size - pad])
            forces.append(np.asarray(grad)[:size - pad])
        f = np.concatenate(energies)
        prediction = Prediction(self.scaler.to_energy(f), -self.scaler.slope * np.concatenate(forces))
        return prediction.flagged(**self.domain_flags(positions))
