"""Water clusters and two-body pairs from data: ring start geometries, the normal-mode threshold, the pair
sampler, the expansion's labels and the files they go to (docs/data.md, "Water clusters and two-body pairs")."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from siqml_cli import molecules
from siqml_cli.data import Dataset, read_dataset, write_dataset
from siqml_cli.data.clusters import (
    RING_HOH,
    molecule_atoms,
    pair_attrs,
    pair_counts,
    second_order,
    water_count,
    water_ring,
)
from siqml_cli.data.generate import GENERATORS, generate, label_dft, sample
from siqml_cli.data.io import write_hdf5
from siqml_cli.data.normal_modes import MIN_WAVENUMBER, NormalModes, harmonic_modes, read_geometry
from siqml_cli.errors import SiqmlError

REPO_ROOT = Path(__file__).resolve().parents[1]
RINGS = {3: "water_trimer", 4: "water_tetramer", 6: "water_hexamer"}


def distances(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[..., :, None, :] - positions[..., None, :, :], axis=-1)


def closest_between_molecules(positions: np.ndarray) -> float:
    molecule = np.arange(len(positions)) // 3
    return float(distances(positions)[molecule[:, None] != molecule[None]].min())


def pair_params(**changes) -> dict:
    return {**molecules.shipped()["water_pair"]["generate"]["params"], **changes}


@pytest.fixture(scope="module")
def tetramers(tmp_path_factory) -> Path:
    """A cluster data file (positions only, as the pair sampler reads them): five jiggled tetramer rings."""
    species, ring = water_ring(4)
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("clusters") / "water_tetramer.h5"
    write_hdf5(Dataset(species, ring + rng.normal(scale=0.05, size=(5, *ring.shape))), path)
    return path


# ----------------------------------------------------------------------------- ring start geometries


@pytest.mark.parametrize("n", sorted(RINGS))
def test_ring_start_geometry_donates_one_h_to_the_next_oxygen(n):
    species, positions = water_ring(n)
    assert species == ("O", "H", "H") * n and water_count(species) == n
    water = positions.reshape(n, 3, 3)
    oxygens = water[:, 0]
    following = np.roll(oxygens, -1, axis=0)
    np.testing.assert_allclose(np.linalg.norm(following - oxygens, axis=1), 2.8)
    np.testing.assert_allclose(oxygens[:, 2], 0.0)
    donated, free = water[:, 1] - oxygens, water[:, 2] - oxygens
    for bonds in (donated, free):
        assert np.all((0.97 <= np.linalg.norm(bonds, axis=1)) & (np.linalg.norm(bonds, axis=1) <= 0.98))
    cos = lambda a, b: np.einsum("ni,ni->n", a, b) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    np.testing.assert_allclose(np.degrees(np.arccos(cos(donated, free))), RING_HOH)
    assert np.degrees(np.arccos(cos(donated, following - oxygens))).max() <= 15.0  # nearly along O -> O_next
    assert closest_between_molecules(positions) >= 1.5
    ups = np.sign(free[:, 2])
    assert np.all(np.abs(free[:, 2]) > 0.9)  # out of the ring plane
    expected = {3: [1, -1, 1], 4: [1, -1, 1, -1], 6: [1, -1, 1, -1, 1, -1]}[n]  # uud (cyclic), S4, S6
    assert ups.tolist() == expected


@pytest.mark.parametrize("n", sorted(RINGS))
def test_shipped_ring_files_are_the_registry_entries_start_geometries(n):
    molecule = molecules.get(RINGS[n])
    species, positions = read_geometry(REPO_ROOT / molecule.geometry)
    assert species == molecule.species == water_ring(n)[0]
    np.testing.assert_allclose(positions, water_ring(n)[1], atol=1e-6)
    assert molecule.model == molecules.CLUSTER and molecule.sampler == "water_cluster"


def test_a_cluster_is_not_trained_as_one_molecule(siqml, tmp_path):
    result = siqml("train", "+molecule=water_trimer", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2  # a usage error, refused before any run folder exists
    assert result.stderr.strip().count("\n") == 0
    assert "water_trimer is a water cluster" in result.stderr and "+molecule=water_pair" in result.stderr
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- min_wavenumber


def soft_chain() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """A bent O-H-H chain on springs whose bending is soft: its lowest mode lies between 20 and 50 cm^-1."""
    positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.5, 0.9, 0.0]])
    hessian = np.zeros((9, 9))
    for (i, j), k in (((0, 1), 30.0), ((1, 2), 30.0), ((0, 2), 0.004)):
        u = positions[j] - positions[i]
        block = k * np.outer(u, u) / (u @ u)
        for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
            hessian[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sign * block
    return ("O", "H", "H"), positions, hessian


def test_min_wavenumber_is_a_parameter_whose_default_is_unchanged():
    species, positions, hessian = soft_chain()
    assert MIN_WAVENUMBER == 50.0
    with pytest.raises(SiqmlError, match=r"below min_wavenumber = 50.*lower the sampler's min_wavenumber"):
        harmonic_modes(species, positions, hessian)
    modes = harmonic_modes(species, positions, hessian, min_wavenumber=20.0)
    assert 20.0 < modes.wavenumbers.min() < 50.0
    with pytest.raises(SiqmlError, match="min_wavenumber must be a positive"):
        harmonic_modes(species, positions, hessian, min_wavenumber=0.0)
    # a parameter of the reference, not of the draw: the same configurations with it or without it
    np.testing.assert_array_equal(sample("normal_modes", 5, 1, {"temperature": 300.0, "min_wavenumber": 20.0}, modes),
                                  sample("normal_modes", 5, 1, {"temperature": 300.0}, modes))


def test_min_wavenumber_is_recorded_with_the_modes(tmp_path):
    """A set resumed from its partial file (modes and labels already there: no quantum chemistry) records
    the threshold next to the modes, as a fresh one does."""
    species, positions, hessian = soft_chain()
    modes = harmonic_modes(species, positions, hessian, min_wavenumber=20.0)
    params = {"temperature": 300.0, "min_wavenumber": 20.0}
    drawn = sample("normal_modes", 4, 0, params, modes)
    out = tmp_path / "soft.h5"
    write_hdf5(Dataset(species, drawn, np.zeros(4), np.zeros(drawn.shape), modes.attrs), f"{out}.partial.h5")
    molecule = molecules.Molecule("soft", species, data=None, geometry="soft.xyz", model="auto")
    data = generate(molecule, 4, 0, params, out)
    assert read_dataset(out).attrs["min_wavenumber"] == 20.0 == data.attrs["min_wavenumber"]
    assert NormalModes.from_attrs(species, data.attrs).wavenumbers.min() < MIN_WAVENUMBER


# ----------------------------------------------------------------------------- pair sampler


def test_pair_sampler_fractions_ranges_contacts_and_seed(tetramers):
    params = pair_params(clusters=[str(tetramers)])
    pairs = sample("water_pairs", 200, 7, params)
    counts = pair_counts(200, params["fractions"], params["clusters"])
    assert counts == {"hbonded": 80, "random": 80, "clusters": 40}
    assert pair_attrs(200, params) == {"pair_counts": counts}
    assert GENERATORS["water_pairs"].attrs["label_kind"] == "two-body: E(ij) - E(i) - E(j)"
    oo = np.linalg.norm(pairs[:, 3] - pairs[:, 0], axis=1)
    hbonded, drawn = oo[:80], oo[80:160]
    assert 2.65 <= hbonded.min() and hbonded.max() <= 3.5
    assert 2.6 <= drawn.min() and drawn.max() <= 7.0 and np.mean(drawn > 5.0) > 0.25  # out to the cutoff
    assert min(closest_between_molecules(p) for p in pairs[80:160]) >= 1.5
    bonds = distances(pairs[:160])[:, [0, 0, 3, 3], [1, 2, 4, 5]]
    assert 0.92 - 1e-9 <= bonds.min() and bonds.max() <= 1.06 + 1e-9  # whole monomers drawn as for H2O, O first
    np.testing.assert_array_equal(pairs, sample("water_pairs", 200, 7, params))
    assert not np.allclose(pairs, sample("water_pairs", 200, 8, params))
    without = pair_params(clusters=[])
    assert pair_counts(200, without["fractions"], []) == {"hbonded": 100, "random": 100, "clusters": 0}
    assert sample("water_pairs", 200, 7, without).shape == (200, 6, 3)


def test_cut_pairs_are_pairs_of_the_cluster_files_molecules(tetramers):
    params = pair_params(clusters=[str(tetramers)], fractions={"clusters": 1.0})
    pairs = sample("water_pairs", 30, 0, params)
    clusters = read_dataset(tetramers).positions
    # a rigid motion keeps every distance: each cut pair's distance matrix is that of some pair of a configuration
    known = np.array([distances(c[molecule_atoms(ij)]) for c in clusters for ij in combinations(range(4), 2)])
    for p in pairs:
        assert np.abs(known - distances(p)).max(axis=(1, 2)).min() < 1e-9
    # all six pairs of a configuration before the next one, and the pairs rotated and moved at random
    assert len({np.abs(known - distances(p)).max(axis=(1, 2)).argmin() // 6 for p in pairs[:6]}) == 1
    assert not any(np.allclose(p, c[molecule_atoms(ij)]) for p in pairs for c in clusters
                   for ij in combinations(range(4), 2))


def test_missing_or_malformed_cluster_files_are_one_line_errors(tmp_path, siqml):
    with pytest.raises(SiqmlError, match=r"cluster data file .*nope_trimer.h5 not found; generate it first with "
                                         r"`siqml data \+molecule=nope_trimer`"):
        sample("water_pairs", 10, 0, pair_params(clusters=[str(tmp_path / "nope_trimer.h5")]))
    reordered = tmp_path / "reordered.h5"
    species, ring = water_ring(3)
    write_hdf5(Dataset(("H", "O", "H") * 3, ring[None]), reordered)
    with pytest.raises(SiqmlError, match="H-O-H-H-O-H-H-O-H: not whole water molecules in O, H, H order"):
        sample("water_pairs", 10, 0, pair_params(clusters=[str(reordered)]))
    with pytest.raises(SiqmlError, match="unknown pair kind"):
        pair_counts(10, {"stacked": 1.0}, [])
    result = siqml("data", "+molecule=water_pair", "n=10", "molecule.generate.params.clusters=[data/nope_trimer.h5]",
                   f"out={tmp_path / 'pairs.h5'}", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "generate it first with `siqml data +molecule=nope_trimer`" in result.stderr
    assert not (tmp_path / "pairs.h5").exists()


# ----------------------------------------------------------------------------- labels


def test_second_order_expansion_is_exact_for_a_pairwise_energy():
    """On a pairwise-additive surface the second-order expansion is the whole energy: checks the weights and
    where each fragment's forces go, without quantum chemistry."""
    species, ring = water_ring(4)
    positions = ring + np.random.default_rng(0).normal(scale=0.1, size=ring.shape)

    def pairwise(atoms: np.ndarray) -> tuple[float, np.ndarray]:
        x = positions[atoms]
        d = distances(x)
        i, j = np.triu_indices(len(x), 1)
        forces = np.zeros_like(x)
        unit = (x[i] - x[j]) / d[i, j, None]
        np.add.at(forces, i, unit * (1.0 / d[i, j] ** 2)[:, None])  # E = sum 1/r: F_i = -dE/dx_i
        np.add.at(forces, j, -unit * (1.0 / d[i, j] ** 2)[:, None])
        return float((1.0 / d[i, j]).sum()), forces

    fragments = [(i,) for i in range(4)] + list(combinations(range(4), 2))
    energy, forces = second_order(4, {f: pairwise(molecule_atoms(f)) for f in fragments})
    exact_energy, exact_forces = pairwise(np.arange(12))
    assert energy == pytest.approx(exact_energy, rel=1e-12)
    np.testing.assert_allclose(forces, exact_forces, atol=1e-12)


def test_extra_labels_read_back_as_energies_and_forces(tmp_path):
    species, ring = water_ring(3)
    rng = np.random.default_rng(0)
    energies, forces = rng.normal(size=2), rng.normal(size=(2, 9, 3))
    extras = {"mbe2_energies": energies + 0.01, "mbe2_forces": forces + 0.1}
    path = tmp_path / "trimer.h5"
    write_hdf5(Dataset(species, np.stack([ring, ring]), energies, forces, extras=extras), path)
    full = read_dataset(path, "water_trimer")
    np.testing.assert_array_equal(full.energies, energies)
    np.testing.assert_array_equal(full.extras["mbe2_forces"], extras["mbe2_forces"])
    np.testing.assert_array_equal(full.subset(np.array([1])).extras["mbe2_energies"], extras["mbe2_energies"][[1]])
    mbe2 = read_dataset(path, "water_trimer", energy_key="mbe2_energies", forces_key="mbe2_forces")
    np.testing.assert_array_equal(mbe2.energies, extras["mbe2_energies"])
    np.testing.assert_array_equal(mbe2.forces, extras["mbe2_forces"])
    with pytest.raises(SiqmlError, match="has no dataset 'mbe3_energies'; it holds energies, forces, mbe2_energies"):
        read_dataset(path, energy_key="mbe3_energies")
    exported = tmp_path / "trimer.extxyz"
    write_dataset(full, exported)
    again = read_dataset(exported, "water_trimer", energy_key="mbe2_energies", forces_key="mbe2_forces")
    np.testing.assert_allclose(again.energies, mbe2.energies, rtol=1e-15)
    np.testing.assert_allclose(again.forces, mbe2.forces, atol=1e-8)  # ASE writes per-atom arrays to 8 decimals


def test_a_partial_pair_set_resumes_with_its_extra_labels(tmp_path):
    """Labels found in the partial file, extras included, are kept (nothing left to label: no PySCF); a partial
    file without the sampler's extra labels is refused rather than half-used."""
    params = pair_params(clusters=[])
    drawn = sample("water_pairs", 3, 0, params)
    out = tmp_path / "pairs.h5"
    extras = {"dimer_energies": np.full(3, -4150.0), "dimer_forces": np.ones((3, 6, 3)),
              "monomer_energies": np.full((3, 2), -2075.0), "monomer_forces": np.zeros((3, 6, 3))}
    write_hdf5(Dataset(("O", "H", "H") * 2, drawn, np.full(3, 0.1), np.ones((3, 6, 3)), extras=extras),
               f"{out}.partial.h5")
    data = generate("water_pair", 3, 0, params, out)
    back = read_dataset(out, "water_pair")
    np.testing.assert_array_equal(back.extras["monomer_energies"], extras["monomer_energies"])
    assert back.attrs["pair_counts"] and data.attrs["label_kind"].startswith("two-body")
    write_hdf5(Dataset(("O", "H", "H") * 2, drawn, np.full(3, 0.1), np.ones((3, 6, 3))), f"{out}.partial.h5")
    with pytest.raises(SiqmlError, match="holds the extra labels none, this sampler makes dimer_energies"):
        generate("water_pair", 3, 0, params, out)


def test_a_cluster_set_resumes_with_its_modes_and_expansion_labels(tmp_path, siqml):
    """`siqml data +molecule=water_trimer` given a partial file that holds the modes and every label (as an
    interrupted run leaves it; here from springs between all atoms, so no quantum chemistry runs): the set
    is drawn around those modes and written with its full and second-order labels."""
    species, ring = water_ring(3)
    hessian = np.zeros((27, 27))
    for i, j in combinations(range(9), 2):
        u = ring[j] - ring[i]
        block = 5.0 * np.outer(u, u) / (u @ u)
        for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
            hessian[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sign * block
    params = molecules.shipped()["water_trimer"]["generate"]["params"]
    modes = harmonic_modes(species, ring, hessian, min_wavenumber=params["min_wavenumber"])
    drawn = sample("water_cluster", 3, 0, params, modes)
    extras = {"mbe2_energies": np.full(3, -6226.0), "mbe2_forces": np.full((3, 9, 3), 0.5)}
    out = tmp_path / "trimer.h5"
    write_hdf5(Dataset(species, drawn, np.full(3, -6226.1), np.zeros((3, 9, 3)), modes.attrs, extras=extras),
               f"{out}.partial.h5")
    result = siqml("data", "+molecule=water_trimer", "n=3", f"out={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    full = read_dataset(out, "water_trimer")
    np.testing.assert_array_equal(full.positions, drawn)
    assert full.attrs["min_wavenumber"] == 20.0 and full.attrs["temperature"] == 300.0
    assert full.attrs["extra_labels"].startswith("mbe2_energies, mbe2_forces: second-order many-body expansion")
    mbe2 = read_dataset(out, "water_trimer", energy_key="mbe2_energies", forces_key="mbe2_forces")
    np.testing.assert_array_equal(mbe2.forces, extras["mbe2_forces"])
    assert not Path(f"{out}.partial.h5").exists()


@pytest.mark.slow
def test_two_body_label_is_the_dimer_minus_its_monomers(tmp_path):
    pair = sample("water_pairs", 4, 0, pair_params(clusters=[]))[[3]]  # a random pair: 3 PySCF calls
    data = generate("water_pair", 1, 0, {}, tmp_path / "pair.h5", positions=pair)
    species = ("O", "H", "H")
    dimer = label_dft(species * 2, pair[0])
    first, second = label_dft(species, pair[0, :3]), label_dft(species, pair[0, 3:])
    assert data.energies[0] == pytest.approx(dimer[0] - first[0] - second[0], abs=1e-6)
    np.testing.assert_allclose(data.forces[0], dimer[1] - np.concatenate([first[1], second[1]]), atol=1e-5)
    back = read_dataset(tmp_path / "pair.h5", "water_pair")
    assert back.extras["dimer_energies"][0] == pytest.approx(dimer[0], abs=1e-6)
    np.testing.assert_allclose(back.extras["monomer_energies"][0], [first[0], second[0]], atol=1e-6)


@pytest.mark.slow
def test_mbe2_of_a_trimer_is_the_brute_force_sum(tmp_path):
    species, ring = water_ring(3)
    data = generate("water_trimer", 1, 0, {}, tmp_path / "trimer.h5", positions=ring[None], workers=2)
    full = label_dft(species, ring)
    monomers = [label_dft(species[:3], ring[3 * i:3 * i + 3]) for i in range(3)]
    energy, forces = sum(e for e, _ in monomers), np.concatenate([f for _, f in monomers])
    for i, j in combinations(range(3), 2):
        atoms = molecule_atoms([i, j])
        e_ij, f_ij = label_dft(species[:6], ring[atoms])
        energy += e_ij - monomers[i][0] - monomers[j][0]
        forces[atoms] += f_ij - np.concatenate([monomers[i][1], monomers[j][1]])
    back = read_dataset(tmp_path / "trimer.h5", "water_trimer", energy_key="mbe2_energies", forces_key="mbe2_forces")
    assert back.energies[0] == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(back.forces[0], forces, atol=1e-5)
    assert data.energies[0] == pytest.approx(full[0], abs=1e-6)
    np.testing.assert_allclose(data.forces[0], full[1], atol=1e-5)
    assert abs(data.energies[0] - energy) < 0.1  # the expansion's truncation error is small, not zero

