"""The fast path: a batched, differentiable JAX statevector simulator of exactly the Qiskit circuit."""

from siqml_cli.simulate.statevector import Simulator

__all__ = ["Simulator"]
