"""The classical twin (models/twin.py): equal parameter count, exact invariances, forces, the training pipeline,
and one-line errors for what has no twin."""

from __future__ import annotations

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from siqml_cli import molecules
from siqml_cli.cli import compose_check
from siqml_cli.data import read_dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.models import TwinSpec, build_model, twin
from siqml_cli.paths import resolve_input
from siqml_cli.precision import double_precision_scope
from siqml_cli.simulate import TwinSimulator, expectation_and_gradient, make_simulator
from siqml_cli.symmetry import exchanges, symmetry_table
from siqml_cli.train.run import checked_settings

#: (molecule, overrides): the defaults of each molecule config, and H2O's two symmetry settings
DEFAULTS = [("lih", []), ("h2o", ["symmetry=full"]), ("h2o", ["symmetry=broken"]), ("water_dimer", []),
            ("nh3", [])]


def configured(molecule: str, *overrides: str, family: str = "twin"):
    """The model `siqml train +molecule=<molecule> model.family=<family> <overrides>` trains."""
    return checked_settings(compose_check("train", [f"+molecule={molecule}", f"model.family={family}",
                                                    *overrides])).spec


@pytest.mark.parametrize(("molecule", "overrides"), DEFAULTS)
def test_parameter_count_equals_the_sivqlms(molecule, overrides):
    spec = configured(molecule, *overrides)
    sivqlm = configured(molecule, *overrides, family="sivqlm")
    assert isinstance(spec, TwinSpec) and not isinstance(sivqlm, TwinSpec)
    assert spec.n_trainable() == sivqlm.n_trainable() == spec.sivqlm.n_trainable()
    assert sum(w.size for w in spec.init_weights(0).values()) == sivqlm.n_trainable()
    if molecule == "water_dimer":  # the trained observable's weights are counted
        assert "observable" in sivqlm.weight_shapes()
    hidden, remainder = spec.hidden, spec.remainder  # the documented rule
    assert hidden == sivqlm.n_trainable() // (spec.n_features + 2) >= 1
    assert 0 <= remainder <= spec.n_features + 1


def group_closure(generators, n_atoms: int) -> list[tuple[int, ...]]:
    """Every element of the permutation group the generators generate."""
    found = {tuple(range(n_atoms))}
    frontier = list(found)
    while frontier:
        perm = frontier.pop()
        for g in generators:
            image = tuple(perm[k] for k in g)
            if image not in found:
                found.add(image)
                frontier.append(image)
    return sorted(found)


def random_twin(molecule: str):
    """A twin with its standardisation fitted on six configurations of the molecule's data set, and those."""
    spec = configured(molecule)
    entry = molecules.get(molecule)
    positions = read_dataset(resolve_input(entry.data), entry.species).positions[:6]
    return spec.fit(positions), positions


@pytest.mark.parametrize("molecule", ["h2o", "nh3", "water_dimer"])
def test_energy_invariant_and_forces_equivariant(molecule):
    spec, x = random_twin(molecule)
    group = group_closure(list(exchanges(spec).values()), len(spec.species))
    assert len(group) == {"h2o": 2, "nh3": 6, "water_dimer": 8}[molecule]
    rng = np.random.default_rng(3)
    with double_precision_scope():
        sim = TwinSimulator(spec)
        weights = {k: jnp.asarray(v) for k, v in spec.random_weights(5).items()}
        compiled = jax.jit(lambda positions: expectation_and_gradient(sim, weights, positions))

        def energy_forces(positions):
            f, grad = compiled(jnp.asarray(positions))
            return np.asarray(f), -np.asarray(grad)

        e, forces = energy_forces(x)
        rotation = Rotation.random(random_state=4).as_matrix()
        for matrix in (rotation, -rotation, np.diag([1.0, 1.0, -1.0])):  # a rotation, improper ones
            shift = rng.uniform(-3, 3, size=3)
            e_moved, f_moved = energy_forces(x @ matrix.T + shift)
            np.testing.assert_allclose(e_moved, e, rtol=0, atol=1e-10 * max(1.0, np.abs(e).max()))
            np.testing.assert_allclose(f_moved, forces @ matrix.T, rtol=0, atol=1e-10 * np.abs(forces).max())
        for perm in group:
            e_perm, f_perm = energy_forces(x[:, list(perm)])
            np.testing.assert_allclose(e_perm, e, rtol=0, atol=1e-10 * max(1.0, np.abs(e).max()))
            np.testing.assert_allclose(f_perm, forces[:, list(perm)], rtol=0, atol=1e-10 * np.abs(forces).max())


@pytest.mark.parametrize("molecule", ["h2o", "nh3"])
def test_unsymmetrised_features_fail_the_exchange_check(molecule):
    """Raw distances in atom order (every pair its own orbit: as many features) break the exchanges: the check
    of `siqml check-symmetry` sees it."""
    spec, x = random_twin(molecule)
    pairs = [pair for orbit in spec.orbits for pair in orbit]
    broken = dataclasses.replace(spec, orbits=tuple((pair,) for pair in sorted(pairs))).fit(x)
    assert broken.n_trainable() == spec.n_trainable()
    exchange = lambda table: table[table["check"].str.startswith("exchange")]  # noqa: E731
    assert (exchange(symmetry_table(spec, spec.random_weights(5), x))["result"] == "ok").all()
    failed = exchange(symmetry_table(broken, spec.random_weights(5), x))
    assert (failed["result"] == "FAIL").all() and (failed["max relative error"] > 1e-4).all()


def test_forces_are_minus_the_finite_difference_gradient():
    spec, x = random_twin("h2o")
    with double_precision_scope():
        sim = make_simulator(spec)
        weights = {k: jnp.asarray(v) for k, v in spec.random_weights(7).items()}
        _, grad = expectation_and_gradient(sim, weights, jnp.asarray(x))
        forces = -np.asarray(grad)
        energy = jax.jit(lambda positions: sim.expectation(weights, positions))
        h = 1e-5
        for atom, axis in itertools.product(range(3), range(3)):
            step = np.zeros_like(x)
            step[:, atom, axis] = h
            fd = (np.asarray(energy(x + step)) - np.asarray(energy(x - step))) / (2 * h)
            np.testing.assert_allclose(forces[:, atom, axis], -fd, rtol=0, atol=1e-7 * np.abs(forces).max())


def test_bad_input_is_one_line():
    with pytest.raises(SiqmlError, match="symmetry=none .* has no classical twin") as err:
        build_model("h2o", "none", 2, 1, {"family": "twin"})
    assert "\n" not in str(err.value)
    with pytest.raises(SiqmlError, match=r"use model.layers >= 2") as err:  # 11 weights < 15 features + 2
        build_model("water_dimer", "broken", 1, 1, {"family": "twin"})
    assert "11 trained weights" in str(err.value) and "\n" not in str(err.value)
    assert twin.build(build_model("water_dimer", "broken", 2, 1)).n_trainable() >= 17
    sivqlm = build_model("h2o", "full", 2, 1)
    with pytest.raises(SiqmlError, match="has none recorded"):
        twin.build(dataclasses.replace(sivqlm, name="ozone"))
    with pytest.raises(SiqmlError, match="backend=statevector"):
        configured("h2o", "backend=aer")
    with pytest.raises(SiqmlError, match="no circuit"):
        twin.build(sivqlm).to_qiskit()
    with pytest.raises(SiqmlError, match="model.family"):
        configured("h2o", family="classical")


def test_saved_options_rebuild_the_twin():
    spec, x = random_twin("water_dimer")
    again = build_model(spec.name, spec.symmetry, spec.layers, spec.blocks, json.loads(json.dumps(spec.options())))
    assert (again.options(), again.orbits, again.hidden, again.remainder) == (
        spec.options(), spec.orbits, spec.hidden, spec.remainder)
    with double_precision_scope():
        weights = {k: jnp.asarray(v) for k, v in spec.random_weights(2).items()}
        np.testing.assert_array_equal(again.energy(weights, jnp.asarray(x)), spec.energy(weights, jnp.asarray(x)))


@pytest.mark.slow
def test_train_evaluate_and_calculator(siqml, tmp_path):
    """`siqml train model.family=twin` end to end, then `siqml evaluate` and the ASE calculator on its run."""
    run = tmp_path / "run"
    trained = siqml("train", "+molecule=h2o", "model.family=twin", "train.steps=20", f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "classical twin" in trained.stdout
    model = json.loads((run / "model.json").read_text())
    record = json.loads((run / "run.json").read_text())
    assert model["options"]["family"] == "twin" and record["status"] == "complete"
    assert model["n_trainable"] == model["sivqlm_n_trainable"] == record["n_trainable"] == 38
    evaluated = siqml("evaluate", f"run={run}", f"out={tmp_path / 'evaluation'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert (tmp_path / "evaluation" / "mse.csv").is_file()

    from ase import Atoms

    from siqml_cli.api import load_run
    from siqml_cli.ase import SIQMLCalculator

    loaded = load_run(run)
    assert isinstance(loaded.spec, TwinSpec)
    data = loaded.forcefield.predict(np.array([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]]))
    atoms = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]],
                  calculator=SIQMLCalculator(run=run))
    assert atoms.get_potential_energy() == pytest.approx(float(data.energies[0]), abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), data.forces[0], atol=1e-9)

    refused = siqml("train", "+molecule=h2o", "model.family=twin", "symmetry=none", f"hydra.run.dir={tmp_path / 'x'}")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith("siqml train: error: symmetry=none")
