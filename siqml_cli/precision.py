"""Double precision where siqml computes, without switching JAX for the whole process.

The simulator, the shift rules and the training loop need 64-bit floats (they are compared with
Qiskit's statevector to 1e-10); a program that imports siqml may want JAX's default 32 bits for its
own work. `double_precision()` turns JAX's 64-bit types on for a block or a function and restores the
caller's setting afterwards. JAX compiles a function separately for each setting, so a function
compiled inside the scope must also be called inside it: every `siqml` command runs inside it, and so
do the public entry points of the simulators, the training loop and the shift rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def double_precision() -> Iterator[None]:
    """JAX's 64-bit types on inside the block (or the decorated function: `@double_precision()`)."""
    with jax.enable_x64(True):
        yield
