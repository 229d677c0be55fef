"""The fast path: a batched, differentiable JAX statevector simulator of exactly the Qiskit circuit."""

from siqml_cli.simulate.statevector import Simulator, expectation_and_gradient

__all__ = ["Simulator", "expectation_and_gradient"]
