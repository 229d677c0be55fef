"""The `backend` config group, checked once and frozen: where the circuits run and how.

Every other module of `siqml_cli.backends` takes a `BackendSettings`, never the raw config, so a
bad value is one line for the user before anything is transpiled or sent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from omegaconf import DictConfig, OmegaConf

from siqml_cli.errors import SiqmlError

KINDS = ("statevector", "aer", "fake", "ibm")
FORCE_METHODS = ("shift", "finite_difference", "none")


@dataclass(frozen=True)
class Noise:
    """Aer noise: a named fake device's model, or depolarizing gate errors and readout flips."""

    device: str | None = None
    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    readout: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.device) or any(p > 0 for p in (self.depolarizing_1q, self.depolarizing_2q, self.readout))


@dataclass(frozen=True)
class Mitigation:
    """Error-mitigation options of the runtime Estimator; None leaves the resilience level's default."""

    resilience_level: int = 0
    measure_mitigation: bool | None = None
    zne_mitigation: bool | None = None
    dynamical_decoupling: bool = False
    twirling: bool | None = None


@dataclass(frozen=True)
class BackendSettings:
    kind: str = "statevector"
    name: str | None = None
    shots: int | None = None
    seed: int = 0
    optimization_level: int = 2
    forces: str = "shift"
    finite_difference_step: float = 1e-3
    configurations_per_job: int = 100
    noise: Noise = field(default_factory=Noise)
    mitigation: Mitigation = field(default_factory=Mitigation)

    @property
    def label(self) -> str:
        """A short tag for tables and folder names, e.g. `aer-exact`, `aer-fake_torino-noise-4000shots`,
        `fake_manila-4000shots-r1` (resilience level 1)."""
        if self.kind == "statevector":
            return "statevector"
        where = self.name
        if self.kind == "aer":
            where = (f"aer-{self.noise.device}-noise" if self.noise.device
                     else "aer-noisy" if self.noise.active else "aer")
        label = f"{where}-{'exact' if self.shots is None else f'{self.shots}shots'}"
        if self.kind == "aer":
            return label
        m = self.mitigation
        extras = [name for name, on in (("mm", m.measure_mitigation), ("zne", m.zne_mitigation),
                                        ("dd", m.dynamical_decoupling), ("tw", m.twirling)) if on]
        return f"{label}-r{m.resilience_level}" + "".join(f"+{e}" for e in extras)

    def record(self) -> dict:
        """What the results folder says about this backend (no credentials exist in here to leak)."""
        return asdict(self)


def _int(value, key: str, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SiqmlError(f"backend.{key} must be an integer >= {minimum}{' or null' if allow_none else ''}, "
                         f"got {value!r}")
    return value


def _probability(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SiqmlError(f"backend.noise.{key} must be a probability in [0, 1), got {value!r}")
    return float(value)


def _optional_bool(value, key: str):
    if value is not None and not isinstance(value, bool):
        raise SiqmlError(f"backend.mitigation.{key} must be true, false or null, got {value!r}")
    return value


def backend_settings(cfg: DictConfig | dict | None) -> BackendSettings:
    """Check `cfg.backend` (a DictConfig or plain dict); None means the fast simulator."""
    if cfg is None:
        return BackendSettings()
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    kind = raw.get("kind", "statevector")
    if kind not in KINDS:
        raise SiqmlError(f"unknown backend '{kind}'; choose one of: {', '.join(KINDS)}")
    if kind == "statevector":
        return BackendSettings()
    forces = raw.get("forces", "shift")
    if forces not in FORCE_METHODS:
        raise SiqmlError(f"backend.forces must be one of {', '.join(FORCE_METHODS)}, got {forces!r}")
    step = raw.get("finite_difference_step", 1e-3)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not (math.isfinite(step) and step > 0):
        raise SiqmlError(f"backend.finite_difference_step must be a positive number (Å), got {step!r}")
    name = raw.get("name")
    if kind in ("fake", "ibm") and not name:
        raise SiqmlError(f"backend={kind} needs a device: add backend.name=..., e.g. "
                         f"{'fake_manila' if kind == 'fake' else 'ibm_torino'}")
    noise_raw = raw.get("noise") or {}
    noise = Noise(device=noise_raw.get("device"),
                  **{k: _probability(noise_raw.get(k, 0.0), k)
                     for k in ("depolarizing_1q", "depolarizing_2q", "readout")})
    if noise.device and any(getattr(noise, k) for k in ("depolarizing_1q", "depolarizing_2q", "readout")):
        raise SiqmlError("backend.noise: give either a device's noise model (noise.device) or depolarizing/readout "
                         "rates, not both")
    mit = raw.get("mitigation") or {}
    resilience = mit.get("resilience_level", 0)
    if resilience not in (0, 1, 2) or isinstance(resilience, bool):
        raise SiqmlError(f"backend.mitigation.resilience_level must be 0, 1 or 2, got {resilience!r}")
    dd = mit.get("dynamical_decoupling", False)
    if not isinstance(dd, bool):
        raise SiqmlError(f"backend.mitigation.dynamical_decoupling must be true or false, got {dd!r}")
    mitigation = Mitigation(resilience, _optional_bool(mit.get("measure_mitigation"), "measure_mitigation"),
                            _optional_bool(mit.get("zne_mitigation"), "zne_mitigation"), dd,
                            _optional_bool(mit.get("twirling"), "twirling"))
    shots = _int(raw.get("shots"), "shots", 1, allow_none=kind == "aer")
    level = _int(raw.get("optimization_level", 2), "optimization_level", 0)
    if level > 3:
        raise SiqmlError(f"backend.optimization_level must be 0, 1, 2 or 3, got {level}")
    return BackendSettings(kind=kind, name=name, shots=shots, seed=_int(raw.get("seed", 0), "seed", 0),
                           optimization_level=level,
                           forces=forces, finite_difference_step=float(step),
                           configurations_per_job=_int(raw.get("configurations_per_job", 100),
                                                       "configurations_per_job", 1),
                           noise=noise, mitigation=mitigation)
