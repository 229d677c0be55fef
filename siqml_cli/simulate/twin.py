"""The classical twin's forward pass (models/twin.py), behind the interface of the quantum simulators, so that the
training loop, `ForceField` and the symmetry checks run it as they run a circuit."""

from __future__ import annotations

import jax.numpy as jnp

from siqml_cli.models.twin import TwinSpec
from siqml_cli.precision import double_precision
from siqml_cli.simulate.statevector import precision_dtypes


class TwinSimulator:
    """Energies f(X; weights), the network's output, for a batch of configurations."""

    def __init__(self, spec: TwinSpec, precision: str = "double"):
        self.spec = spec
        self.real, _ = precision_dtypes(precision)

    def plan_summary(self, batch: int) -> str:
        """One line saying what a batch computes (as `Simulator.plan_summary`)."""
        spec = self.spec
        return (f"classical twin, batch {batch}: {spec.n_features} symmetrised distance features, "
                f"{spec.hidden} tanh units, {spec.n_trainable()} weights")

    @double_precision
    def expectation(self, weights, positions) -> jnp.ndarray:
        """The network's output: shape (N,)."""
        positions = jnp.asarray(positions, dtype=self.real)
        return self.spec.energy({k: jnp.asarray(v, dtype=self.real) for k, v in weights.items()}, positions)
