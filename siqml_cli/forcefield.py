"""A trained force field: a model, its weights and its label scaling, in physical units.

This is what training produces, what `siqml evaluate` loads from a run folder, and what the
ASE calculator will wrap. Energies in eV, forces in eV/Å, positions in Å.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siqml_cli.data.io import atomic_path, write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.models import GenericSpec, ModelSpec, build_model
from siqml_cli.simulate import GenericSimulator, Simulator, expectation_and_gradient, make_simulator

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"


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
    def fit(cls, energies: np.ndarray, observable_range: tuple[float, float], margin: float) -> "LabelScaler":
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

    def __init__(self, spec: ModelSpec | GenericSpec, weights: dict, scaler: LabelScaler, chunk: int = 256,
                 simulator: Simulator | GenericSimulator | None = None):
        self.spec = spec
        self.scaler = scaler
        self.sim = simulator or make_simulator(spec)
        self.weights = {k: jnp.asarray(v, dtype=self.sim.real) for k, v in weights.items()}
        self.chunk = chunk
        self._predict = jax.jit(lambda w, x: expectation_and_gradient(self.sim, w, x))

    def predict(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies (N,) in eV and forces (N, A, 3) in eV/Å."""
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
        return self.scaler.to_energy(f), -self.scaler.slope * np.concatenate(forces)

    # ------------------------------------------------------------------ persistence

    def save(self, folder: Path, extra: dict | None = None) -> None:
        folder = Path(folder)
        info = {"molecule": self.spec.name, "symmetry": self.spec.symmetry, "layers": self.spec.layers,
                "blocks": self.spec.blocks, "species": list(self.spec.species), "scaler": asdict(self.scaler),
                "n_trainable": self.spec.n_trainable(), "options": self.spec.options(), **(extra or {})}
        with atomic_path(folder / WEIGHTS_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in self.weights.items()})
        write_text_atomic(folder / MODEL_FILE, json.dumps(info, indent=2))

    @classmethod
    def load(cls, folder: str | Path, **kwargs) -> "ForceField":
        folder = Path(folder)
        if not (folder / MODEL_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise SiqmlError(f"{folder} is not a trained run (no {MODEL_FILE} and {WEIGHTS_FILE}); "
                             "give a folder written by `siqml train`")
        info = json.loads((folder / MODEL_FILE).read_text())
        spec = build_model(info["molecule"], info["symmetry"], info["layers"], info["blocks"], info.get("options"))
        with np.load(folder / WEIGHTS_FILE) as npz:
            weights = {k: npz[k] for k in npz.files}
        return cls(spec, weights, LabelScaler(**info["scaler"]), **kwargs)
