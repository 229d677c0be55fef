"""Where configuration is checked: the schema of every config group and command, declared once.

The dataclasses below are registered in Hydra's ConfigStore (as `<command>_schema`) and are the
base of every command's YAML file (`configs/<command>.yaml` lists `<command>_schema` first in its
defaults), so composing a config already rejects an unknown key or a value of the wrong type.
The range checks that types cannot express live in each dataclass's `__post_init__`, which runs
when a config is turned into typed settings (`parse`); both kinds of problem reach the user as one
line, `<key> must be ..., got <value>`, raised as `SiqmlError`.

Where a library checks its own options (the IBM runtime's Estimator), the schema leaves an open
mapping (`backend.options`) and lets that library judge it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, get_args, get_origin, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from siqml_cli.errors import SiqmlError

#: The config groups a command line can choose (`group=option`); a resumed run keeps them all.
GROUPS = ("molecule", "symmetry", "model", "loss", "noise", "optim", "split", "experiment", "arm", "backend")


# --------------------------------------------------------------------------- choices


class Choice(str, Enum):
    """A choice among names: equal to its name as a string, and printed as it (in messages, records)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Schedule(Choice):
    constant = "constant"
    cosine = "cosine"


class Precision(Choice):
    double = "double"
    single = "single"


class SymmetryName(Choice):
    full = "full"
    broken = "broken"
    rotation = "rotation"
    none = "none"


class Frame(Choice):
    """What each encoded atom's vector is measured from: the water dimer's `midpoint` (its default) or
    `bonds` (models/water_dimer.py FRAMES); an automatic model's `auto` (its default), `centroid` or
    `bonds` (models/auto.py FRAMES)."""

    midpoint = "midpoint"
    bonds = "bonds"
    auto = "auto"
    centroid = "centroid"


class PermutationGroup(Choice):
    """Which exchanges of identical atoms an automatic model is invariant under (models/graph.py)."""

    bonds = "bonds"
    all = "all"


class ModelFamily(Choice):
    """Which kind of model `siqml train` trains: the quantum model that `symmetry`, `layers`, `blocks` and the
    options build (a siVQLM, or the generic VQLM with symmetry=none); that siVQLM's classical twin (models/twin.py:
    a neural network with as many trained weights); or the classical anchor MACE (`siqml_cli.train.mace`, the
    optional extra `baselines`)."""

    sivqlm = "sivqlm"
    twin = "twin"
    mace = "mace"


class Observable(Choice):
    fixed = "fixed"
    trained = "trained"


class Features(Choice):
    """The generic VQLM's inputs (models/generic.py FEATURES)."""

    internal = "internal"
    cartesian = "cartesian"


class BackendKind(Choice):
    statevector = "statevector"
    aer = "aer"
    fake = "fake"
    ibm = "ibm"


class OrbitSynthesis(Choice):
    """How the exported circuit writes a multi-qubit orbit gate (models/spec.py ORBIT_SYNTHESES)."""

    exact = "exact"
    trotter = "trotter"


class ForceMethod(Choice):
    shift = "shift"
    finite_difference = "finite_difference"
    none = "none"


class Ensemble(Choice):
    nve = "nve"
    langevin = "langevin"


class DomainCheck(Choice):
    """What a configuration outside the model's training domain (`siqml_cli.domain`) gets: a flag and a
    warning, or an error (`domain=` of evaluate and md, the ASE calculator's `domain` keyword)."""

    warn = "warn"
    error = "error"


def parse_domain_check(value) -> DomainCheck:
    """`value` ('warn', 'error' or a DomainCheck) as a DomainCheck, or a one-line SiqmlError."""
    try:
        return DomainCheck(value)
    except ValueError:
        raise SiqmlError(f"domain must be one of {', '.join(m.value for m in DomainCheck)}, got {value!r}") from None


# --------------------------------------------------------------------------- range checks


def _integer(key: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SiqmlError(f"{key} must be an integer >= {minimum}{' or null' if allow_none else ''}, got {value!r}")


def _within(key: str, value, low: float = 0.0, high: float = math.inf, open_low: bool = False,
            open_high: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SiqmlError(f"{key} must be a number, got {value!r}")
    if value < low or value > high or (open_low and value == low) or (open_high and value == high):
        bound = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise SiqmlError(f"{key} must lie in {bound}, got {value!r}")


def _interval(key: str, value) -> tuple[float, float]:
    if value is None or len(value) != 2:
        raise SiqmlError(f"{key} must be two numbers [low, high], got {value!r}")
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise SiqmlError(f"{key} must be two finite numbers with low < high, got {[low, high]}")
    return low, high


# --------------------------------------------------------------------------- groups


@dataclass
class GenerateConfig:
    sampler: str = "normal_modes"                         # how configurations are drawn (data/generate.py)
    n: int = 1                                            # configurations `siqml data` samples
    params: dict[str, Any] = field(default_factory=dict)  # the sampler's parameters

    def __post_init__(self):
        from siqml_cli.data.generate import GENERATORS

        _integer("molecule.generate.n", self.n, 1)
        if self.sampler not in GENERATORS:
            raise SiqmlError(f"molecule.generate.sampler must be one of {', '.join(GENERATORS)}, got {self.sampler!r}")


@dataclass
class MoleculeConfig:
    """One entry of the molecule registry (configs/molecule/, siqml_cli/molecules.py)."""

    name: str = MISSING
    species: list[str] = MISSING
    data: str | None = None      # its data set (.h5 or .extxyz)
    geometry: str | None = None  # start geometry `siqml data` optimises (xyz/extxyz), for a normal-mode sampler
    model: str = "auto"          # `auto`, a hand-made circuit of the paper (lih, h2o, water_dimer), or `cluster`
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def __post_init__(self):
        from siqml_cli.data.generate import GENERATORS
        from siqml_cli.models import BUILDERS
        from siqml_cli.molecules import AUTO, CLUSTER

        if self.model not in (AUTO, CLUSTER) and self.model not in BUILDERS:
            raise SiqmlError(f"molecule.model must be {AUTO}, {CLUSTER} or one of {', '.join(sorted(BUILDERS))}, "
                             f"got {self.model!r}")
        if GENERATORS[self.generate.sampler].normal_modes and not self.geometry and not self.data:
            raise SiqmlError(f"molecule {self.name} needs molecule.geometry=<xyz file> (a start geometry) or "
                             "molecule.data=<data file>")


@dataclass
class SymmetryConfig:
    name: SymmetryName = SymmetryName.full


#: ModelConfig's keys that size MACE; the options `models.build_model` reads leave them out.
MACE_MODEL_KEYS = ("mace",)


@dataclass
class MaceConfig:
    """MACE's size and training budget (`model.family=mace`), passed to `mace_run_train` as its own options;
    the defaults are a small model that trains in minutes per data set on two CPU cores."""

    num_channels: int = 32
    max_L: int = 0
    num_interactions: int = 2
    correlation: int = 3
    r_max: float = 5.0            # Å
    max_num_epochs: int = 50      # the last quarter as MACE's second stage (--swa: energy weight raised)
    batch_size: int = 10
    threads: int = 1              # PyTorch's threads in MACE's training process
    lr: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    valid_fraction: float = 0.1   # of the training split, held out for MACE's checkpoint choice

    def __post_init__(self):
        for key in ("num_channels", "num_interactions", "correlation", "batch_size", "threads"):
            _integer(f"model.mace.{key}", getattr(self, key), 1)
        _integer("model.mace.max_num_epochs", self.max_num_epochs, 2)  # MACE's two stages need an epoch each
        _integer("model.mace.max_L", self.max_L, 0)
        for key in ("r_max", "lr"):
            _within(f"model.mace.{key}", getattr(self, key), open_low=True)
        for key in ("energy_weight", "forces_weight"):
            _within(f"model.mace.{key}", getattr(self, key))
        _within("model.mace.valid_fraction", self.valid_fraction, high=1.0, open_low=True, open_high=True)


@dataclass
class ModelConfig:
    """Options of every model; each model reads its own (models/__init__.py says which)."""

    family: ModelFamily = ModelFamily.sivqlm
    mace: MaceConfig = field(default_factory=MaceConfig)
    layers: int = 4
    blocks: int = 1
    frame: Frame | None = None    # null: the model's own default (midpoint for the water dimer, auto otherwise)
    group: PermutationGroup = PermutationGroup.bonds
    atom_readout: bool = False
    observable: Observable = Observable.fixed
    alpha_init: float = 1.0
    output_margin: float = 0.1
    output_range: list[float] | None = None
    features: Features = Features.internal
    feature_range: list[float] = field(default_factory=lambda: [0.0, math.pi])
    periodize: bool = False

    def __post_init__(self):
        for key in ("layers", "blocks"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SiqmlError(f"model.{key} must be a positive integer, got {value!r}")
        if not math.isfinite(self.alpha_init):
            raise SiqmlError("model.alpha_init must be a number (where the encoding scales start), "
                             f"got {self.alpha_init!r}")
        _within("model.output_margin", self.output_margin, high=0.5, open_high=True)
        if self.output_range is not None:
            _interval("model.output_range", self.output_range)
        low, high = _interval("model.feature_range", self.feature_range)
        self._check_periodize(low, high)

    def options(self) -> dict:
        """The settings as plain values (choices as their strings), the form `models.build_model` reads (the family
        included: it builds a siVQLM or its twin; MACE's sizes left out)."""
        plain = lambda v: v.value if isinstance(v, Choice) else v  # noqa: E731
        return {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name not in MACE_MODEL_KEYS}

    def _check_periodize(self, low: float, high: float) -> None:
        if self.periodize and not math.isclose(high - low, math.pi, rel_tol=1e-9):
            raise SiqmlError(f"model.periodize=true needs a feature_range of width pi (e.g. [0, 3.141592653589793]), "
                             f"so that features and their mirror images fill one 2 pi period; got {[low, high]}")


@dataclass
class LossConfig:
    force_weight: float = 0.0

    def __post_init__(self):
        _within("loss.force_weight", self.force_weight)


@dataclass
class LabelNoiseConfig:
    sigma: float = 0.0

    def __post_init__(self):
        _within("noise.sigma", self.sigma)


@dataclass
class OptimConfig:
    """The `train` node (the `optim` group): Adam's steps, rate and schedule."""

    steps: int = 1000
    lr: float = 0.01
    batch_size: int | None = None
    schedule: Schedule = Schedule.cosine
    lr_final_fraction: float = 0.05
    checkpoint_every: int = 100
    precision: Precision = Precision.single

    def __post_init__(self):
        _integer("train.steps", self.steps, 0)
        _within("train.lr", self.lr, open_low=True)
        _integer("train.batch_size", self.batch_size, 1, allow_none=True)
        _within("train.lr_final_fraction", self.lr_final_fraction, high=1.0)
        _integer("train.checkpoint_every", self.checkpoint_every, 1)


@dataclass
class LabelKeys:
    """Where an extxyz file written by another tool keeps its labels (eV, eV/Å); None tries the usual
    keys (`siqml_cli.data.io.ENERGY_KEYS`, `FORCES_KEYS`). For an HDF5 file: which of its datasets to read
    as energies and forces (e.g. a water cluster's `mbe2_energies`, `mbe2_forces`); None reads `energies`, `forces`."""

    energy_key: str | None = None
    forces_key: str | None = None


@dataclass
class SplitConfig(LabelKeys):
    """The `data` node of `siqml train` (the `split` group)."""

    path: str | None = None
    train_fraction: float = 0.8
    relevant_window: float | None = None

    def __post_init__(self):
        _within("data.train_fraction", self.train_fraction, high=1.0, open_low=True)
        if self.relevant_window is not None:
            _within("data.relevant_window", self.relevant_window, open_low=True)


@dataclass
class NoiseModelConfig:
    """Aer noise: a named fake device's model, or depolarizing gate errors and readout flips."""

    device: str | None = None
    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    readout: float = 0.0

    def __post_init__(self):
        rates = ("depolarizing_1q", "depolarizing_2q", "readout")
        for key in rates:
            if not 0 <= getattr(self, key) < 1:
                raise SiqmlError(f"backend.noise.{key} must be a probability in [0, 1), got {getattr(self, key)!r}")
        if self.device and any(getattr(self, k) for k in rates):
            raise SiqmlError("backend.noise: give either a device's noise model (noise.device) or depolarizing/readout "
                             "rates, not both")

    @property
    def active(self) -> bool:
        return bool(self.device) or any(p > 0 for p in (self.depolarizing_1q, self.depolarizing_2q, self.readout))


@dataclass
class MitigationConfig:
    """Short names for the runtime Estimator's error mitigation; None leaves the resilience level's
    default. The runtime judges the values (see `BackendConfig.__post_init__`); every other option of
    the runtime (sequence of dynamical decoupling, gate or measurement twirling alone, ZNE noise
    factors, job tags, ...) goes in `backend.options`, in the runtime's own structure."""

    resilience_level: int = 0
    measure_mitigation: bool | None = None
    zne_mitigation: bool | None = None
    dynamical_decoupling: bool = False
    twirling: bool | None = None

    @property
    def requested(self) -> bool:
        return bool(self.resilience_level or self.measure_mitigation or self.zne_mitigation
                    or self.dynamical_decoupling or self.twirling)


@dataclass
class BackendConfig:
    """Where the circuits run and how. `options`: any further runtime Estimator options (nested as in
    the runtime executor Estimator's EstimatorOptions, e.g. `{resilience: {zne: {noise_factors: [1, 3, 5]}}}`),
    applied after the keys above; the runtime checks them. `symmetrize`: K symmetry-equivalent copies of
    every configuration in the same PUBs, averaged, their spread an error indicator (1: off). `dry_run`:
    transpile and count what would run, run nothing."""

    kind: BackendKind = BackendKind.statevector
    name: str | None = None
    shots: int | None = None
    seed: int = 0
    optimization_level: int = 2
    forces: ForceMethod = ForceMethod.shift
    finite_difference_step: float = 0.001
    configurations_per_job: int = 100
    orbit_synthesis: OrbitSynthesis = OrbitSynthesis.exact
    trotter_steps: int = 1
    trotter_order: int = 2
    symmetrize: int = 1
    dry_run: bool = False
    noise: NoiseModelConfig = field(default_factory=NoiseModelConfig)
    mitigation: MitigationConfig = field(default_factory=MitigationConfig)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _integer("backend.symmetrize", self.symmetrize, 1)
        if self.kind == BackendKind.statevector:
            if self.symmetrize > 1 or self.dry_run:
                raise SiqmlError(f"backend.{'symmetrize' if self.symmetrize > 1 else 'dry_run'} needs a Qiskit "
                                 "backend (backend=aer|fake|ibm); the fast simulator is exact and runs no circuits")
            return
        if not (math.isfinite(self.finite_difference_step) and self.finite_difference_step > 0):
            raise SiqmlError(f"backend.finite_difference_step must be a positive number (Å), got "
                             f"{self.finite_difference_step!r}")
        if self.kind in (BackendKind.fake, BackendKind.ibm) and not self.name:
            raise SiqmlError(f"backend={self.kind.value} needs a device: add backend.name=..., e.g. "
                             f"{'fake_manila' if self.kind == BackendKind.fake else 'ibm_torino'}")
        _integer("backend.shots", self.shots, 1, allow_none=self.kind == BackendKind.aer)
        _integer("backend.seed", self.seed, 0)
        if not 0 <= self.optimization_level <= 3:
            raise SiqmlError(f"backend.optimization_level must be 0, 1, 2 or 3, got {self.optimization_level}")
        _integer("backend.configurations_per_job", self.configurations_per_job, 1)
        _integer("backend.trotter_steps", self.trotter_steps, 1)
        _integer("backend.trotter_order", self.trotter_order, 1)
        if self.trotter_order > 1 and self.trotter_order % 2:
            raise SiqmlError(f"backend.trotter_order must be 1 (Lie-Trotter) or even (Suzuki-Trotter: 2, 4, ...), "
                             f"got {self.trotter_order}")
        if self.kind == BackendKind.aer and self.shots is None and self.runtime:
            raise SiqmlError("backend=aer with error mitigation or backend.options needs backend.shots: they run "
                             "in the IBM runtime's Estimator (local mode), which samples; exact Aer has nothing to "
                             "mitigate")
        if self.runtime:
            runtime_options(self)  # the runtime's own check of the mitigation keys and `options`

    @property
    def runtime(self) -> bool:
        """Whether the IBM runtime's Estimator runs the circuits: on a device, a fake device, or Aer when
        mitigation or runtime options are asked for (Aer's own primitives have no mitigation)."""
        if self.kind in (BackendKind.fake, BackendKind.ibm):
            return True
        return self.kind == BackendKind.aer and (self.mitigation.requested or bool(self.options))

    @property
    def label(self) -> str:
        """A short tag for tables and folder names, e.g. `aer-exact`, `aer-fake_torino-noise-4000shots`,
        `fake_manila-4000shots-r1` (resilience level 1), `fake_torino-4000shots-r0-sym4` (4 symmetric copies)."""
        if self.kind == BackendKind.statevector:
            return "statevector"
        where = self.name
        if self.kind == BackendKind.aer:
            where = (f"aer-{self.noise.device}-noise" if self.noise.device
                     else "aer-noisy" if self.noise.active else "aer")
        label = f"{where}-{'exact' if self.shots is None else f'{self.shots}shots'}"
        if self.orbit_synthesis == OrbitSynthesis.trotter:
            label += f"-trotter{self.trotter_order}x{self.trotter_steps}"
        if self.runtime:
            m = self.mitigation
            extras = [name for name, on in (("mm", m.measure_mitigation), ("zne", m.zne_mitigation),
                                            ("dd", m.dynamical_decoupling), ("tw", m.twirling)) if on]
            label = f"{label}-r{m.resilience_level}" + "".join(f"+{e}" for e in extras)
        return label + (f"-sym{self.symmetrize}" if self.symmetrize > 1 else "")

    def record(self) -> dict:
        """What the results folder says about this backend (no credentials exist in here to leak)."""
        return _plain(asdict(self))

    @property
    def orbit_export(self) -> dict:
        """The keyword arguments of `ModelSpec.to_qiskit` that say how wide orbit gates are exported."""
        return {"orbit_synthesis": self.orbit_synthesis.value, "trotter_steps": self.trotter_steps,
                "trotter_order": self.trotter_order}


def runtime_options(settings: BackendConfig):
    """The runtime Estimator's options for `settings`: shots, seed, the mitigation keys, then
    `backend.options`; a value the runtime refuses is one line naming it."""
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions  # what the executor Estimator takes

    m = settings.mitigation
    where = "backend.mitigation"
    try:
        options = EstimatorOptions()
        options.default_shots = settings.shots
        options.resilience_level = m.resilience_level
        if m.measure_mitigation is not None:
            options.resilience.measure_mitigation = m.measure_mitigation
        if m.zne_mitigation is not None:
            options.resilience.zne_mitigation = m.zne_mitigation
        options.dynamical_decoupling.enable = m.dynamical_decoupling
        if m.twirling is not None:
            options.twirling.enable_gates = m.twirling
            options.twirling.enable_measure = m.twirling
        if settings.kind != BackendKind.ibm:
            options.simulator.seed_simulator = settings.seed
        for key, value in settings.options.items():  # one top-level group at a time, so a refusal names it
            where = f"backend.options.{key}"
            options.update(**{key: value})
    except Exception as exc:  # pydantic's ValidationError, or an unknown option's TypeError/AttributeError
        problems = exc.errors() if hasattr(exc, "errors") else [{"loc": (), "msg": str(exc)}]
        # pydantic's locations name its validators too (`function-after[...]`): keep the option names
        paths = [".".join(str(part) for part in p["loc"] if str(part).isidentifier() or isinstance(part, int))
                 for p in problems]
        detail = "; ".join(f"{path + ': ' if path else ''}{' '.join(str(p['msg']).split())}"
                           for path, p in zip(paths, problems))
        raise SiqmlError(f"the IBM runtime's Estimator refuses {where}: {detail}") from None
    return options


@dataclass
class ArmConfig:
    """One model of an experiment preset (configs/arm/)."""

    name: str = MISSING
    label: str = MISSING


@dataclass
class ExperimentConfig:
    """An experiment preset's description (configs/experiment/)."""

    name: str = MISSING
    paper: str = ""
    table: str = "models"
    figure: str = "parity"
    description: str = ""


# --------------------------------------------------------------------------- commands


@dataclass
class TrainCommand:
    molecule: MoleculeConfig = MISSING
    symmetry: SymmetryConfig = field(default_factory=SymmetryConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    noise: LabelNoiseConfig = field(default_factory=LabelNoiseConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    data: SplitConfig = field(default_factory=SplitConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    seed: int = 0
    resume: str | None = None
    arm: ArmConfig | None = None
    experiment: ExperimentConfig | None = None

    def __post_init__(self):
        _integer("seed", self.seed, 0)


@dataclass
class EvaluationData(LabelKeys):
    path: str | None = None
    max_configurations: int | None = None

    def __post_init__(self):
        if self.max_configurations is not None and self.max_configurations < 1:
            raise SiqmlError("data.max_configurations must be a positive integer or null, "
                             f"got {self.max_configurations!r}")


@dataclass
class EvaluateCommand:
    run: str = MISSING
    data: EvaluationData = field(default_factory=EvaluationData)
    out: str | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    domain: DomainCheck = DomainCheck.warn


@dataclass
class SubmitCommand:
    run: str = MISSING
    data: EvaluationData = field(default_factory=EvaluationData)
    backend: BackendConfig = field(default_factory=BackendConfig)


@dataclass
class RetrieveCommand:
    run: str = MISSING
    submission: str | None = None


@dataclass
class CheckSymmetryCommand:
    molecule: MoleculeConfig = MISSING
    symmetry: SymmetryConfig = field(default_factory=SymmetryConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)  # the molecule's training defaults; unused here
    loss: LossConfig = field(default_factory=LossConfig)     # likewise
    weights: str = "random"
    n_configs: int = 16
    seed: int = 0

    def __post_init__(self):
        _integer("n_configs", self.n_configs, 1)


@dataclass
class GenerateCommand:
    molecule: MoleculeConfig = MISSING
    symmetry: SymmetryConfig = field(default_factory=SymmetryConfig)  # the molecule's model and training
    model: ModelConfig = field(default_factory=ModelConfig)           # defaults come along; unused here
    train: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    n: int | None = None
    seed: int = 0
    out: str | None = None
    input: str | None = None
    export: str | None = None
    relabel: bool = True
    data: LabelKeys = field(default_factory=LabelKeys)  # of an extxyz input=
    workers: int | None = None  # labelling processes; null: one per core
    shards: int = 1             # split the labelling into this many jobs (a sweep over `shard`)
    shard: int | None = None    # this job's shard, 0 .. shards - 1; null: merge the shards and label the rest

    def __post_init__(self):
        if self.n is not None and self.n < 1:
            raise SiqmlError(f"n must be a positive number of configurations, got {self.n}")
        _integer("workers", self.workers, 1, allow_none=True)
        _integer("shards", self.shards, 1)
        if self.shard is not None and (isinstance(self.shard, bool) or not 0 <= self.shard < self.shards):
            raise SiqmlError(f"shard must be an integer from 0 to shards - 1 = {self.shards - 1}, got {self.shard!r}; "
                             f"e.g. shards=4 'shard=range(4)' -m")
        if self.shard is not None and (self.input or self.export):
            raise SiqmlError("shard= labels part of a sampled set; run input= and export= without it")


@dataclass
class MDConfig:
    ensemble: Ensemble = Ensemble.nve
    temperature: float = 300.0   # K
    timestep: float = 0.25       # fs
    steps: int = 8000
    friction: float = 0.01       # 1/fs
    write_every: int = 10
    max_distance: float = 6.0    # Å

    def __post_init__(self):
        _within("md.timestep", self.timestep, open_low=True)
        _within("md.temperature", self.temperature)
        _within("md.friction", self.friction)
        _within("md.max_distance", self.max_distance, open_low=True)
        _integer("md.steps", self.steps, 1)
        _integer("md.write_every", self.write_every, 1)


@dataclass
class ClusterConfig:
    """A water cluster of any size from a monomer run and a pair run (`siqml_cli.cluster`)."""

    monomer: str | None = None    # a run trained on +molecule=h2o with symmetry=full
    pair: str | None = None       # a run trained on +molecule=water_pair (two-body energies), symmetry=full
    geometry: str | None = None   # xyz/extxyz of the cluster, atoms O, H, H per molecule
    r_on: float = 6.0             # Å: the O-O distance where the pair term starts to be switched off
    r_off: float = 7.0            # Å: the cutoff, where it is off

    def __post_init__(self):
        given = [key for key in ("monomer", "pair", "geometry") if getattr(self, key)]
        if given and len(given) < 3:
            missing = [f"cluster.{key}=" for key in ("monomer", "pair", "geometry") if key not in given]
            raise SiqmlError(f"a cluster needs cluster.monomer=, cluster.pair= and cluster.geometry=; add "
                             f"{' and '.join(missing)}")
        _within("cluster.r_on", self.r_on, open_low=True)
        if not self.r_off > self.r_on:
            raise SiqmlError(f"cluster.r_off={self.r_off} must be larger than cluster.r_on={self.r_on} (Å): pairs are "
                             "switched off between the two")

    @property
    def given(self) -> bool:
        return bool(self.monomer)


@dataclass
class MDCommand:
    run: str | None = None
    start: str | None = None
    out: str | None = None
    seed: int = 0
    md: MDConfig = field(default_factory=MDConfig)
    domain: DomainCheck = DomainCheck.warn
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def __post_init__(self):
        if self.cluster.given == bool(self.run):
            raise SiqmlError("give either run=<a trained run> or a water cluster's cluster.monomer=, cluster.pair= and "
                             "cluster.geometry=, not both")


@dataclass
class VibrationsCommand:
    run: str = MISSING
    start: str | None = None
    out: str | None = None
    fmax: float = 1e-4    # eV/Å
    delta: float = 0.005  # Å
    reference: bool = True

    def __post_init__(self):
        _within("fmax", self.fmax, open_low=True)
        _within("delta", self.delta, open_low=True)


#: Each command's config file (configs/<name>.yaml) and its schema.
COMMAND_SCHEMAS = {"train": TrainCommand, "evaluate": EvaluateCommand, "submit": SubmitCommand,
                   "retrieve": RetrieveCommand, "check_symmetry": CheckSymmetryCommand,
                   "generate": GenerateCommand, "md": MDCommand, "vibrations": VibrationsCommand}

#: The schema of each config group option's node: what `configs/<group>/*.yaml` fill in.
GROUP_SCHEMAS = {"symmetry": SymmetryConfig, "model": ModelConfig, "loss": LossConfig, "noise": LabelNoiseConfig,
                 "optim": OptimConfig, "split": SplitConfig, "backend": BackendConfig}


def register() -> None:
    """Put the command schemas into Hydra's ConfigStore as `<command>_schema`, where the YAML files'
    defaults lists find them (outside any group, so `--help` does not offer them as choices)."""
    store = ConfigStore.instance()
    for name, schema in COMMAND_SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)
    # `+molecule=custom` reads its name and atoms from the file it is given (configs/molecule/custom.yaml)
    from siqml_cli import molecules

    OmegaConf.register_new_resolver("siqml_custom_name", molecules.custom_name, replace=True)
    OmegaConf.register_new_resolver("siqml_custom_species", molecules.custom_species, replace=True)
    OmegaConf.register_new_resolver("siqml_model_folder", model_folder, replace=True)


def model_folder(family: str, symmetry: str) -> str:
    """The folder of a run under results/<molecule>/: a quantum model's symmetry, a classical model's family."""
    return symmetry if family == ModelFamily.sivqlm.value else family


register()


# --------------------------------------------------------------------------- parsing


def parse(schema: type, cfg, key: str = ""):
    """`cfg` (a composed DictConfig, a run's saved config or a plain dict) as an instance of `schema`,
    every value checked; a problem is a SiqmlError of one line. `key` is the node's place in the
    full config, for the message."""
    try:
        node = OmegaConf.structured(schema)
        if cfg is not None:  # as plain values, so that the schema alone decides which keys exist
            node = OmegaConf.merge(node, _plain_values(cfg))
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise SiqmlError(describe(exc, schema, key)) from None


def _plain_values(cfg):
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    return cfg


def describe(exc: OmegaConfBaseException, schema: type | None = None, prefix: str = "") -> str:
    """One line for a config that does not fit its schema: `<key> must be <type>, got <value>` for a
    wrong type, OmegaConf's own sentence otherwise."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, SiqmlError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:  # raised by a resolver (a custom molecule's file): already one line
        return str(cause)
    full_key = ".".join(k for k in (prefix, str(exc.full_key or "")) if k)
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)) and full_key:
        return f"unknown key '{full_key}'"
    if isinstance(exc, ValidationError) and schema is not None and exc.full_key:
        expected = _field_type(schema, str(exc.full_key))
        if expected is not None:
            return f"{full_key} must be {_kind(expected)}, got {exc.value!r}"
    return " ".join(str(exc).split("\n")[0].split()) + (f" (at {full_key})" if full_key else "")


def _field_type(schema: type, dotted: str):
    hint: Any = schema
    for part in dotted.split("."):
        hint = _unwrap(hint)
        if not (isinstance(hint, type) and is_dataclass(hint)):
            return None
        hints = get_type_hints(hint)
        if part not in hints:
            return None
        hint = hints[part]
    return hint


def _unwrap(hint):
    """Optional[X] -> X."""
    return next(a for a in get_args(hint) if a is not type(None)) if type(None) in get_args(hint) else hint


def _kind(hint) -> str:
    optional = type(None) in get_args(hint)
    hint = _unwrap(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        text = f"one of {', '.join(m.value for m in hint)}"
    else:
        text = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
            hint, "a list" if get_origin(hint) is list else "a mapping" if get_origin(hint) is dict else str(hint))
    return f"{text} or null" if optional else text


def _plain(value):
    """Choices as their plain strings: what JSON and YAML records hold."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_command(command: str, cfg) -> Any:
    """The typed settings of a command's composed config (`command` as in COMMAND_SCHEMAS)."""
    return parse(COMMAND_SCHEMAS[command], cfg)


def parse_model(options) -> ModelConfig:
    """The `model` node (or a run's saved model options) as typed settings; keys the schema does not
    know (a trained generic VQLM's fitted feature scaling) are the caller's."""
    if isinstance(options, ModelConfig):
        return options
    known = {f.name for f in fields(ModelConfig)}
    if isinstance(options, DictConfig):
        options = OmegaConf.to_container(options, resolve=True)
    return parse(ModelConfig, {k: v for k, v in (options or {}).items() if k in known and v is not None}, "model")


def parse_backend(cfg) -> BackendConfig:
    """The `backend` node, a plain dict (e.g. a submission's record) or None (the fast simulator)."""
    if isinstance(cfg, BackendConfig):
        return cfg
    return parse(BackendConfig, cfg, "backend")


__all__ = ["COMMAND_SCHEMAS", "GROUPS", "GROUP_SCHEMAS", "ArmConfig", "BackendConfig", "BackendKind", "Choice",
           "ClusterConfig", "DomainCheck", "Ensemble", "EvaluationData", "ExperimentConfig", "Features", "ForceMethod",
           "Frame", "LabelKeys", "LabelNoiseConfig", "LossConfig", "MDConfig", "MaceConfig", "MitigationConfig",
           "ModelConfig", "ModelFamily", "MoleculeConfig", "NoiseModelConfig", "Observable", "OptimConfig",
           "Precision", "Schedule", "SplitConfig", "SymmetryConfig", "SymmetryName", "TrainCommand", "describe",
           "parse", "parse_backend", "parse_command", "parse_domain_check", "parse_model", "runtime_options"]
