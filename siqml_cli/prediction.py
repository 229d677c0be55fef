"""What every way of running a model returns: energies, forces, their standard errors, per-configuration flags.

The fast simulator (`ForceField.predict`) and a Qiskit backend (`BackendForceField.predict`) give the same
type, so the ASE calculator, `siqml evaluate` and `siqml retrieve` treat both alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """Energies (N,) in eV and forces (N, A, 3) in eV/Å (None when not computed); standard errors where the
    model's values are estimated (shots), None where they are exact; `flags` holds per-configuration arrays
    (N,) that mark or measure each configuration (e.g. outside the training domain, a symmetry spread)."""

    energies: np.ndarray
    forces: np.ndarray | None = None
    energy_std: np.ndarray | None = None
    force_std: np.ndarray | None = None
    flags: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.energies)

    def flagged(self, **flags: np.ndarray) -> Prediction:
        """This prediction with more per-configuration flags."""
        for name, values in flags.items():
            if len(values) != len(self):
                raise ValueError(f"flag {name!r} has {len(values)} values for {len(self)} configurations")
        return replace(self, flags={**self.flags, **{k: np.asarray(v) for k, v in flags.items()}})
