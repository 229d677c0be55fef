"""The generic VQLM baseline (symmetry=none, docs/models.md "The generic baseline").

The fast simulator against Qiskit's Statevector and exact Aer, forces against finite differences,
the invariances it has (internal coordinates: rotations, reflections, translations) and those it must
not have (the H exchange; every rotation for Cartesian inputs), the periodized training set, the CLI
end to end, and bad input. Shallow models (D=2) on a handful of configurations keep compiles short.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from siqml_cli.backends.forcefield import BackendForceField
from siqml_cli.backends.settings import backend_settings
from siqml_cli.data import read_dataset
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField, LabelScaler
from siqml_cli.models import build_model
from siqml_cli.simulate import GenericSimulator, expectation_and_gradient, make_simulator
from siqml_cli.symmetry import symmetry_table

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

VARIANTS = [("lih", "internal"), ("h2o", "internal"), ("lih", "cartesian"), ("h2o", "cartesian")]
SCALER = LabelScaler(e_min=-8.0, e_max=-7.0, out_lo=-0.8, out_hi=0.8)


def shipped(molecule: str):
    return read_dataset(REPO_ROOT / "data" / f"{molecule}.h5")


def fitted(molecule: str, features: str, layers: int = 2, blocks: int = 2, **options):
    """The generic model with its feature scaling fitted on the first 100 shipped configurations."""
    spec = build_model(molecule, "none", layers, blocks, {"features": features, **options})
    return spec.fit(shipped(molecule).positions[:100])


@pytest.mark.parametrize("molecule, features", VARIANTS)
def test_simulator_equals_qiskit_statevector(molecule, features):
    spec = fitted(molecule, features)
    sim = make_simulator(spec)
    assert isinstance(sim, GenericSimulator)
    weights = spec.random_weights(5)
    x = shipped(molecule).positions[100:104]
    _, observable = spec.to_qiskit()
    expected = [Statevector(spec.bound_circuit(weights, xi)).expectation_value(observable).real for xi in x]
    np.testing.assert_allclose(np.asarray(sim.expectation(weights, x)), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("molecule, features", [("h2o", "internal"), ("lih", "cartesian")])
def test_forces_are_minus_finite_differences_and_sum_to_zero(molecule, features):
    spec = fitted(molecule, features)
    sim = make_simulator(spec)
    weights = {k: jnp.asarray(v) for k, v in spec.random_weights(6).items()}
    x = shipped(molecule).positions[100:103]
    _, grad = (np.asarray(a) for a in jax.jit(lambda w, p: expectation_and_gradient(sim, w, p))(weights, x))
    energy = jax.jit(sim.expectation)
    h, fd = 1e-5, np.zeros_like(x)
    for atom in range(x.shape[1]):
        for axis in range(3):
            step = np.zeros_like(x)
            step[:, atom, axis] = h
            difference = np.asarray(energy(weights, x + step)) - np.asarray(energy(weights, x - step))
            fd[:, atom, axis] = difference / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7 * max(1.0, np.abs(fd).max()))
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-12)
    assert np.abs(grad).max() > 1e-3  # the check is not vacuous


def _verdicts(spec) -> dict[str, str]:
    positions = shipped(spec.name).positions[100:106]
    table = symmetry_table(spec, spec.random_weights(7), positions, seed=7)
    return dict(zip(table["check"], table["result"]))


def test_internal_model_is_o3_and_translation_invariant_but_not_exchange_invariant():
    verdicts = _verdicts(fitted("h2o", "internal"))
    for check in ("rotation (energy)", "rotation (forces equivariant)", "reflection x -> -x", "inversion r -> -r",
                  "translation", "sum of forces = 0", "forces = -finite difference"):
        assert verdicts[check] == "ok", (check, verdicts)
    assert verdicts["exchange H1 <-> H2"] == "broken (as designed)"


def test_cartesian_model_is_detected_as_not_rotation_invariant():
    verdicts = _verdicts(fitted("h2o", "cartesian"))
    assert verdicts["rotation (energy)"] == "broken (as designed)"
    assert verdicts["rotation about z"] == "broken (as designed)"
    for check in ("translation", "sum of forces = 0", "forces = -finite difference"):
        assert verdicts[check] == "ok", (check, verdicts)
    assert "FAIL" not in verdicts.values()


@pytest.mark.parametrize("molecule, features", [("lih", "internal"), ("h2o", "internal"), ("lih", "cartesian")])
def test_periodized_training_set_holds_the_mirrored_copies(molecule, features):
    spec = fitted(molecule, features, periodize=True)
    data = shipped(molecule)
    x, energies = data.positions[:100], data.energies[:100]
    positions, labels, forces = spec.training_copies(x, energies, None)
    n_copies = 2**spec.n_features
    assert positions.shape == (n_copies * 100,) + x.shape[1:] and forces is None
    np.testing.assert_array_equal(labels, np.tile(energies, n_copies))
    angles = np.asarray(spec.scaled_features(jnp.asarray(positions))).reshape(n_copies, 100, -1)
    original = angles[0]
    assert original.min() == pytest.approx(0.0) and original.max() == pytest.approx(np.pi)
    masks = list(itertools.product((False, True), repeat=spec.n_features))  # every subset of mirrored features
    for copy, mask in zip(angles, masks):
        np.testing.assert_allclose(copy, np.where(mask, 2 * np.pi - original, original), atol=1e-9)
    with pytest.raises(SiqmlError, match="energies only"):
        spec.training_copies(x, energies, data.forces[:100])


def test_without_periodize_the_training_set_is_unchanged():
    spec = fitted("lih", "internal")
    data = shipped("lih")
    positions, labels, forces = spec.training_copies(data.positions, data.energies, data.forces)
    assert positions is data.positions and labels is data.energies and forces is data.forces


def test_exact_aer_equals_fast_simulator():
    spec = fitted("h2o", "internal", blocks=1)
    ff = ForceField(spec, spec.random_weights(8), SCALER)
    x = shipped("h2o").positions[200:203]
    exact = ff.predict(x)
    prediction = BackendForceField(ff, backend_settings({"kind": "aer"})).predict(x)
    np.testing.assert_allclose(prediction.energies, exact.energies, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prediction.forces, exact.forces, rtol=0, atol=1e-6)


def test_qnn_loss_gradient_equals_fast_simulator():
    from siqml_cli.train.qnn import QnnModel

    spec = fitted("lih", "internal", layers=1, blocks=1)
    weights = spec.random_weights(9)
    x, targets = shipped("lih").positions[:1], np.array([0.3])
    loss, grads = QnnModel(spec, backend_settings({"kind": "aer"})).loss_and_gradient(weights, x, targets)
    sim = make_simulator(spec)
    expected_loss, expected = jax.value_and_grad(
        lambda w: jnp.mean((sim.expectation(w, jnp.asarray(x)) - targets) ** 2))(
        {k: jnp.asarray(v) for k, v in weights.items()})
    assert loss == pytest.approx(float(expected_loss), abs=1e-10)
    np.testing.assert_allclose(grads["theta"], np.asarray(expected["theta"]), rtol=0, atol=1e-8)


def test_initialisation_randomises_the_first_layer_only():
    weights = fitted("h2o", "internal", layers=3, blocks=2).init_weights(0)["theta"]
    assert weights.shape == (3, 2, 4, 2)
    assert np.all((weights[0] >= 0) & (weights[0] < 2 * np.pi)) and np.all(weights[0] != 0)
    assert np.all(weights[1:] == 0)


@pytest.mark.parametrize("options, message", [
    ({"features": "polar"}, "model.features must be one of internal, cartesian"),
    ({"periodize": True, "feature_range": [0.0, 2.0]}, "needs a feature_range of width pi"),
    ({"feature_range": [1.0, 1.0]}, "low < high"),
    ({"periodize": "sometimes"}, "model.periodize must be true or false"),  # "yes" is true, as in YAML
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(SiqmlError, match=message) as error:
        build_model("lih", "none", 2, 1, options)
    assert "\n" not in str(error.value)


def test_unfitted_model_says_so():
    spec = build_model("lih", "none", 1, 1)
    with pytest.raises(SiqmlError, match="not fitted"):
        make_simulator(spec).expectation(spec.init_weights(0), shipped("lih").positions[:2])


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def generic_run(tmp_path_factory, siqml):
    folder = tmp_path_factory.mktemp("generic") / "lih"
    result = siqml("train", "+molecule=lih", "symmetry=none", "train.steps=20", f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


def test_train_writes_a_complete_results_folder_and_evaluate_reads_it(generic_run, siqml, tmp_path):
    for name in ["config.yaml", "metrics.csv", "mse.csv", "mse.md", "model.json", "weights.npz",
                 "test_predictions.extxyz", "loss.png", "energy_parity.png", "force_parity.png", "lih_curve.png"]:
        assert (generic_run / name).stat().st_size > 0, name
    assert json.loads((generic_run / "run.json").read_text())["status"] == "complete"
    model = json.loads((generic_run / "model.json").read_text())
    assert model["symmetry"] == "none" and model["options"]["features"] == "internal"
    assert len(model["options"]["feature_min"]) == 1
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={generic_run}", f"out={out}")
    assert result.returncode == 0, result.stderr
    saved = ase.io.read(generic_run / "test_predictions.extxyz", index=":")
    again = ase.io.read(out / "predictions.extxyz", index=":")
    np.testing.assert_allclose([a.info["siqml_energy"] for a in again], [a.info["siqml_energy"] for a in saved],
                               atol=1e-6)
    np.testing.assert_allclose(np.stack([a.arrays["siqml_forces"] for a in again]),
                               np.stack([a.arrays["siqml_forces"] for a in saved]), atol=1e-5)


def test_check_symmetry_marks_what_the_generic_model_lacks(siqml):
    result = siqml("check-symmetry", "+molecule=h2o", "symmetry=none", "n_configs=4", "model.layers=2")
    assert result.returncode == 0, result.stderr
    assert "generic VQLM (internal features)" in result.stdout and "FAIL" not in result.stdout
    exchange = next(line for line in result.stdout.splitlines() if "exchange H1 <-> H2" in line)
    assert "broken (as designed)" in exchange


def test_water_dimer_has_no_generic_model(siqml, tmp_path):
    result = siqml("train", "+molecule=water_dimer", "symmetry=none", "train.steps=1",
                   f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "symmetry=none" in lines[0] and "water_dimer" in lines[0], result.stderr
