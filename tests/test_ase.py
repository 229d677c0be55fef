"""The trained force field where force fields are used: ASE calculator, MD, vibrations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces
from ase.io import read
from hydra import compose, initialize_config_module
from scipy.spatial.transform import Rotation

from siqml_cli.ase import SIQMLCalculator
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


def test_mismatched_atoms_are_refused(h2o_run):
    calc = SIQMLCalculator(run=h2o_run)
    for atoms in (Atoms("H2O", positions=np.eye(3)), Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]])):
        atoms.calc = calc
        with pytest.raises(SiqmlError, match="do not match the model"):
            atoms.get_potential_energy()


def test_not_a_run_folder(tmp_path):
    with pytest.raises(SiqmlError, match="is not a trained run"):
        SIQMLCalculator(run=tmp_path)


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


def test_vibrations_next_to_the_reference(lih_run, siqml, tmp_path):
    out = tmp_path / "vib"
    result = siqml("vibrations", f"run={lih_run}", f"out={out}")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "frequencies.csv")
    assert len(table) == 1  # a diatomic has one vibration
    reference = table["reference (cm^-1)"].iloc[0]
    assert 1300 < reference < 1900  # LiH FCI/STO-3G: about 1700 cm^-1
    assert table["difference (cm^-1)"].iloc[0] == pytest.approx(table["model (cm^-1)"].iloc[0] - reference)
