"""The molecule registry, the normal-mode sampler and the shipped any-molecule data sets (NH3, CH4, H2O2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from siqml_cli import molecules
from siqml_cli.data import read_dataset
from siqml_cli.data.generate import label_dft, sample
from siqml_cli.data.normal_modes import (
    BOLTZMANN_EV,
    MIN_DISTANCE,
    NormalModes,
    harmonic_modes,
    rigid_motions,
    sample_from,
)
from siqml_cli.errors import SiqmlError
from siqml_cli.models import build_model

REPO_ROOT = Path(__file__).resolve().parents[1]
AUTO_MOLECULES = {"nh3": ("N", "H", "H", "H"), "ch4": ("C", "H", "H", "H", "H"), "h2o2": ("O", "O", "H", "H")}



def shipped_data(name: str):
    path = REPO_ROOT / "data" / f"{name}.h5"
    if not path.is_file():
        pytest.skip(f"{path} not generated yet")
    return read_dataset(path, name)


def spring_hessian(positions: np.ndarray, bonds, k: float = 30.0) -> np.ndarray:
    """The Hessian (eV/Angstrom^2) of harmonic springs along `bonds`: a rotation- and translation-invariant
    surface, so its rigid motions are exact zero modes."""
    n = len(positions)
    hessian = np.zeros((3 * n, 3 * n))
    for i, j in bonds:
        u = positions[j] - positions[i]
        block = k * np.outer(u, u) / (u @ u)
        for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
            hessian[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sign * block
    return hessian


def tetrahedral_ch4() -> np.ndarray:
    return np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_shipped_molecule_once_with_its_atoms():
    shipped = molecules.shipped()
    assert {"lih", "h2o", "water_dimer", "water_dimer_cut", *AUTO_MOLECULES} <= set(shipped)
    for name, species in AUTO_MOLECULES.items():
        molecule = molecules.get(name)
        assert molecule.species == species and molecule.is_auto and molecule.sampler == "normal_modes"
        assert (REPO_ROOT / molecule.geometry).is_file()
    assert molecules.get("water_dimer_cut").model == "water_dimer"
    with pytest.raises(SiqmlError, match="no molecule 'benzene'"):
        molecules.get("benzene")


def test_automatic_model_rebuilds_from_its_saved_options():
    """A run's model.json holds what the automatic model needs, so a run loads without the registry."""
    reference = tetrahedral_ch4()
    facts = {"construction": "auto", "species": ["C", "H", "H", "H", "H"], "reference_geometry": reference.tolist()}
    spec = build_model("ch4", "full", 2, 1, facts)
    rebuilt = build_model("ch4", "full", 2, 1, spec.options())
    assert (rebuilt.n_qubits, rebuilt.weight_shapes()) == (spec.n_qubits, spec.weight_shapes()) == (
        8, rebuilt.weight_shapes())
    assert [c.pairs for c in rebuilt.couplings] == [c.pairs for c in spec.couplings]
    with pytest.raises(SiqmlError, match="needs its species and reference_geometry"):
        build_model("ch4", "full", 2, 1)
    assert build_model("ch4", "rotation", 2, 1, facts).n_weights_per_block > spec.n_weights_per_block


# ----------------------------------------------------------------------------- the sampler


def test_rigid_motions_are_projected_out_and_the_rest_are_the_vibrations():
    positions = tetrahedral_ch4()
    bonds = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
    modes = harmonic_modes(("C", "H", "H", "H", "H"), positions, spring_hessian(positions, bonds))
    assert len(modes.eigenvalues) == 3 * 5 - 6
    vectors = modes.vectors.reshape(len(modes.eigenvalues), -1)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(len(vectors)), atol=1e-10)
    np.testing.assert_allclose(rigid_motions(positions, modes.masses) @ vectors.T, 0.0, atol=1e-10)
    assert modes.eigenvalues.min() > 0


def test_a_geometry_that_is_no_minimum_is_an_error():
    positions = tetrahedral_ch4()
    with pytest.raises(SiqmlError, match="not a minimum"):  # no spring holds the H atoms: zero modes
        harmonic_modes(("C", "H", "H", "H", "H"), positions, spring_hessian(positions, [(0, 1), (0, 2)]))


def test_each_mode_holds_kT_over_2_and_draws_are_reproducible():
    positions = tetrahedral_ch4()
    bonds = [(0, k) for k in range(1, 5)] + [(a, b) for a in range(1, 5) for b in range(a + 1, 5)]
    modes = harmonic_modes(("C", "H", "H", "H", "H"), positions, spring_hessian(positions, bonds, k=5.0))
    temperature = 300.0
    draws = np.stack([sample_from(modes, np.random.default_rng(s), temperature) for s in range(2000)])
    again = np.stack([sample_from(modes, np.random.default_rng(s), temperature) for s in range(3)])
    np.testing.assert_array_equal(draws[:3], again)
    # undo the random placement by reading the internal geometry: the harmonic energy in bond coordinates
    hessian = spring_hessian(positions, bonds, k=5.0)
    energies = []
    for x in draws:
        centred = x - x.mean(0)
        u, _, vt = np.linalg.svd(centred.T @ (positions - positions.mean(0)))
        rotation = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
        aligned = centred @ rotation + positions.mean(0)
        dx = (aligned - positions).ravel()
        energies.append(0.5 * dx @ hessian @ dx)
    expected = len(modes.eigenvalues) * BOLTZMANN_EV * temperature / 2
    assert abs(np.mean(energies) / expected - 1) < 0.1
    first, second = np.triu_indices(5, 1)
    distances = np.linalg.norm(draws[:, first] - draws[:, second], axis=-1)
    assert distances.min() >= MIN_DISTANCE


# ----------------------------------------------------------------------------- shipped data


@pytest.mark.parametrize("name", sorted(AUTO_MOLECULES))
def test_shipped_data_records_how_to_draw_more(name):
    data = shipped_data(name)
    assert data.species == AUTO_MOLECULES[name] and len(data) == 1000 and data.forces is not None
    assert data.attrs["temperature"] == 1000.0 and data.attrs["sampler"] == "normal_modes"
    modes = NormalModes.from_attrs(data.species, data.attrs)
    assert modes.wavenumbers.min() > 50
    # the same sampler, seed and modes draw the same configurations
    redrawn = sample("normal_modes", 5, int(data.attrs["seed"]), {"temperature": 1000.0}, modes)
    np.testing.assert_allclose(redrawn, data.positions[:5], atol=1e-12)


@pytest.mark.parametrize("name", sorted(AUTO_MOLECULES))
def test_shipped_minimum_and_a_point_recompute(name):
    data = shipped_data(name)
    _, forces = label_dft(data.species, np.asarray(data.attrs["reference_geometry"]))
    assert np.abs(forces).max() < 1e-3
    energy, forces = label_dft(data.species, data.positions[7])
    assert abs(energy - data.energies[7]) < 1e-6
    np.testing.assert_allclose(forces, data.forces[7], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nh3", "ch4"])
def test_modes_agree_with_ase_vibrations(name, tmp_path):
    """The analytic-Hessian frequencies against ASE's finite-difference `Vibrations` at the same level."""
    from ase import Atoms
    from ase.vibrations import Vibrations

    from siqml_cli.data.normal_modes import _LevelOfTheory

    data = shipped_data(name)
    modes = NormalModes.from_attrs(data.species, data.attrs)
    atoms = Atoms(list(data.species), positions=modes.minimum)
    atoms.calc = _LevelOfTheory()
    vibrations = Vibrations(atoms, name=str(tmp_path / "vib"), delta=0.005)
    vibrations.run()
    found = np.sort(np.real(vibrations.get_frequencies()))[-len(modes.eigenvalues):]
    np.testing.assert_allclose(modes.wavenumbers, found, rtol=0.05)


# ----------------------------------------------------------------------------- bad input


def siqml(*args, cwd):
    from conftest import SIQML

    return subprocess.run([str(SIQML), *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("content,message", [
    ("1\none atom\nO 0 0 0\n", "a force field needs a molecule of at least two atoms"),
    ("2\noverlap\nO 0 0 0\nH 0 0 0.1\n", "are 0.100 Angstrom apart"),
    ("2\nuranium\nU 0 0 0\nH 0 0 2.0\n", "has no functions for U"),
])
def test_bad_geometry_files_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "bad.xyz").write_text(content)
    result = siqml("data", "molecule.geometry=bad.xyz", "n=2", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("data/*.h5"))


def test_a_molecule_too_large_to_simulate_is_refused_before_labelling(tmp_path):
    rng = np.random.default_rng(0)
    atoms = "".join(f"H {x:.3f} {y:.3f} {z:.3f}\n" for x, y, z in rng.uniform(0, 12, size=(24, 3)))
    (tmp_path / "big.xyz").write_text(f"24\nhydrogen cloud\n{atoms}")
    result = siqml("data", "molecule.geometry=big.xyz", "n=2", "model.frame=centroid", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "at least 46 qubits" in result.stderr
    assert not (tmp_path / "data").exists()


def test_data_in_another_atom_order_is_refused(tmp_path):
    data = shipped_data("h2o2")
    from siqml_cli.data import Dataset, write_dataset

    swapped = Dataset(("O", "H", "O", "H"), data.positions[:4][:, [0, 2, 1, 3]], data.energies[:4],
                      data.forces[:4][:, [0, 2, 1, 3]])
    write_dataset(swapped, tmp_path / "swapped.h5")
    result = siqml("train", "+molecule=h2o2", "molecule.data=swapped.h5", "train.steps=1", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "atoms are O-H-O-H but molecule 'h2o2' needs O-O-H-H" in result.stderr
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- as a new user


@pytest.mark.slow  # ~1-2 min: optimisation, Hessian and labels with PySCF, then training and a check
def test_own_molecule_from_a_geometry_file_to_a_trained_run(tmp_path):
    """`siqml data molecule.geometry=<xyz>` then `siqml train molecule.data=<h5>`, nothing else: the data file
    carries the atoms and the reference geometry, the run rebuilds its automatic model from model.json."""
    import json

    (tmp_path / "water.xyz").write_text("3\nwater\nO 0.0 0.0 0.12\nH 0.0 0.76 -0.47\nH 0.0 -0.76 -0.47\n")
    made = siqml("data", "molecule.geometry=water.xyz", "n=4", "workers=1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "its automatic siVQLM has 4 qubits" in made.stdout and (tmp_path / "data" / "water.h5").is_file()
    data = read_dataset(tmp_path / "data" / "water.h5")
    assert data.attrs["molecule"] == "water" and len(data) == 4 and data.attrs["temperature"] == 1000.0
    trained = siqml("train", "molecule.data=data/water.h5", "train.steps=3", "model.layers=1", "model.blocks=1",
                    "loss=energy", "hydra.run.dir=run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "water: siVQLM (built automatically), symmetry=full, 4 qubits" in trained.stdout
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["molecule"] == "water" and model["options"]["construction"] == "auto"
    checked = siqml("check-symmetry", "molecule.data=data/water.h5", "weights=run", "n_configs=3", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "exchange (0, 2, 1)" in checked.stdout and "FAIL" not in checked.stdout


@pytest.mark.parametrize("command", ["train", "generate", "check_symmetry"])
def test_every_registry_entry_composes_with_every_molecule_command(command):
    """A molecule entry may set the training defaults of its group (loss, symmetry): every command that takes
    `+molecule` must carry those groups, or `siqml data +molecule=<name>` breaks."""
    from hydra import compose, initialize_config_module

    from siqml_cli.config import parse_command
    from siqml_cli.paths import CONFIG_PACKAGE

    for name in molecules.shipped():
        with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
            cfg = compose(config_name=command, overrides=[f"+molecule={name}"])
        assert parse_command(command, cfg).molecule.name == name
