"""Measured invariance errors of a model: the checks listed in docs/models.md, as numbers.

Used by `siqml check-symmetry` and by the tests, so the CLI reports exactly what CI checks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy.spatial.transform import Rotation

from siqml_cli import molecules
from siqml_cli.config import CheckSymmetryCommand, parse_command
from siqml_cli.data.generate import GENERATORS, sample
from siqml_cli.errors import SiqmlError
from siqml_cli.models import ModelSpec, TwinSpec, build_model
from siqml_cli.precision import double_precision
from siqml_cli.simulate import Simulator, expectation_and_gradient, make_simulator

TOLERANCE = 1e-10
#: identical-atom exchanges per molecule, as atom permutations
EXCHANGES = {"h2o": {"H1 <-> H2": [0, 2, 1]}, "lih": {},
             "water_dimer": {"H_a1 <-> H_a2": [0, 2, 1, 3, 4, 5], "H_b1 <-> H_b2": [0, 1, 2, 3, 5, 4],
                             "molecule a <-> b": [3, 4, 5, 0, 1, 2]}}

#: hand-made models whose inversion is a qubit permutation (the inversion pair encoding), so SB(eps) keeps it;
#: every automatically built model encodes on inversion pairs too
INVERSION_AS_QUBIT_SWAPS = {"water_dimer"}


def is_automatic(spec) -> bool:
    return spec.options().get("construction") == "auto"


def exchanges(spec) -> dict[str, list[int]]:
    """The atom permutations a model must be invariant under (with `symmetry=full|broken`): the hand-made
    models' table above, or every element of an automatic model's group but the identity."""
    if not is_automatic(spec):
        return EXCHANGES.get(spec.name, {})
    from siqml_cli.models.graph import group_elements

    options = spec.options()
    group = "identity" if spec.symmetry in ("rotation", "none") else options.get("group", "bonds")
    elements = group_elements(spec.species, np.asarray(options["reference_geometry"]), group)
    return {f"{tuple(perm)}": list(perm) for perm in elements if list(perm) != sorted(perm)}


def outside_group(spec) -> dict[str, list[int]]:
    """For an automatic model with the bond-graph group: exchanges of two identical atoms that the group does
    not hold (e.g. H2O2's two H alone), which must change the energy, so the table shows a check that fails."""
    if not is_automatic(spec) or spec.symmetry == "none":
        return {}
    kept = {tuple(p) for p in exchanges(spec).values()}
    species, n = spec.species, len(spec.species)
    found = {}
    for a in range(n):
        for b in range(a + 1, n):
            swap = list(range(n))
            swap[a], swap[b] = b, a
            if species[a] == species[b] and tuple(swap) not in kept:
                found[f"exchange {species[a]}{a} <-> {species[b]}{b} alone (outside the group)"] = swap
    return dict(list(found.items())[:2])


def _relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


@double_precision
def invariance_errors(spec: ModelSpec, sim: Simulator, weights: dict, positions: np.ndarray,
                      seed: int = 0) -> dict[str, float]:
    """Relative errors of every check, over the batch `positions` (N, A, 3)."""
    rng = np.random.default_rng(seed)
    w = {k: jnp.asarray(v) for k, v in weights.items()}
    f_and_grad = jax.jit(lambda w, x: expectation_and_gradient(sim, w, x))  # compiled once, for both calls
    f, grad = (np.array(a) for a in f_and_grad(w, jnp.asarray(positions)))
    compiled = jax.jit(sim.expectation)
    energy = lambda x: np.asarray(compiled(w, jnp.asarray(x)))  # noqa: E731
    rot = Rotation.from_quat(rng.normal(size=4))
    rotated = rot.apply(positions.reshape(-1, 3)).reshape(positions.shape)
    f_rot, grad_rot = (np.array(a) for a in f_and_grad(w, jnp.asarray(rotated)))
    z_rot = Rotation.from_rotvec([0.0, 0.0, rng.uniform(0, 2 * np.pi)])
    mirror = positions * np.array([-1.0, 1.0, 1.0])
    errors = {
        "rotation (energy)": _relative(f_rot, f),
        "rotation (forces equivariant)": _relative(grad_rot, rot.apply(grad.reshape(-1, 3)).reshape(grad.shape)),
        "rotation about z": _relative(energy(z_rot.apply(positions.reshape(-1, 3)).reshape(positions.shape)), f),
        "reflection x -> -x": _relative(energy(mirror), f),
        "inversion r -> -r": _relative(energy(-positions), f),
        "translation": _relative(energy(positions + rng.uniform(-3, 3, size=3)), f),
        "sum of forces = 0": float(np.max(np.abs(grad.sum(axis=1))) / max(np.max(np.abs(grad)), 1e-300)),
    }
    for name, perm in exchanges(spec).items():
        errors[f"exchange {name}"] = _relative(energy(positions[:, perm]), f)
    for name, perm in outside_group(spec).items():
        errors[name] = _relative(energy(positions[:, perm]), f)
    h = 1e-5
    step = np.zeros_like(positions)
    step[:, -1, 0] = h
    fd = (energy(positions + step) - energy(positions - step)) / (2 * h)
    errors["forces = -finite difference"] = _relative(grad[:, -1, 0], fd)
    return errors


def expected_invariances(spec: ModelSpec) -> dict[str, bool]:
    """Which checks must hold exactly for this model (finite differences hold to ~1e-8 only)."""
    if isinstance(spec, TwinSpec):  # distances: every rigid motion; power sums over orbits: the siVQLM's exchanges
        exact = {"rotation (energy)": True, "rotation (forces equivariant)": True, "rotation about z": True,
                 "reflection x -> -x": True, "inversion r -> -r": True, "translation": True,
                 "sum of forces = 0": True, "forces = -finite difference": True}
        return {**exact, **{f"exchange {name}": spec.symmetry in ("full", "broken") for name in exchanges(spec)},
                **{name: False for name in outside_group(spec)}}
    if spec.symmetry == "none":  # generic VQLM: distances and angles are O(3) invariant, nothing else is
        rotations = spec.feature_map.rotations  # internal coordinates; a Z-matrix's dihedral sines flip in a mirror
        reflections = spec.feature_map.reflections
        exact = {"rotation (energy)": rotations, "rotation (forces equivariant)": rotations,
                 "rotation about z": rotations, "reflection x -> -x": reflections, "inversion r -> -r": reflections,
                 "translation": True, "sum of forces = 0": True,
                 "forces = -finite difference": True}
        return {**exact, **{f"exchange {name}": False for name in exchanges(spec)},
                **{name: False for name in outside_group(spec)}}
    eps_on = spec.symmetry_breaking
    exact = {"rotation (energy)": not eps_on, "rotation (forces equivariant)": not eps_on,
             "rotation about z": True, "reflection x -> -x": not eps_on,
             "inversion r -> -r": not eps_on or spec.name in INVERSION_AS_QUBIT_SWAPS or is_automatic(spec),
             "translation": True, "sum of forces = 0": True, "forces = -finite difference": True}
    for name in exchanges(spec):
        exact[f"exchange {name}"] = spec.symmetry in ("full", "broken")
    for name in outside_group(spec):
        exact[name] = False
    return exact


@double_precision
def symmetry_table(spec: ModelSpec, weights: dict, positions: np.ndarray, seed: int = 0) -> pd.DataFrame:
    sim = make_simulator(spec)
    errors = invariance_errors(spec, sim, weights, positions, seed)
    expected = expected_invariances(spec)
    rows = []
    for name, err in errors.items():
        tol = 1e-6 if name.startswith("forces = -finite") else TOLERANCE
        must = expected[name]
        verdict = ("ok" if err <= tol else "FAIL") if must else ("broken (as designed)" if err > tol else "holds")
        rows.append({"check": name, "max relative error": err, "tolerance": tol,
                     "required": "yes" if must else "no", "result": verdict})
    return pd.DataFrame(rows)


def model_and_weights(settings: CheckSymmetryCommand) -> tuple[ModelSpec, dict]:
    """The model and weights to check: random or initial weights for the configured model, or a
    trained run's own model and weights (read once)."""
    molecule, choice, seed = settings.molecule.name, settings.weights, settings.seed
    if choice in ("random", "init"):
        model = settings.model
        spec = build_model(molecule, settings.symmetry.name, model.layers, model.blocks,
                           {**model.options(), **molecules.from_settings(settings.molecule).model_options()})
        return spec, spec.random_weights(seed) if choice == "random" else spec.init_weights(seed)
    from siqml_cli.runs import RunFolder

    forcefield = RunFolder(choice).load_forcefield()
    if forcefield.spec.name != molecule:
        raise SiqmlError(f"{choice} holds a {forcefield.spec.name} model, not {molecule}; "
                         f"use +molecule={forcefield.spec.name}")
    return forcefield.spec, {k: np.asarray(v) for k, v in forcefield.weights.items()}


def configurations(molecule: molecules.Molecule, params, n: int, seed: int) -> np.ndarray:
    """`n` configurations drawn as the molecule's data set is (no labels needed): a normal-mode sampler draws
    around the minimum its data file records."""
    modes = None
    if GENERATORS[molecule.sampler].normal_modes:
        from siqml_cli.data.io import read_dataset
        from siqml_cli.data.normal_modes import NormalModes
        from siqml_cli.paths import resolve_input

        if not molecule.data or not resolve_input(molecule.data).is_file():
            raise SiqmlError(f"{molecule.name} has no data file yet to draw configurations around its minimum; make "
                             f"it with `siqml data +molecule={molecule.name}` (n=10 is enough for this check)")
        data = read_dataset(resolve_input(molecule.data), molecule.species)
        modes = NormalModes.from_attrs(data.species, data.attrs)
    return sample(molecule.sampler, n, seed, {k: (list(v) if isinstance(v, (list, tuple)) else v)
                                               for k, v in dict(params).items()}, modes)


def check_symmetry_command(cfg: DictConfig) -> None:
    settings = parse_command("check_symmetry", cfg)
    spec, weights = model_and_weights(settings)
    positions = configurations(molecules.from_settings(settings.molecule), settings.molecule.generate.params,
                               settings.n_configs, settings.seed)
    if settings.weights in ("random", "init"):  # a trained run keeps its own feature scaling
        spec = spec.fit(positions)
    table = symmetry_table(spec, weights, positions, settings.seed)
    kind = ("classical twin" if isinstance(spec, TwinSpec) else f"generic VQLM ({spec.features} features)"
            if spec.symmetry == "none" else "siVQLM")
    print(f"{spec.name} {kind}, symmetry={spec.symmetry}, D={spec.layers}, B={spec.blocks}, "
          f"weights={settings.weights}, {len(positions)} random configurations")
    print(table.to_string(index=False, formatters={"max relative error": "{:.2e}".format,
                                                   "tolerance": "{:.0e}".format}))
    if (table["result"] == "FAIL").any():
        raise SiqmlError("a required invariance does not hold (see the table above)")
