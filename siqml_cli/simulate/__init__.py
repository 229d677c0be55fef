"""The fast path: a batched, differentiable JAX statevector simulator of exactly the Qiskit circuit."""

from siqml_cli.models.generic import GenericSpec
from siqml_cli.models.twin import TwinSpec
from siqml_cli.simulate.generic import GenericSimulator
from siqml_cli.simulate.resources import check_compile_size
from siqml_cli.simulate.statevector import Simulator, expectation_and_gradient
from siqml_cli.simulate.twin import TwinSimulator


def make_simulator(spec, precision: str = "double") -> Simulator | GenericSimulator | TwinSimulator:
    """The simulator of a model: `Simulator` for a siVQLM (`ModelSpec`), `GenericSimulator` for the generic VQLM,
    `TwinSimulator` for the classical twin; a model too large to compile is refused here, before anything is
    traced."""
    check_compile_size(spec)
    if isinstance(spec, TwinSpec):
        return TwinSimulator(spec, precision)
    return GenericSimulator(spec, precision) if isinstance(spec, GenericSpec) else Simulator(spec, precision)


__all__ = ["GenericSimulator", "Simulator", "TwinSimulator", "expectation_and_gradient", "make_simulator"]
