"""Ready for today's IBM hardware (issue #22): Heron fake devices in local mode on the qubits the circuit
touches, the runtime's Estimator options passed through and recorded, dry runs, and symmetric copies as an
error signal. Nothing is mocked: local mode, Aer and the runtime's options objects are the real thing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_backends import REPO_ROOT, SCALER, configurations, forcefield

from siqml_cli.backends import jobs
from siqml_cli.backends.estimators import fake_device, mitigation_record
from siqml_cli.backends.forcefield import BackendForceField
from siqml_cli.backends.local import restricted_target
from siqml_cli.backends.settings import backend_settings
from siqml_cli.backends.symmetrize import SPREAD_ENERGY, SPREAD_FORCES, SymmetryCopies, kept_symmetries
from siqml_cli.config import runtime_options
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField
from siqml_cli.models import build_model
from siqml_cli.runs import SPLIT_FILE, RunFolder

HERON = ["fake_torino", "fake_fez", "fake_marrakesh"]


# --------------------------------------------------------------------------- Heron devices in local mode


def test_restricted_target_keeps_the_qubits_errors_and_couplings():
    device = fake_device("fake_torino")
    qubits = [80, 81, 92, 99]
    small = restricted_target(device.target, qubits)
    assert small.num_qubits == 4
    for i, q in enumerate(qubits):
        assert small["measure"][(i,)].error == device.target["measure"][(q,)].error  # readout error
        assert small["sx"][(i,)].error == device.target["sx"][(q,)].error
        assert small.qubit_properties[i].t1 == device.target.qubit_properties[q].t1
    couplings = {tuple(qubits[i] for i in pair) for pair in small["cz"]}
    assert couplings == {pair for pair in device.target["cz"] if set(pair) <= set(qubits)} and couplings
    assert small["cz"][(0, 1)].error == device.target["cz"][(80, 81)].error


@pytest.mark.parametrize("name", [HERON[0], *(pytest.param(n, marks=pytest.mark.slow) for n in HERON[1:])])
def test_heron_fake_devices_run_in_local_mode_with_and_without_mitigation(name):
    """Today's 133-156 qubit devices: the runtime's Estimator on the qubits the ISA circuit touches."""
    ff = forcefield("lih", "full", layers=1)
    x = configurations(ff.spec, 2, seed=8)
    exact = ff.predict(x).energies
    for level in (0, 1):
        settings = backend_settings({"kind": "fake", "name": name, "shots": 300, "seed": 2, "forces": "none",
                                     "mitigation": {"resilience_level": level}})
        on_device = BackendForceField(ff, settings)
        assert on_device.target.num_qubits >= 133
        assert set(on_device.isa.record()["physical_qubits"]) <= set(on_device.executable.qubits)
        assert len(on_device.executable.qubits) < 10 and on_device.executable.circuit.num_qubits < 10
        prediction = on_device.predict(x)
        assert np.all(np.isfinite(prediction.energies)) and np.all(prediction.energy_std > 0)
        assert np.max(np.abs(prediction.energies - exact)) < 0.5 * abs(SCALER.slope) * 3  # |<O>| <= 3: a bound
        record = on_device.record()
        assert record["mitigation"]["applied"] and len(record["job_ids"]) == 1
        assert record["mitigation"]["options"]["resilience"]["measure_mitigation"] is bool(level)


# --------------------------------------------------------------------------- the runtime's options


def test_every_option_reaches_the_runtime_options_object():
    settings = backend_settings({
        "kind": "fake", "name": "fake_torino", "shots": 1000, "seed": 5,
        "mitigation": {"resilience_level": 2, "dynamical_decoupling": True},
        "options": {"dynamical_decoupling": {"sequence_type": "XY4"},
                    "twirling": {"enable_gates": True, "enable_measure": False, "num_randomizations": 12},
                    "resilience": {"zne": {"noise_factors": [1, 2, 3], "extrapolator": "linear"}},
                    "environment": {"job_tags": ["siqml", "rehearsal"]}}})
    options = runtime_options(settings)
    assert options.dynamical_decoupling.enable and options.dynamical_decoupling.sequence_type == "XY4"
    assert options.twirling.enable_gates is True and options.twirling.enable_measure is False
    assert options.twirling.num_randomizations == 12
    assert list(options.resilience.zne.noise_factors) == [1, 2, 3] and options.resilience.zne.extrapolator == "linear"
    assert options.environment.job_tags == ["siqml", "rehearsal"]
    assert options.default_shots == 1000 and options.simulator.seed_simulator == 5 and options.resilience_level == 2
    recorded = mitigation_record(settings)["options"]  # as the runtime finalizes them
    assert recorded["dynamical_decoupling"]["sequence_type"] == "XY4"
    assert recorded["resilience"]["zne"]["noise_factors"] == [1, 2, 3]
    assert recorded["resilience"]["zne_mitigation"] is True  # level 2's default, filled in by the runtime
    assert recorded["environment"]["job_tags"] == ["siqml", "rehearsal"]


@pytest.mark.parametrize("options, message", [
    ({"twirling": {"spin": True}}, "twirling"),
    ({"dynamical_decoupling": {"sequence_type": "XZ"}}, "sequence_type"),
    ({"resilience": {"zne": {"noise_factors": [0.5]}}}, "noise_factors"),
    ({"nonsense": 1}, "nonsense"),
])
def test_options_the_runtime_refuses_are_one_line(options, message):
    with pytest.raises(SiqmlError, match=message) as caught:
        backend_settings({"kind": "fake", "name": "fake_torino", "shots": 100, "options": options})
    assert "refuses" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("override, message", [
    ("+backend.options.twirling.spin=1", "refuses backend.options.twirling: spin"),
    ("backend.symmetrize=0", "backend.symmetrize must be an integer >= 1"),
])
def test_bad_submission_is_one_line_and_sends_nothing(lih_run, siqml, tmp_path, override, message):
    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    result = siqml("submit", f"run={run}", "backend=fake", "backend.forces=none", override)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1  # a usage error
    assert not (run / jobs.HARDWARE_DIR).exists()


def test_aer_with_mitigation_runs_through_the_runtime_and_needs_shots():
    with pytest.raises(SiqmlError, match="needs backend.shots"):
        backend_settings({"kind": "aer", "mitigation": {"resilience_level": 1}})
    plain = backend_settings({"kind": "aer", "shots": 100})
    assert not plain.runtime and mitigation_record(plain)["applied"] is False
    ff = forcefield("lih", "full", layers=1)
    settings = backend_settings({"kind": "aer", "shots": 400, "forces": "none", "mitigation": {"resilience_level": 1},
                                 "noise": {"depolarizing_2q": 0.02, "readout": 0.05}})
    on_aer = BackendForceField(ff, settings)
    prediction = on_aer.predict(configurations(ff.spec, 2, seed=3))
    assert np.all(np.isfinite(prediction.energies))
    assert on_aer.record()["mitigation"]["applied"] and settings.label == "aer-noisy-400shots-r1"


def test_dry_run_counts_and_sends_nothing(lih_run, siqml, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    result = siqml("submit", f"run={run}", "backend=fake", "backend.name=fake_fez", "backend.dry_run=true",
                   "backend.forces=none", "backend.symmetrize=2", "data.max_configurations=3",
                   "backend.shots=100", "backend.mitigation.resilience_level=1")
    assert result.returncode == 0, result.stderr
    assert "dry run, nothing sent" in result.stdout
    assert "parameter sets 6 (3 configurations x 2 copies x 1 rows)" in result.stdout
    assert "two-qubit gates" in result.stdout and "shots:" in result.stdout
    assert not (run / jobs.HARDWARE_DIR).exists()


# --------------------------------------------------------------------------- symmetric copies


@pytest.mark.parametrize("molecule, symmetry", [("h2o", "full"), ("lih", "full"), ("h2o", "broken")])
def test_copies_on_the_exact_simulator_give_one_energy_and_mapped_back_forces(molecule, symmetry):
    spec = build_model(molecule, symmetry, 2, 1)
    ff = ForceField(spec, spec.random_weights(4), SCALER)
    x = configurations(spec, 3, seed=4)
    copies = SymmetryCopies.draw(spec, len(x), 6, seed=1)
    assert np.allclose(np.abs(np.linalg.det(copies.rotations)), 1.0)
    per_copy = ff.predict(copies.positions(x))
    assert np.ptp(per_copy.energies.reshape(3, 6), axis=1).max() < 1e-10  # the model is invariant
    assert not np.allclose(copies.positions(x)[1], x[0])  # and the copies differ
    combined = copies.combine(per_copy)
    plain = ff.predict(x)
    np.testing.assert_allclose(combined.energies, plain.energies, atol=1e-10)
    np.testing.assert_allclose(copies.forces_back(per_copy.forces), np.repeat(plain.forces[:, None], 6, 1),
                               atol=1e-8)
    assert combined.flags[SPREAD_ENERGY].max() < 1e-10 and combined.flags[SPREAD_FORCES].max() < 1e-8


def test_broken_symmetry_keeps_only_rotations_about_z():
    kept = kept_symmetries(build_model("h2o", "broken", 2, 1))
    assert kept.rotations == "z" and not kept.reflections and "rotations about z" in kept.describe()
    copies = SymmetryCopies.draw(build_model("h2o", "broken", 2, 1), 4, 5, seed=0)
    np.testing.assert_allclose(copies.rotations[..., 2, :], np.broadcast_to([0, 0, 1.0], (4, 5, 3)), atol=1e-12)
    full = kept_symmetries(build_model("h2o", "full", 2, 1))
    assert full.rotations == "all" and full.reflections and full.exchanges == ((0, 2, 1),)


def test_symmetrized_exact_aer_equals_plain_evaluation():
    ff = forcefield("h2o", "full", layers=1)
    x = configurations(ff.spec, 2, seed=6)
    on_aer = BackendForceField(ff, backend_settings({"kind": "aer", "symmetrize": 3}))
    prediction = on_aer.predict(x)
    plain = ff.predict(x)
    np.testing.assert_allclose(prediction.energies, plain.energies, atol=1e-10)
    np.testing.assert_allclose(prediction.forces, plain.forces, atol=1e-8)
    assert prediction.flags[SPREAD_ENERGY].max() < 1e-10
    assert len(on_aer.pubs(x, on_aer.copies(2))) == 1  # the copies are rows of the same PUB


def test_noisy_density_matrix_shows_a_spread_no_shot_noise_can_fake():
    """Exact noisy values (density matrix, no shots) with a device's non-uniform noise: copies disagree."""
    ff = forcefield("h2o", "full", layers=1)
    x = configurations(ff.spec, 2, seed=7)
    settings = backend_settings({"kind": "aer", "forces": "none", "symmetrize": 4,
                                 "noise": {"device": "fake_manila"}})
    prediction = BackendForceField(ff, settings).predict(x)
    assert np.all(prediction.energy_std == 0)  # exact: no shot noise
    assert np.all(prediction.flags[SPREAD_ENERGY] > 1e-6)


@pytest.mark.parametrize("settings, spec, message", [
    ({"kind": "aer", "symmetrize": 0}, ("h2o", "full"), "backend.symmetrize must be an integer >= 1"),
    ({"kind": "statevector", "symmetrize": 2}, ("h2o", "full"), "needs a Qiskit backend"),
    ({"kind": "aer", "symmetrize": 2}, ("h2o", "none"), "generic VQLM"),
])
def test_bad_symmetrize(settings, spec, message):
    with pytest.raises(SiqmlError, match=message):
        model = build_model(*spec, 1, 1)
        BackendForceField(ForceField(model, model.random_weights(0), SCALER), backend_settings(settings))


# --------------------------------------------------------------------------- commands end to end


@pytest.fixture(scope="module")
def lih_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardware_runs") / "lih"
    folder.mkdir()
    RunFolder(folder).save_forcefield(forcefield("lih", "full", layers=1, seed=1))
    np.savez(folder / SPLIT_FILE, train=np.arange(0, 250, 2), test=np.arange(1, 250, 2),
             data_path=str(REPO_ROOT / "data" / "lih.h5"))
    return folder


def test_evaluate_on_a_heron_fake_device_with_symmetric_copies(lih_run, siqml, tmp_path):
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={lih_run}", "backend=fake", "backend.name=fake_marrakesh", "backend.shots=200",
                   "backend.forces=none", "backend.symmetrize=2", "data.max_configurations=3",
                   "+backend.options.environment.job_tags=[siqml]", f"out={out}")
    assert result.returncode == 0, result.stderr
    label = "fake_marrakesh-200shots-r0-sym2"
    table = pd.read_csv(out / "mse.csv", index_col=0)
    assert list(table.columns) == [label, "statevector"] and table.at["energy symmetry spread (meV)", label] > 0
    energies = pd.read_csv(out / "energies.csv", index_col=0)
    assert (energies["energy_symmetry_spread_" + label] > 0).all()
    record = json.loads((out / "backend.json").read_text())
    assert record["job_ids"] and "batch_id" in record and record["symmetrize"]["copies"] == 2
    assert record["mitigation"]["options"]["environment"]["job_tags"] == ["siqml"]
    assert "energy_spread_error_spearman" in record["vs_statevector"]


def test_submit_and_retrieve_on_a_heron_fake_device_with_copies(lih_run, tmp_path):
    import ase.io

    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    cfg = OmegaConf.create({"run": str(run), "data": {"path": None, "max_configurations": 3},
                            "backend": {"kind": "fake", "name": "fake_torino", "shots": 200, "seed": 0,
                                        "forces": "none", "configurations_per_job": 2, "symmetrize": 2,
                                        "mitigation": {"resilience_level": 1}}})
    jobs.submit_command(cfg)
    folder = sorted((run / jobs.HARDWARE_DIR).iterdir())[-1]
    assert (folder / SymmetryCopies.FILE).is_file()
    assert np.load(folder / "parameters.npz")["job_0"].shape[:2] == (4, 1)  # 2 configurations x 2 copies
    jobs.retrieve_command(OmegaConf.create({"run": str(run), "submission": None}))
    assert json.loads((folder / jobs.SUBMISSION_FILE).read_text())["status"] == "complete"
    record = json.loads((folder / "backend.json").read_text())
    assert len(record["job_ids"]) == 2 and "batch_id" in record
    frames = ase.io.read(folder / "predictions.extxyz", index=":")
    assert len(frames) == 3 and all(f.info["siqml_symmetry_spread_energy"] > 0 for f in frames)
