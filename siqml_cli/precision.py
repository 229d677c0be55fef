"""Double precision where siqml computes, without switching JAX for the whole process.

The simulator, the shift rules and the training loop need 64-bit floats (they are compared with
Qiskit's statevector to 1e-10); a program that imports siqml may want JAX's default 32 bits for its
own work. `double_precision` runs a function with JAX's 64-bit types on and restores the caller's
setting afterwards. JAX compiles a function separately for each setting, so a function compiled
inside the scope must also be called inside it: every `siqml` command runs inside it, and so do the
public entry points of the simulators, the training loop and the shift rules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)


def double_precision_scope():
    """A `with` block that runs with JAX's 64-bit types on (for code that is not one function, such as the
    Python API's loading and calling of a force field)."""
    return jax.enable_x64(True)


def double_precision(function: F) -> F:
    """`function` with JAX's 64-bit types on while it runs (a plain wrapper, so that it pickles: Hydra's
    joblib launcher sends the command's task to its workers)."""

    @functools.wraps(function)
    def scoped(*args, **kwargs):
        with double_precision_scope():
            return function(*args, **kwargs)

    return scoped  # type: ignore[return-value]
