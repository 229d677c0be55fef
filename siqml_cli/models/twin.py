"""The classical twin of a siVQLM (docs/models.md, "The classical twin"): a small neural network with exactly
as many trained weights as the siVQLM it twins, on inputs invariant under the same symmetries.

It measures what the qubits buy at equal size. Inputs: the interatomic distances r_ij, symmetrised over the
siVQLM's permutation group of identical atoms. For each orbit of atom pairs under the group, the power sums

    p_m = sum_{(i, j) in orbit} f(r_ij)^m,   m = 1 .. |orbit|,   f(r) = exp(-r / DECAY_LENGTH),

which fix the orbit's multiset of f values (Newton's identities), hence of distances (f is one-to-one), and are
smooth, so forces are well defined. Distances are invariant under rotations, reflections and translations; a
permutation of the group maps every orbit onto itself, so it only reorders the terms of each sum. The F
features, standardised with the mean and standard deviation of the training split (`fit`, saved with the run),
feed one tanh layer:

    E(x) = sum_k v_k tanh(W_k . x + b_k) [+ c] [+ sum_{k < R - 1} u_k x_k].

Parameter-count rule (`twin_sizes`): with P the siVQLM's trained weights (every entry of its `weight_shapes`:
theta, the encoding scales alpha, SB's eps, a trained observable's weights), the hidden width is
H = floor(P / (F + 2)) (each hidden unit has F weights, a bias and an output weight) and the R = P - H (F + 2)
weights left over (0 <= R <= F + 1) are, in this order, the output bias c and linear weights u on the first
R - 1 features. A budget below F + 2 (not one hidden unit) is refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from siqml_cli.errors import SiqmlError
from siqml_cli.models.spec import ModelSpec, pair_orbits
from siqml_cli.precision import double_precision

#: the length (Angstrom) over which f(r) = exp(-r / DECAY_LENGTH) falls by e: about a covalent bond
DECAY_LENGTH = 1.0
#: what a trained twin adds to its options: the feature standardisation fitted on its training split
FITTED = ("feature_mean", "feature_std")
#: the family name `model.family` selects the twin by
FAMILY = "twin"


def group_generators(sivqlm: ModelSpec) -> tuple[tuple[int, ...], ...]:
    """The atom permutations that generate the group of identical-atom exchanges the siVQLM is invariant under:
    none with `symmetry=rotation`, the hand-made models' exchanges, an automatic model's group."""
    from siqml_cli.symmetry import EXCHANGES, exchanges, is_automatic

    if sivqlm.symmetry not in ("full", "broken"):
        return ()
    if not is_automatic(sivqlm) and sivqlm.name not in EXCHANGES:
        raise SiqmlError(f"the classical twin needs the permutation group of {sivqlm.name}'s identical atoms, and "
                         f"{sivqlm.name}'s hand-made model has none recorded; use molecule.model=auto or "
                         "model.family=sivqlm")
    return tuple(tuple(p) for p in exchanges(sivqlm).values())


def twin_sizes(n_trainable: int, n_features: int) -> tuple[int, int]:
    """(H, R): the hidden width and the weights left over for a budget of `n_trainable` weights on `n_features`
    features (the module's parameter-count rule)."""
    unit = n_features + 2
    hidden = n_trainable // unit
    return hidden, n_trainable - hidden * unit


def weights_per_layer(sivqlm: ModelSpec) -> int:
    """How many trained weights one more layer adds to the siVQLM (its count is linear in `layers`)."""
    return sivqlm.blocks * sivqlm.n_weights_per_block + sivqlm.n_scales + int(sivqlm.symmetry_breaking)


@dataclass(frozen=True)
class TwinSpec:
    """The classical twin of `sivqlm`: features of the atom-pair orbits `orbits`, one tanh layer of `hidden` units,
    and `remainder` leftover weights (output bias, then linear terms); `feature_mean` and `feature_std` are
    fitted on the training split (`fit`)."""

    sivqlm: ModelSpec
    orbits: tuple[tuple[tuple[int, int], ...], ...]
    hidden: int
    remainder: int
    feature_mean: tuple[float, ...] | None = None
    feature_std: tuple[float, ...] | None = None

    # ------------------------------------------------------------------ what it twins

    @property
    def name(self) -> str:
        return self.sivqlm.name

    @property
    def species(self) -> tuple[str, ...]:
        return self.sivqlm.species

    @property
    def layers(self) -> int:
        return self.sivqlm.layers

    @property
    def blocks(self) -> int:
        return self.sivqlm.blocks

    @property
    def symmetry(self) -> str:
        return self.sivqlm.symmetry

    @property
    def n_qubits(self) -> int:
        """A classical network: no qubits (the resource estimates count no state vectors)."""
        return 0

    @property
    def observable_range(self) -> tuple[float, float]:
        """The interval training energies are scaled into (the network's output is not bounded; this keeps the
        scaled labels of order one, as the observables' are)."""
        return -1.0, 1.0

    # ------------------------------------------------------------------ sizes

    @property
    def feature_names(self) -> tuple[str, ...]:
        label = [f"{element}{k}" for k, element in enumerate(self.species)]
        return tuple(f"p{m}({','.join(f'{label[i]}-{label[j]}' for i, j in orbit)})"
                     for orbit in self.orbits for m in range(1, len(orbit) + 1))

    @property
    def n_features(self) -> int:
        return sum(len(orbit) for orbit in self.orbits)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"hidden": (self.n_features, self.hidden), "hidden_bias": (self.hidden,), "output": (self.hidden,)}
        if self.remainder >= 1:
            shapes["output_bias"] = (1,)
        if self.remainder >= 2:
            shapes["linear"] = (self.remainder - 1,)
        return shapes

    def n_trainable(self) -> int:
        return int(sum(np.prod(s) for s in self.weight_shapes().values()))

    def init_weights(self, seed: int) -> dict[str, np.ndarray]:
        """LeCun-normal weights (variance 1 / fan-in), zero biases and linear terms: on standardised features each
        hidden unit starts in tanh's linear range, and the output starts of order one."""
        rng = np.random.default_rng(seed)
        shapes = self.weight_shapes()
        weights = {"hidden": rng.normal(0.0, 1.0 / math.sqrt(self.n_features), size=shapes["hidden"]),
                   "hidden_bias": np.zeros(shapes["hidden_bias"]),
                   "output": rng.normal(0.0, 1.0 / math.sqrt(self.hidden), size=shapes["output"])}
        return weights | {k: np.zeros(shapes[k]) for k in ("output_bias", "linear") if k in shapes}

    def random_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Generic weights (not an initialisation): for testing symmetries away from any special point."""
        rng = np.random.default_rng(seed)
        return {k: rng.normal(0.0, 1.0, size=s) for k, s in self.weight_shapes().items()}

    # ------------------------------------------------------------------ features

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.array([pair for orbit in self.orbits for pair in orbit], dtype=int).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def raw_features(self, positions):
        """Positions (..., A, 3) -> the orbits' power sums (..., F), array operations only (autodiff gives forces)."""
        first, second = self._pairs()
        difference = positions[..., first, :] - positions[..., second, :]
        f = jnp.exp(-jnp.sqrt(jnp.sum(difference * difference, axis=-1)) / DECAY_LENGTH)  # (..., pairs)
        columns, start = [], 0
        for orbit in self.orbits:
            block = f[..., start:start + len(orbit)]
            columns += [jnp.sum(block**m, axis=-1) for m in range(1, len(orbit) + 1)]
            start += len(orbit)
        return jnp.stack(columns, axis=-1)

    @double_precision
    def fit(self, positions: np.ndarray) -> TwinSpec:
        """This twin with its feature standardisation fitted on `positions` (the training split)."""
        raw = np.asarray(self.raw_features(jnp.asarray(np.asarray(positions, dtype=float))))
        mean, std = raw.mean(axis=0), raw.std(axis=0)
        flat = [n for n, s in zip(self.feature_names, std) if not s > 0]
        if flat:
            raise SiqmlError(f"feature {', '.join(flat)} of the classical twin is the same in every training "
                             "configuration, so it cannot be standardised; train on configurations that vary it")
        return dataclasses.replace(self, feature_mean=tuple(map(float, mean)), feature_std=tuple(map(float, std)))

    def features(self, positions):
        """Positions (..., A, 3) -> the standardised features (..., F), in JAX."""
        if self.feature_mean is None:
            raise SiqmlError("the classical twin's feature standardisation is not fitted; train the model "
                             "(or call spec.fit(positions)) before evaluating it")
        return (self.raw_features(positions) - jnp.asarray(self.feature_mean)) / jnp.asarray(self.feature_std)

    def energy(self, weights: dict, positions):
        """The network's output (..., ) for positions (..., A, 3), in JAX (in the dtype of `positions`)."""
        x = self.features(positions).astype(positions.dtype)
        out = jnp.tanh(x @ weights["hidden"] + weights["hidden_bias"]) @ weights["output"]
        if "output_bias" in weights:
            out = out + weights["output_bias"][0]
        if "linear" in weights:
            out = out + x[..., :self.remainder - 1] @ weights["linear"]
        return out

    def training_copies(self, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray | None):
        """The training set as given."""
        return positions, energies, forces

    def options(self) -> dict:
        """What `build_model` needs besides molecule, symmetry and sizes to rebuild this twin (model.json): the
        family, the twinned siVQLM's own options, and the fitted standardisation."""
        return {**self.sivqlm.options(), "family": FAMILY,
                "feature_mean": None if self.feature_mean is None else list(self.feature_mean),
                "feature_std": None if self.feature_std is None else list(self.feature_std)}

    def to_qiskit(self, *args, **kwargs):
        """A classical network has no circuit: a one-line error wherever a Qiskit backend would run it."""
        raise SiqmlError("the classical twin (model.family=twin) is a classical network with no circuit; it runs on "
                         "the built-in simulator only: use backend=statevector")


def build(sivqlm: ModelSpec, feature_mean=None, feature_std=None) -> TwinSpec:
    """The classical twin of `sivqlm`; a trained twin's fitted `feature_mean` / `feature_std`."""
    if not isinstance(sivqlm, ModelSpec):
        raise SiqmlError("symmetry=none (the generic VQLM) has no classical twin; use model.family=twin with "
                         "symmetry=full, broken or rotation")
    orbits = pair_orbits(len(sivqlm.species), group_generators(sivqlm))
    n_features = sum(len(orbit) for orbit in orbits)
    budget = sivqlm.n_trainable()
    hidden, remainder = twin_sizes(budget, n_features)
    if hidden < 1:
        per_layer = weights_per_layer(sivqlm)
        layers = sivqlm.layers + math.ceil((n_features + 2 - budget) / per_layer)
        raise SiqmlError(f"{sivqlm.name}'s siVQLM with D={sivqlm.layers}, B={sivqlm.blocks} has {budget} trained "
                         f"weights, fewer than the {n_features + 2} that one hidden unit of its classical twin needs "
                         f"on {n_features} features; use model.layers >= {layers} (or more model.blocks)")
    fitted = {}
    for key, value in (("feature_mean", feature_mean), ("feature_std", feature_std)):
        if value is not None:
            fitted[key] = tuple(float(v) for v in value)
            if len(fitted[key]) != n_features:
                raise SiqmlError(f"{key} has {len(fitted[key])} entries, the twin's features are {n_features}; the "
                                 "run's model.json does not match this model")
    return TwinSpec(sivqlm=sivqlm, orbits=orbits, hidden=hidden, remainder=remainder, **fitted)
