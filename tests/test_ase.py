"""The trained force field where force fields are used: ASE calculator, MD, vibrations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.calculator import (
    CalculationFailed,
    CalculatorSetupError,
    InputError,
    PropertyNotImplementedError,
)
from ase.calculators.fd import calculate_numerical_forces
from ase.io import read
from hydra import compose, initialize_config_module
from scipy.spatial.transform import Rotation

from siqml_cli.ase import AtomsMismatch, OutOfDomain, PeriodicCell, SIQMLCalculator, UnusableRun
from siqml_cli.errors import SiqmlError
from siqml_cli.paths import CONFIG_PACKAGE
from siqml_cli.train.run import train_run


def trained(folder, molecule, *overrides):
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"+molecule={molecule}", "train.steps=40", *overrides])
    train_run(cfg, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def h2o_run(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("ase") / "h2o", "h2o", "symmetry=full")


@pytest.fixture(scope="module")
def lih_run(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("ase") / "lih", "lih")


def water(calc) -> Atoms:
    atoms = Atoms("OH2", positions=[[0.1, 0.2, -0.1], [1.05, 0.1, 0.0], [-0.2, 0.95, 0.3]])
    atoms.calc = calc
    return atoms


def test_forces_are_minus_the_numerical_gradient(h2o_run):
    atoms = water(SIQMLCalculator(run=h2o_run))
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    assert atoms.get_potential_energy() == atoms.calc.get_property("free_energy", atoms)


def test_rotation_and_translation_change_only_force_directions(h2o_run):
    atoms = water(SIQMLCalculator(run=h2o_run))
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    rot = Rotation.from_rotvec([0.4, -2.0, 1.1])
    moved = water(SIQMLCalculator(run=h2o_run))
    moved.positions = rot.apply(atoms.positions) + [3.0, -7.0, 0.5]
    assert moved.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(moved.get_forces(), rot.apply(forces), atol=1e-10)


def test_results_are_cached_per_configuration(h2o_run, monkeypatch):
    calc = SIQMLCalculator(run=h2o_run)
    atoms = water(calc)
    atoms.get_forces()
    calls = []
    monkeypatch.setattr(calc.forcefield, "predict", lambda *a: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    atoms.get_potential_energy()
    atoms.get_forces()
    assert not calls


def test_mismatched_atoms_are_ases_setup_error(h2o_run):
    calc = SIQMLCalculator(run=h2o_run)
    for atoms in (Atoms("H2O", positions=np.eye(3)), Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]])):
        atoms.calc = calc
        with pytest.raises(CalculatorSetupError, match="do not match the model") as error:
            atoms.get_potential_energy()
        assert isinstance(error.value, AtomsMismatch) and isinstance(error.value, SiqmlError)


def test_a_periodic_cell_is_ases_setup_error(h2o_run):
    atoms = water(SIQMLCalculator(run=h2o_run))
    atoms.cell, atoms.pbc = [8, 8, 8], [True, True, False]
    with pytest.raises(CalculatorSetupError, match=r"periodic along xy") as error:
        atoms.get_potential_energy()
    assert isinstance(error.value, PeriodicCell) and isinstance(error.value, SiqmlError)
    atoms.pbc = False  # the cell alone is irrelevant
    assert np.isfinite(atoms.get_potential_energy())


def test_a_missing_or_damaged_run_is_ases_input_error(h2o_run, tmp_path):
    with pytest.raises(InputError, match="is not a trained run") as error:
        SIQMLCalculator(run=tmp_path)
    assert isinstance(error.value, UnusableRun) and isinstance(error.value, SiqmlError)
    import shutil

    damaged = shutil.copytree(h2o_run, tmp_path / "damaged")
    (damaged / "weights.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="weights.npz is damaged"):
        SIQMLCalculator(run=damaged)


def test_outside_the_domain_is_flagged_or_ases_calculation_failed(h2o_run):
    far = water(SIQMLCalculator(run=h2o_run))
    far.positions[2] += [1000.0, 0, 0]
    assert np.isfinite(far.get_potential_energy())
    assert far.calc.results["out_of_domain"] is True
    near = water(SIQMLCalculator(run=h2o_run))
    near.get_potential_energy()
    assert near.calc.results["out_of_domain"] is False
    strict = water(SIQMLCalculator(run=h2o_run, domain="error"))
    strict.get_forces()  # inside: answered
    strict.positions[1] = strict.positions[0]
    with pytest.raises(CalculationFailed, match="outside the training domain .*H-O distance 0.000 Å") as error:
        strict.get_forces()
    assert isinstance(error.value, OutOfDomain) and isinstance(error.value, SiqmlError)
    with pytest.raises(SiqmlError, match="domain must be one of warn, error"):
        SIQMLCalculator(run=h2o_run, domain="ignore")


def test_a_run_without_a_recorded_domain_has_no_flag(h2o_run, tmp_path):
    import shutil

    older = shutil.copytree(h2o_run, tmp_path / "older")
    model = json.loads((older / "model.json").read_text())
    del model["domain"]
    (older / "model.json").write_text(json.dumps(model))
    atoms = water(SIQMLCalculator(run=older, domain="error"))
    atoms.positions[2] += [1000.0, 0, 0]
    assert np.isfinite(atoms.get_potential_energy()) and "out_of_domain" not in atoms.calc.results


def test_a_backend_without_forces_gives_energies_only(lih_run):
    calc = SIQMLCalculator(run=lih_run, backend={"kind": "aer", "forces": "none"})
    atoms = Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]])
    atoms.calc = calc
    exact = SIQMLCalculator(run=lih_run)
    assert atoms.get_potential_energy() == pytest.approx(exact.get_potential_energy(atoms), abs=1e-8)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_forces()


def test_md_counts_the_steps_outside_the_domain_or_stops(h2o_run, siqml, tmp_path):
    from ase.io import write

    start = tmp_path / "stretched.extxyz"
    stretched = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [2.4, 0.0, 0.0], [-0.24, 0.93, 0.0]])  # one O-H at 2.5x
    write(start, stretched, format="extxyz")
    out = tmp_path / "md"
    result = siqml("md", f"run={h2o_run}", f"start={start}", "md.steps=4", "md.write_every=2", "md.max_distance=10",
                   f"out={out}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "md.json").read_text())
    assert summary["out_of_domain_steps"] == 5 and summary["first_step_out_of_domain"] == 0  # the start, 4 steps
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        "siqml md: warning: the trajectory left the training domain at step 0 (")
    refused = siqml("md", f"run={h2o_run}", f"start={start}", "md.steps=4", "domain=error", f"out={tmp_path / 'no'}")
    assert refused.returncode == 1
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("siqml md: error: this configuration lies outside the training "
                                                   "domain"), refused.stderr
    assert not (tmp_path / "no").exists()
    inside = siqml("md", f"run={h2o_run}", "md.steps=4", "domain=error", f"out={tmp_path / 'fine'}")
    assert inside.returncode == 0, inside.stderr
    assert json.loads((tmp_path / "fine" / "md.json").read_text())["out_of_domain_steps"] == 0


def test_md_nve_writes_trajectory_energies_and_drift(h2o_run, siqml, tmp_path):
    out = tmp_path / "md"
    result = siqml("md", f"run={h2o_run}", "md.steps=60", "md.write_every=5", f"out={out}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "md.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 60
    assert abs(summary["max_deviation_meV_per_atom"]) < 5  # 15 fs of velocity Verlet at 0.25 fs
    energies = pd.read_csv(out / "energies.csv")
    assert list(energies["step"]) == list(range(0, 61, 5))
    log = (out / "md.log").read_text().splitlines()  # ASE's MDLogger, at the same steps
    assert log[0].split() == ["Time[ps]", "Etot[eV]", "Epot[eV]", "Ekin[eV]", "T[K]"] and len(log) == 14
    assert len(read(out / "md.extxyz", index=":")) == 13 and (out / "energies.png").stat().st_size > 0


def test_md_that_blows_up_stops_with_the_reason_and_keeps_its_files(h2o_run, siqml, tmp_path):
    out = tmp_path / "md"
    result = siqml("md", f"run={h2o_run}", "md.steps=400", "md.temperature=20000", "md.max_distance=1.3",
                   f"out={out}")
    assert result.returncode == 1
    assert "MD stopped at step" in result.stderr and "flew apart" in result.stderr
    assert json.loads((out / "md.json").read_text())["status"] == "stopped"
    assert len(read(out / "md.traj", index=":")) >= 1


@pytest.mark.slow  # PySCF finite-difference Hessian of the reference
def test_vibrations_next_to_the_reference(lih_run, siqml, tmp_path):
    out = tmp_path / "vib"
    result = siqml("vibrations", f"run={lih_run}", f"out={out}")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "frequencies.csv")
    assert len(table) == 1  # a diatomic has one vibration
    reference = table["reference (cm^-1)"].iloc[0]
    assert 1300 < reference < 1900  # LiH FCI/STO-3G: about 1700 cm^-1
    assert table["difference (cm^-1)"].iloc[0] == pytest.approx(table["model (cm^-1)"].iloc[0] - reference)
