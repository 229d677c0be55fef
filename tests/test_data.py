"""Reference data: sampling as docs/data.md says, real PySCF labels, files, resuming, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

from siqml_cli.data import Dataset, read_dataset, write_dataset, write_predictions
from siqml_cli.data.generate import generate, label_dft, label_lih, sample
from siqml_cli.errors import SiqmlError
from siqml_cli.prediction import Prediction

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

LIH = REPO_ROOT / "data" / "lih.h5"
H2O = REPO_ROOT / "data" / "h2o.h5"


@pytest.fixture(scope="module")
def lih():
    return read_dataset(LIH, "lih")


@pytest.fixture(scope="module")
def h2o():
    return read_dataset(H2O, "h2o")


def bond(p):
    return np.linalg.norm(p[:, 1] - p[:, 0], axis=-1)


def test_shipped_sets_have_the_documented_size_units_and_provenance(lih, h2o):
    assert len(lih) == 250 and len(h2o) == 1000
    for data in (lih, h2o):
        assert data.forces.shape == data.positions.shape
        assert "PySCF" in data.attrs["level_of_theory"]
        assert json.loads(data.attrs["versions"])["pyscf"]
    with h5py.File(LIH) as f:
        assert json.loads(f.attrs["units"]) == {"positions": "Angstrom", "energies": "eV", "forces": "eV/Angstrom"}


def test_lih_curve_minimum_near_sto3g_equilibrium(lih):
    d = bond(lih.positions)
    assert 1.0 <= d.min() and d.max() <= 3.5
    assert 1.5 <= d[np.argmin(lih.energies)] <= 1.6


def test_h2o_geometry_ranges_and_forces_sum_to_zero(h2o):
    p = h2o.positions
    r1, r2 = np.linalg.norm(p[:, 1] - p[:, 0], axis=-1), np.linalg.norm(p[:, 2] - p[:, 0], axis=-1)
    cos = np.einsum("ni,ni->n", p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) / (r1 * r2)
    angle = np.degrees(np.arccos(cos))
    assert r1.min() >= 0.88 - 1e-9 and r1.max() <= 1.12 + 1e-9 and r2.min() >= 0.88 - 1e-9
    assert angle.min() >= 92 - 1e-6 and angle.max() <= 118 + 1e-6
    assert np.abs(h2o.forces.sum(axis=1)).max() < 1e-3


def test_configurations_are_randomly_oriented_and_translated(h2o):
    centroids = h2o.positions.mean(axis=1)
    assert centroids.std(axis=0).min() > 0.5  # translations U[-2, 2]
    normals = np.cross(h2o.positions[:, 1] - h2o.positions[:, 0], h2o.positions[:, 2] - h2o.positions[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    assert np.abs(normals.mean(axis=0)).max() < 0.1  # no preferred plane


def test_sampling_is_deterministic_for_a_seed():
    params = {"r_oh": [0.88, 1.12], "angle_deg": [92.0, 118.0]}
    a, b, c = sample("h2o", 5, 7, params), sample("h2o", 5, 7, params), sample("h2o", 5, 8, params)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_recomputed_points_match_the_shipped_ones(lih, h2o):
    for i in (0, 123):
        energy, forces = label_lih(lih.species, lih.positions[i])
        assert energy == pytest.approx(lih.energies[i], abs=1e-8)
        np.testing.assert_allclose(forces, lih.forces[i], atol=1e-6)
    energy, forces = label_dft(h2o.species, h2o.positions[42])
    assert energy == pytest.approx(h2o.energies[42], abs=1e-6)
    np.testing.assert_allclose(forces, h2o.forces[42], atol=1e-5)


def test_lih_forces_match_finite_differences_of_the_energy(lih):
    """The shipped force along the bond is -dE/dd of the shipped curve itself (central differences)."""
    d = bond(lih.positions)
    order = np.argsort(d)
    slope = np.gradient(lih.energies[order], d[order])
    unit = (lih.positions[:, 1] - lih.positions[:, 0]) / d[:, None]
    f_h = np.einsum("ni,ni->n", lih.forces[:, 1], unit)[order]
    inner = slice(5, -5)
    np.testing.assert_allclose(f_h[inner], -slope[inner], atol=0.05 * np.abs(slope).max())


def test_generation_resumes_without_recomputing(tmp_path, monkeypatch):
    out = tmp_path / "small.h5"
    params = {"bond": [1.2, 2.0]}
    calls = []
    import siqml_cli.data.generate as gen

    real = gen.GENERATORS["lih"]

    def counting(species, positions):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real.label(species, positions)

    monkeypatch.setitem(gen.GENERATORS, "lih", gen.Generator(real.level_of_theory, real.sample, counting))
    monkeypatch.setattr(gen, "CHECKPOINT_EVERY_S", 0.0)
    with pytest.raises(KeyboardInterrupt):
        generate("lih", 4, 0, params, out)
    assert not out.exists()  # nothing under the final name
    assert out.with_name(out.name + ".partial.h5").exists()
    calls.clear()
    monkeypatch.setitem(gen.GENERATORS, "lih", real)
    data = generate("lih", 4, 0, params, out)
    assert np.isfinite(data.energies).all()
    fresh = generate("lih", 4, 0, params, tmp_path / "fresh.h5")
    np.testing.assert_allclose(data.energies, fresh.energies, atol=1e-10)


def test_extxyz_round_trip(tmp_path, lih):
    path = tmp_path / "lih.extxyz"
    write_dataset(lih.subset(np.arange(5)), path)
    back = read_dataset(path, "lih")
    np.testing.assert_allclose(back.positions, lih.positions[:5], atol=1e-7)
    np.testing.assert_allclose(back.energies, lih.energies[:5], atol=1e-7)
    np.testing.assert_allclose(back.forces, lih.forces[:5], atol=1e-7)


def mlip_file(path, data, energy_key="REF_energy", forces_key="REF_forces"):
    """An extxyz file as other MLIP tools write one: labels in info/arrays under their own keys."""
    from ase import Atoms

    frames = []
    for i in range(len(data)):
        atoms = Atoms(symbols=list(data.species), positions=data.positions[i])
        atoms.info[energy_key] = float(data.energies[i])
        atoms.new_array(forces_key, data.forces[i])
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return path


def test_labels_under_the_mlip_keys_or_configured_ones(tmp_path, lih):
    five = lih.subset(np.arange(5))
    ref = read_dataset(mlip_file(tmp_path / "ref.extxyz", five), "lih")
    np.testing.assert_allclose(ref.energies, five.energies)
    np.testing.assert_allclose(ref.forces, five.forces)
    named = mlip_file(tmp_path / "dft.xyz", five, "dft_energy", "dft_forces")
    assert not read_dataset(named, "lih").has_labels  # no key it knows: positions only
    back = read_dataset(named, "lih", energy_key="dft_energy", forces_key="dft_forces")
    np.testing.assert_allclose(back.energies, five.energies)
    np.testing.assert_allclose(back.forces, five.forces)
    with pytest.raises(SiqmlError, match="no configuration has the energy key 'REF_energy'.*dft_energy"):
        read_dataset(named, "lih", energy_key="REF_energy")


def test_the_mlip_keys_come_before_ases_own(tmp_path, lih):
    five = lih.subset(np.arange(5))
    path = tmp_path / "both.extxyz"
    write_dataset(five, path)  # ASE's energy/forces
    frames = ase.io.read(path, index=":")
    for atoms in frames:
        atoms.info["REF_energy"] = atoms.get_potential_energy() + 1.0
    ase.io.write(path, frames, format="extxyz")
    data = read_dataset(path, "lih")
    np.testing.assert_allclose(data.energies, five.energies + 1.0)
    np.testing.assert_allclose(data.forces, five.forces)  # no REF_forces: ASE's
    np.testing.assert_allclose(read_dataset(path, "lih", energy_key="energy").energies, five.energies)


def test_siqml_data_takes_the_label_keys_from_the_command_line(tmp_path, lih, siqml):
    five = lih.subset(np.arange(5))
    given = mlip_file(tmp_path / "dft.extxyz", five, "dft_energy", "dft_forces")
    out = tmp_path / "lih.h5"
    result = siqml("data", "+molecule=lih", f"input={given}", "relabel=false", f"out={out}",
                   "data.energy_key=dft_energy", "data.forces_key=dft_forces")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(read_dataset(out, "lih").forces, five.forces)


def test_a_label_missing_from_some_configurations_is_named(tmp_path, lih):
    path = mlip_file(tmp_path / "gap.extxyz", lih.subset(np.arange(4)))
    frames = ase.io.read(path, index=":")
    del frames[2].info["REF_energy"]
    ase.io.write(path, frames, format="extxyz")
    with pytest.raises(SiqmlError, match="configuration 2 has no 'REF_energy'"):
        read_dataset(path, "lih")


def test_predictions_sit_beside_the_reference_labels(tmp_path, lih):
    five = lih.subset(np.arange(5))
    out_of_domain = np.array([False, True, False, False, True])
    prediction = Prediction(five.energies + 0.01, 0.5 * five.forces, energy_std=np.full(5, 0.002),
                            force_std=np.full(five.forces.shape, 0.03)).flagged(out_of_domain=out_of_domain)
    path = tmp_path / "predictions.extxyz"
    write_predictions(path, five, prediction)
    frames = ase.io.read(path, index=":")
    assert all(a.calc is None for a in frames)
    info = lambda key: [a.info[key] for a in frames]  # noqa: E731
    arrays = lambda key: np.stack([a.arrays[key] for a in frames])  # noqa: E731
    np.testing.assert_allclose(info("REF_energy"), five.energies)
    np.testing.assert_allclose(info("siqml_energy"), prediction.energies)
    np.testing.assert_allclose(info("siqml_energy_std"), 0.002)
    assert info("siqml_out_of_domain") == out_of_domain.tolist()
    np.testing.assert_allclose(arrays("REF_forces"), five.forces)
    np.testing.assert_allclose(arrays("siqml_forces"), prediction.forces)
    np.testing.assert_allclose(arrays("siqml_forces_std"), 0.03)
    reference = read_dataset(path, "lih")  # the REF_ keys by default
    np.testing.assert_allclose(reference.positions, five.positions, atol=1e-7)
    np.testing.assert_allclose(reference.energies, five.energies)
    np.testing.assert_allclose(reference.forces, five.forces)
    predicted = read_dataset(path, "lih", energy_key="siqml_energy", forces_key="siqml_forces")
    np.testing.assert_allclose(predicted.energies, prediction.energies)
    np.testing.assert_allclose(predicted.forces, prediction.forces)


def test_predictions_for_unlabelled_configurations(tmp_path, lih):
    bare = Dataset(lih.species, lih.positions[:3])
    path = tmp_path / "p.extxyz"
    write_predictions(path, bare, Prediction(lih.energies[:3]))
    frames = ase.io.read(path, index=":")
    assert [sorted(a.info) for a in frames] == [["siqml_energy"]] * 3
    assert [sorted(a.arrays) for a in frames] == [["numbers", "positions"]] * 3
    assert not read_dataset(path, "lih").has_labels
    with pytest.raises(ValueError, match="energy has shape"):
        write_predictions(path, bare, Prediction(lih.energies[:4]))
    with pytest.raises(ValueError, match="would overwrite"):
        write_predictions(path, bare, Prediction(lih.energies[:3]).flagged(energy=np.zeros(3)))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.positions.__setitem__((1, 0, 0), np.inf), "NaN or infinite coordinates"),
    (lambda d: d.energies.__setitem__(2, np.nan), "NaN or infinite energies"),
    (lambda d: d.forces.__setitem__((0, 1, 2), np.nan), "NaN or infinite forces"),
])
def test_bad_values_are_rejected_with_the_configuration_named(lih, mutate, message):
    data = lih.subset(np.arange(4))
    mutate(data)
    with pytest.raises(SiqmlError, match=message):
        data.check("lih")


def test_wrong_species_and_unreadable_files(tmp_path, lih):
    with pytest.raises(SiqmlError, match="needs O-H-H"):
        read_dataset(LIH, "h2o")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(SiqmlError, match="cannot be read as HDF5"):
        read_dataset(junk)
    with pytest.raises(SiqmlError, match="unknown data format"):
        read_dataset(tmp_path / "x.csv" if (tmp_path / "x.csv").write_text("1") else None)
    with pytest.raises(SiqmlError, match="does not exist"):
        read_dataset(tmp_path / "missing.h5")
    swapped = Dataset(("H", "Li"), lih.positions[:3], lih.energies[:3])
    with pytest.raises(SiqmlError, match="reorder the atoms"):
        swapped.check("lih")


def test_water_dimer_set_is_hydrogen_bonded_and_balanced():
    dimer = read_dataset(REPO_ROOT / "data" / "water_dimer.h5", "water_dimer")
    p = dimer.positions
    d = np.linalg.norm(p[:, :, None] - p[:, None], axis=-1)
    shipped_n = OmegaConf.load(REPO_ROOT / "configs" / "molecule" / "water_dimer.yaml").molecule.generate.n
    assert len(dimer) == shipped_n >= 1000
    assert d[:, 0, 3].min() >= 2.65 - 1e-9 and d[:, 0, 3].max() <= 3.5 + 1e-9  # O-O
    assert d[:, [1, 2], 3].min() >= 1.4  # no H of the donor closer than 1.4 Å to the acceptor O
    assert np.abs(dimer.forces.sum(axis=1)).max() < 1e-3


def test_sharded_labelling_merges_into_the_unsharded_set(tmp_path):
    """Shards (one job each of a sweep over `shard`) label disjoint parts; the run without `shard` merges them,
    labels nothing twice, and gives the set an unsharded run gives."""
    from siqml_cli.data import generate as gen

    params = {"bond": [1.0, 3.5]}
    out = tmp_path / "lih.h5"
    for k in range(2):
        part = generate("lih", 5, 3, params, out, shard=(k, 2))
        assert np.isfinite(part.energies).sum() == len(range(k, 5, 2))
    assert len(gen.shard_files(out)) == 2 and not out.exists()
    merged = generate("lih", 5, 3, params, out)
    assert not gen.shard_files(out)
    whole = generate("lih", 5, 3, params, tmp_path / "whole.h5")
    np.testing.assert_allclose(merged.energies, whole.energies, atol=1e-10)
    np.testing.assert_allclose(merged.forces, whole.forces, atol=1e-8)
