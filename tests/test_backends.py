"""Qiskit backends (issue #4): exact Aer equals the fast simulator, shots and noise behave, fake devices run
end to end through qiskit-ibm-runtime's local mode, submit/retrieve keep honest records, bad input is one line.

Small models (1-2 layers) and a handful of configurations keep these fast; nothing is mocked: Aer, the
fake devices and local mode are the real thing. Only the IBM service itself is out of reach (no network),
so for backend=ibm the no-credentials path is tested, and the jobs path is the one local mode runs too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import PauliEvolutionGate
from qiskit.quantum_info import SparsePauliOp, Statevector

from siqml_cli.backends import jobs
from siqml_cli.backends.forcefield import BackendForceField
from siqml_cli.backends.settings import backend_settings
from siqml_cli.backends.shift import AngleCircuit
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField, LabelScaler
from siqml_cli.models import blocks, build_model
from siqml_cli.runs import SPLIT_FILE, RunFolder

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

SCALER = LabelScaler(e_min=-8.0, e_max=-7.0, out_lo=-2.6, out_hi=0.6)  # a non-trivial slope and offset


def configurations(spec, n: int, seed: int) -> np.ndarray:
    """Generic geometries: random orientation and translation, bond lengths near equilibrium."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.6, size=(n, len(spec.species), 3))
    x[:, 1:] += rng.normal(size=(n, len(spec.species) - 1, 3)) * 0.2 + 1.0
    return x


def forcefield(molecule: str, symmetry: str, layers: int = 2, seed: int = 0) -> ForceField:
    spec = build_model(molecule, symmetry, layers, 1)
    return ForceField(spec, spec.random_weights(seed), SCALER)


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("molecule, symmetry", [("lih", "full"), ("h2o", "broken")])
def test_exact_aer_equals_fast_simulator(molecule, symmetry):
    ff = forcefield(molecule, symmetry)
    x = configurations(ff.spec, 3, seed=1)
    exact = ff.predict(x)
    on_aer = BackendForceField(ff, backend_settings({"kind": "aer"}))
    prediction = on_aer.predict(x)
    np.testing.assert_allclose(prediction.energies, exact.energies, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prediction.forces, exact.forces, rtol=0, atol=1e-6)
    assert np.all(prediction.energy_std == 0)
    assert on_aer.isa.two_qubit_gates > 0 and on_aer.isa.depth > 0


def test_finite_difference_forces_are_a_named_option():
    ff = forcefield("h2o", "broken")
    x = configurations(ff.spec, 2, seed=2)
    forces = ff.predict(x).forces
    settings = backend_settings({"kind": "aer", "forces": "finite_difference", "finite_difference_step": 1e-4})
    prediction = BackendForceField(ff, settings).predict(x)
    np.testing.assert_allclose(prediction.forces, forces, rtol=0, atol=1e-5)


def test_euler_angles_in_jax_equal_the_circuits():
    v = np.random.default_rng(3).normal(size=(50, 3))
    np.testing.assert_allclose(np.asarray(blocks.encoding_euler_angles_jax(jnp.asarray(v))),
                               blocks.encoding_euler_angles(v), rtol=0, atol=1e-14)


def test_shift_rule_covers_shared_parameters_and_pauli_evolution_gates():
    """A weight shared by several gates, and a PauliEvolutionGate of commuting Z strings (the water dimer's
    orbit gates): the shift-rule gradient equals central differences of the exact expectation."""
    t, u = Parameter("t"), Parameter("u")
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.rxx(2 * t, 0, 1)
    qc.ryy(2 * t, 1, 2)
    qc.append(PauliEvolutionGate(SparsePauliOp(["ZZI", "IZZ", "ZIZ"], [0.7, -0.3, 0.2]), time=t + 0.5 * u), [0, 1, 2])
    qc.u(u, 0.3, -u, 1)
    observable = SparsePauliOp(["XXI", "IYY", "ZIZ"], [1.0, 0.5, -0.8])
    angles = AngleCircuit.build(qc)
    values = np.array([0.37, -1.1])  # (t, u) in circuit order

    def f_of_angles(a):
        return Statevector(angles.circuit.assign_parameters(a)).expectation_value(observable).real

    base = angles.angle_values(values[None])[0]
    shift = np.array([(f_of_angles(base + np.pi / 2 * e) - f_of_angles(base - np.pi / 2 * e)) / 2
                      for e in np.eye(len(base))])
    gradient = angles.coefficients @ shift

    def f(p):
        return Statevector(qc.assign_parameters(p)).expectation_value(observable).real

    h = 1e-6
    central = np.array([(f(values + h * e) - f(values - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(gradient, central, atol=1e-8)
    np.testing.assert_allclose(f_of_angles(base), f(values), atol=1e-12)


def test_shot_based_aer_within_five_standard_errors():
    ff = forcefield("lih", "full", layers=1)
    x = configurations(ff.spec, 1, seed=4)
    exact = ff.predict(x)
    energies, forces = exact.energies, exact.forces
    prediction = BackendForceField(ff, backend_settings({"kind": "aer", "shots": 1000, "seed": 7})).predict(x)
    assert np.all(prediction.energy_std > 0) and np.all(prediction.force_std > 0)
    assert np.max(np.abs(prediction.energies - energies) / prediction.energy_std) < 5
    assert np.max(np.abs(prediction.forces - forces) / prediction.force_std) < 5
    assert np.max(np.abs(prediction.energies - energies)) > 1e-6  # shot noise is there at all


def test_same_seed_same_numbers_with_shots_and_noise():
    ff = forcefield("lih", "full", layers=1)
    x = configurations(ff.spec, 2, seed=5)
    settings = backend_settings({"kind": "aer", "shots": 500, "seed": 3, "forces": "none",
                                 "noise": {"depolarizing_2q": 0.02, "readout": 0.02}})
    first = BackendForceField(ff, settings).predict(x).energies
    np.testing.assert_array_equal(first, BackendForceField(ff, settings).predict(x).energies)


def test_depolarizing_noise_pulls_energies_towards_the_maximally_mixed_value():
    """Exact noisy values (density matrix): depolarizing noise shrinks <H01> towards Tr(H01)/2^n = 0."""
    ff = forcefield("lih", "full", layers=1)
    x = configurations(ff.spec, 3, seed=6)
    exact = BackendForceField(ff, backend_settings({"kind": "aer", "forces": "none"}))
    noisy = BackendForceField(ff, backend_settings({"kind": "aer", "forces": "none",
                                                    "noise": {"depolarizing_1q": 0.01, "depolarizing_2q": 0.05}}))
    f_exact = ff.scaler.to_model(exact.predict(x).energies)
    f_noisy = ff.scaler.to_model(noisy.predict(x).energies)
    assert np.all(np.abs(f_noisy) < np.abs(f_exact))


def test_fake_device_through_local_mode_with_and_without_mitigation():
    """fake_manila in local mode: without mitigation the energies are off; readout mitigation (TREX,
    resilience level 1) moves them towards the exact ones on average."""
    ff = forcefield("lih", "full", layers=1)
    x = configurations(ff.spec, 4, seed=8)
    exact = ff.predict(x).energies
    errors = {}
    for level in (0, 1):
        settings = backend_settings({"kind": "fake", "name": "fake_manila", "shots": 2000, "seed": 11,
                                     "forces": "none", "mitigation": {"resilience_level": level}})
        on_device = BackendForceField(ff, settings)
        errors[level] = np.mean(np.abs(on_device.predict(x).energies - exact))
        assert on_device.record()["mitigation"]["applied"]
    assert errors[1] < errors[0], errors


def test_qnn_loss_gradient_equals_fast_simulator(assert_qnn_gradient_matches_jax):
    spec = build_model("h2o", "broken", 1, 1)
    assert_qnn_gradient_matches_jax(spec, spec.random_weights(9), configurations(spec, 1, seed=9), np.array([-0.7]),
                                    atol=1e-8)


# --------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def lih_run(tmp_path_factory):
    """A trained run's files (weights, model, split of the shipped LiH data) without the training."""
    folder = tmp_path_factory.mktemp("backend_runs") / "lih"
    folder.mkdir()
    RunFolder(folder).save_forcefield(forcefield("lih", "full", layers=1, seed=1))
    np.savez(folder / SPLIT_FILE, train=np.arange(0, 250, 2), test=np.arange(1, 250, 2),
             data_path=str(REPO_ROOT / "data" / "lih.h5"))
    return folder


def test_evaluate_on_exact_aer_writes_tables_next_to_statevector(lih_run, siqml, tmp_path):
    out = tmp_path / "eval"
    result = siqml("evaluate", f"run={lih_run}", "backend=aer", "data.max_configurations=4", f"out={out}")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "mse.csv", index_col=0)
    assert list(table.columns) == ["aer-exact", "statevector"]
    np.testing.assert_allclose(table["aer-exact"], table["statevector"], rtol=1e-8)
    record = json.loads((out / "backend.json").read_text())
    assert record["isa"]["depth"] > 0 and record["isa"]["two_qubit_gates"] > 0
    assert record["settings"]["shots"] is None and record["mitigation"]["applied"] is False
    assert json.loads((out / "evaluation.json").read_text())["status"] == "complete"


def _submit(run, **overrides):
    cfg = OmegaConf.create({"run": str(run), "data": {"path": None, "max_configurations": 4},
                            "backend": {"kind": "fake", "name": "fake_manila", "shots": 1000, "seed": 0,
                                        "forces": "none", "configurations_per_job": 2, **overrides}})
    jobs.submit_command(cfg)
    return sorted((run / jobs.HARDWARE_DIR).iterdir())[-1]


def _retrieve(run):
    jobs.retrieve_command(OmegaConf.create({"run": str(run), "submission": None}))


def test_submit_and_retrieve_resume_and_are_idempotent(lih_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    folder = _submit(run)
    records = json.loads((folder / jobs.JOBS_FILE).read_text())
    assert len(records) == 2 and all(r["job_id"] for r in records)
    for name in ("isa_circuit.qpy", "parameters.npz", "configurations.npz", "submission.json"):
        assert (folder / name).stat().st_size > 0
    assert np.load(folder / "parameters.npz")["job_0"].shape[:2] == (2, 1)
    # the second job has not finished yet: half retrieved, nothing marked complete
    second = folder / jobs.LOCAL_JOBS_DIR / f"{records[1]['job_id']}.json"
    held = second.read_text()
    second.unlink()
    _retrieve(run)
    assert "1 of 2 jobs finished" in capsys.readouterr().out
    assert json.loads((folder / jobs.SUBMISSION_FILE).read_text())["status"] == "pending"
    assert not (folder / "evaluation.json").exists()
    first_result = folder / jobs.RESULTS_DIR / f"{records[0]['job_id']}.npz"
    stamp = first_result.stat().st_mtime_ns
    second.write_text(held)
    _retrieve(run)  # resumes: fetches only the second job
    assert first_result.stat().st_mtime_ns == stamp
    assert json.loads((folder / jobs.SUBMISSION_FILE).read_text())["status"] == "complete"
    table = pd.read_csv(folder / "mse.csv", index_col=0)
    assert list(table.columns) == ["fake_manila-1000shots-r0", "statevector"]
    before = (folder / "energies.csv").read_bytes()
    _retrieve(run)
    assert "already complete" in capsys.readouterr().out and (folder / "energies.csv").read_bytes() == before


def test_failed_job_is_reported_with_its_id(lih_run, tmp_path, siqml):
    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    folder = _submit(run)
    job_id = json.loads((folder / jobs.JOBS_FILE).read_text())[1]["job_id"]
    # what the service answers for a job that failed on the device
    (folder / jobs.LOCAL_JOBS_DIR / f"{job_id}.json").write_text(json.dumps(
        {"job_id": job_id, "status": "ERROR", "error": "Error code 1517; Error in transpilation"}))
    result = siqml("retrieve", f"run={run}")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and job_id in line and "1517" in line
    assert json.loads((folder / jobs.SUBMISSION_FILE).read_text())["status"] == "failed"
    assert not (folder / "evaluation.json").exists()


# --------------------------------------------------------------------------- bad input


def test_ibm_without_credentials_is_one_line(lih_run, siqml, tmp_path, monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account
    result = siqml("submit", f"run={lih_run}", "backend=ibm", "backend.name=ibm_torino")
    assert result.returncode == 1
    assert "no IBM Quantum credentials" in result.stderr and result.stderr.count("\n") == 1
    assert not (lih_run / jobs.HARDWARE_DIR).exists()


@pytest.mark.parametrize("settings, message", [
    ({"kind": "fake", "name": "fake_nowhere", "shots": 100}, "unknown fake device 'fake_nowhere'"),
    ({"kind": "fake", "name": "fake_armonk", "shots": 100}, "needs 4 qubits but fake_armonk has 1"),
    ({"kind": "aer", "forces": "adjoint"}, "backend.forces must be one of"),
    ({"kind": "ibm"}, "needs a device"),
])
def test_bad_backend_settings(settings, message):
    with pytest.raises(SiqmlError, match=message.replace("(", r"\(")):
        BackendForceField(forcefield("lih", "full", layers=1), backend_settings(settings))


def test_unknown_backend_and_untrained_folder(siqml, tmp_path):
    result = siqml("evaluate", f"run={tmp_path}", "backend=quantum_annealer")
    assert result.returncode == 2 and "unknown backend 'quantum_annealer'" in result.stderr
    result = siqml("retrieve", f"run={tmp_path}")
    assert result.returncode == 1 and "has no submitted jobs" in result.stderr


def test_ase_calculator_on_aer_matches_the_default(lih_run):
    from ase import Atoms

    from siqml_cli.ase import SIQMLCalculator

    atoms = Atoms("LiH", positions=[[0.1, -0.2, 0.3], [0.4, 0.9, 1.6]])
    atoms.calc = SIQMLCalculator(run=lih_run)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SIQMLCalculator(run=lih_run, backend="aer")
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-6)


def test_credentials_never_reach_the_records(lih_run, tmp_path):
    """The token lives only in the environment: submission records hold settings, not secrets."""
    run = tmp_path / "run"
    shutil.copytree(lih_run, run)
    os.environ["QISKIT_IBM_TOKEN"] = "secret-token-123"
    try:
        folder = _submit(run)
    finally:
        del os.environ["QISKIT_IBM_TOKEN"]
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"secret-token-123" not in path.read_bytes(), path
