"""Water clusters from a monomer and a pair model (siqml_cli/cluster.py): the many-body expansion is exactly
invariant, its forces are its gradient, the switch is smooth, and bad input is refused in one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.io import read
from hydra import compose, initialize_config_module
from scipy.spatial.transform import Rotation

from siqml_cli.ase import AtomsMismatch, WaterClusterCalculator
from siqml_cli.cluster import (
    ClusterForceField,
    Switch,
    check_molecules,
    cluster_broken,
    pairs_within,
)
from siqml_cli.data import Dataset, read_dataset
from siqml_cli.data.clusters import TWO_BODY, water_count
from siqml_cli.data.generate import water_monomer
from siqml_cli.data.io import write_hdf5
from siqml_cli.domain import Domain
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField, LabelScaler
from siqml_cli.models import build_model
from siqml_cli.paths import CONFIG_PACKAGE, resolve_input
from siqml_cli.train.run import train_run

SWITCH = Switch(4.8, 6.0)  # short, so that the test clusters have pairs inside, across and beyond it


def forcefield(molecule: str, seed: int, symmetry: str = "full", **options) -> ForceField:
    spec = build_model(molecule, symmetry, 2, 1, options or None)
    scaler = LabelScaler(-2075.5, -2074.5, -0.8, 0.8) if molecule == "h2o" else LabelScaler(-0.3, 0.1, -0.8, 0.8)
    return ForceField(spec, spec.random_weights(seed), scaler)


@pytest.fixture(scope="module")
def cluster() -> ClusterForceField:
    return ClusterForceField(forcefield("h2o", 1), forcefield("water_dimer", 2), SWITCH)


def ring(n: int, rng: np.random.Generator, r_oo: float = 2.8, noise: float = 0.03) -> np.ndarray:
    """n randomly oriented water molecules with their O on a regular polygon of side `r_oo`, jiggled."""
    radius = r_oo / (2 * np.sin(np.pi / n)) if n > 1 else 0.0
    molecules = []
    for k in range(n):
        angle = 2 * np.pi * k / n
        monomer = water_monomer(*rng.uniform(0.94, 1.0, 2), rng.uniform(100, 108))
        molecules.append(Rotation.random(random_state=rng).apply(monomer - monomer[0])
                         + [radius * np.cos(angle), radius * np.sin(angle), 0.0])
    return np.concatenate(molecules) + rng.normal(0, noise, (3 * n, 3))


def symmetry_copy(x: np.ndarray, rng: np.random.Generator, improper: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random rotation (times -1: a reflection through a point, for `improper`), translation, H exchange in every
    molecule at random and permutation of the molecules: (the moved configuration, atom order, matrix)."""
    n = len(x) // 3
    matrix = Rotation.random(random_state=rng).as_matrix() * (-1 if improper else 1)
    order = np.concatenate([3 * m + (np.array([0, 2, 1]) if rng.random() < 0.5 else np.arange(3))
                            for m in rng.permutation(n)])
    return x[order] @ matrix.T + rng.uniform(-3, 3, 3), order, matrix


@pytest.mark.parametrize("n", [pytest.param(3, marks=pytest.mark.slow), 9])
@pytest.mark.parametrize("improper", [False, True])
def test_energy_invariant_and_forces_equivariant_to_1e10(cluster, n, improper):
    """Random weights; every operation at once: rotation (and inversion), translation, H exchange in any molecule,
    permutation of the molecules. The 9-ring has pairs inside, across and beyond the switch."""
    rng = np.random.default_rng(n + improper)
    x = ring(n, rng, r_oo=2.9)
    if n == 9:
        r = np.linalg.norm(x[::3, None] - x[None, ::3], axis=-1)
        assert ((r > SWITCH.r_on) & (r < SWITCH.r_off)).any() and (r > SWITCH.r_off).any()
    plain = cluster.predict(x[None])
    for _ in range(3):
        moved, order, matrix = symmetry_copy(x, rng, improper)
        copy = cluster.predict(moved[None])
        assert abs(copy.energies[0] - plain.energies[0]) < 1e-10
        np.testing.assert_allclose(copy.forces[0], plain.forces[0][order] @ matrix.T, atol=1e-10, rtol=0)


def test_a_broken_monomer_model_is_caught_by_the_invariance_check():
    """The same check with a monomer model whose symmetry-breaking layer is on (swapped in after the refusal, before
    anything is compiled): moving the cluster changes its energy, so the check above can fail."""
    cluster = ClusterForceField(forcefield("h2o", 1), forcefield("water_dimer", 2), SWITCH)
    cluster.monomer = forcefield("h2o", 3, symmetry="broken")
    rng = np.random.default_rng(0)
    x = ring(9, rng, r_oo=2.9)
    moved, _, _ = symmetry_copy(x, rng, improper=False)
    assert abs(cluster.predict(moved[None]).energies[0] - cluster.predict(x[None]).energies[0]) > 1e-6


def test_forces_are_minus_the_numerical_gradient(cluster):
    rng = np.random.default_rng(5)
    x = ring(9, rng, r_oo=2.9)[None]  # pairs inside the switch: its derivative is in the forces
    forces = cluster.predict(x).forces[0]
    h = 1e-5
    for atom, axis in [(0, 0), (4, 1), (13, 2), (24, 0)]:
        plus, minus = x.copy(), x.copy()
        plus[0, atom, axis] += h
        minus[0, atom, axis] -= h
        numerical = -(cluster.predict(plus).energies[0] - cluster.predict(minus).energies[0]) / (2 * h)
        assert abs(numerical - forces[atom, axis]) < 1e-6


def test_the_expansion_of_one_and_two_molecules(cluster):
    """One molecule: the monomer model; two: both monomers plus the switched pair term, computed by hand."""
    rng = np.random.default_rng(2)
    one = ring(1, rng)[None]
    np.testing.assert_allclose(cluster.predict(one).energies, cluster.monomer.predict(one).energies, atol=1e-10)
    for r_oo in (2.8, 5.4, 6.5):  # inside, across and beyond the switch
        two = ring(2, rng, r_oo=r_oo, noise=0)[None]
        expected = (cluster.monomer.predict(two[:, :3]).energies + cluster.monomer.predict(two[:, 3:]).energies
                    + float(SWITCH(r_oo)) * cluster.pair.predict(two).energies)
        np.testing.assert_allclose(cluster.predict(two).energies, expected, atol=1e-10)


def test_a_batch_equals_one_configuration_at_a_time(cluster):
    rng = np.random.default_rng(3)
    x = np.stack([ring(9, rng, r_oo=r) for r in (2.9, 2.9, 3.3)])
    x[1, :3] += 20.0  # molecule 0 far away: different numbers of pairs within the cutoff
    assert len({len(pairs_within(c[::3], SWITCH.r_off)) for c in x}) == 3
    together = cluster.predict(x)
    for k in range(len(x)):
        alone = cluster.predict(x[k:k + 1])
        assert abs(alone.energies[0] - together.energies[k]) < 1e-10
        np.testing.assert_allclose(alone.forces[0], together.forces[k], atol=1e-10)


def test_the_switch_is_smooth_and_the_energy_continuous_at_the_cutoff(cluster):
    import jax

    with jax.enable_x64(True):
        r = np.array([SWITCH.r_on, SWITCH.r_off])
        ds = jax.vmap(jax.grad(SWITCH))(r)
        d2s = jax.vmap(jax.grad(jax.grad(SWITCH)))(r)
        np.testing.assert_allclose(np.asarray(SWITCH(r)), [1.0, 0.0], atol=1e-15)
        np.testing.assert_allclose(np.asarray(ds), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(d2s), 0.0, atol=1e-9)
    rng = np.random.default_rng(4)
    base = ring(2, rng, r_oo=1.0, noise=0)
    axis = (base[3] - base[0]) / np.linalg.norm(base[3] - base[0])
    step = lambda r_oo: base + np.concatenate([np.zeros((3, 3)), np.tile((r_oo - 1.0) * axis, (3, 1))])  # noqa: E731
    inside, outside = (cluster.predict(step(SWITCH.r_off + d)[None]) for d in (-1e-6, 1e-6))
    assert abs(inside.energies[0] - outside.energies[0]) < 1e-9
    np.testing.assert_allclose(inside.forces, outside.forces, atol=1e-6)


def test_pairs_within_the_cutoff_are_those_of_the_distance_matrix():
    rng = np.random.default_rng(6)
    oxygens = rng.uniform(0, 12, (40, 3))
    d = np.linalg.norm(oxygens[:, None] - oxygens[None], axis=-1)
    expected = {(i, j) for i in range(40) for j in range(i + 1, 40) if d[i, j] < 4.0}
    assert {tuple(p) for p in pairs_within(oxygens, 4.0)} == expected


def test_a_pair_closer_than_the_pair_model_saw_is_flagged_and_named(cluster, monkeypatch):
    rng = np.random.default_rng(7)
    seen = np.stack([ring(2, rng, r_oo=r) for r in rng.uniform(2.6, 6.0, 50)])
    monkeypatch.setattr(cluster.pair, "domain", Domain.from_dataset(cluster.pair.spec.species, seen))
    x = np.stack([ring(9, rng, r_oo=2.9), ring(9, rng, r_oo=2.9)])
    x[1, 6:9] = x[1, 3:6] + (x[1, 3] - x[1, 0]) / np.linalg.norm(x[1, 3] - x[1, 0]) * 1.8  # molecule 2 onto 1
    outside, reasons = cluster.domain.check(x)
    assert list(outside) == [False, True]
    assert reasons[1].startswith("molecules 1 and 2:") and "O-O distance" in reasons[1] and "pair model" in reasons[1]
    assert cluster.predict(x[1:]).flags["out_of_domain"][0]


@pytest.mark.parametrize("species, message", [
    (("O", "H", "H", "H", "O", "H"), "O-H-H-H-O-H: not whole water molecules in O, H, H order"),
    (("O", "H"), "not whole water molecules"),
    ((), "not whole water molecules"),
])
def test_atoms_that_are_not_whole_waters_are_refused(species, message):
    with pytest.raises(SiqmlError, match=message):
        water_count(species)


def test_an_h_far_from_its_own_o_is_refused():
    x = ring(3, np.random.default_rng(8))
    x[[4, 6]] = x[[6, 4]]  # an H listed with the wrong molecule
    with pytest.raises(SiqmlError, match=r"configuration 0: H \d+ is .* from its O .*not whole water molecules"):
        check_molecules(x[None])


@pytest.mark.parametrize("role", ["monomer", "pair"])
def test_models_that_break_the_clusters_symmetry_are_refused(role):
    models = {"monomer": forcefield("h2o", 1), "pair": forcefield("water_dimer", 2)}
    models[role] = forcefield("h2o" if role == "monomer" else "water_dimer", 3, symmetry="broken")
    with pytest.raises(SiqmlError, match=f"the {role} model has the symmetry-breaking layer.*symmetry=full"):
        ClusterForceField(models["monomer"], models["pair"])


def test_a_generic_model_is_refused():
    with pytest.raises(SiqmlError, match="the monomer model has the generic VQLM"):
        ClusterForceField(forcefield("h2o", 1, symmetry="none"), forcefield("water_dimer", 2))


def test_models_of_other_molecules_are_refused():
    with pytest.raises(SiqmlError, match="the pair model is of O-H-H, but a water cluster needs a pair model of "
                                         "O-H-H-O-H-H"):
        ClusterForceField(forcefield("h2o", 1), forcefield("h2o", 2))


def test_bad_switch_and_broken_clusters_are_named():
    with pytest.raises(SiqmlError, match="0 < r_on < r_off"):
        Switch(7.0, 6.0)
    x = ring(3, np.random.default_rng(9))
    assert cluster_broken(x, 7.0) is None
    far = x.copy()
    far[6:9] += [20.0, 0, 0]
    assert cluster_broken(far, 7.0).startswith("molecule 2 left the cluster")
    stretched = x.copy()
    stretched[4] += 2.0 * (stretched[4] - stretched[3])
    assert cluster_broken(stretched, 7.0).startswith("molecule 1 broke")


# --------------------------------------------------------------------------- two trained runs, end to end


def stand_in_pair_data(path, level_of_theory: str, label_kind: str | None = TWO_BODY):
    """40 shipped dimer configurations as a pair set. Its labels are stand-ins (the dimer energies less their mean,
    the dimer forces), enough to train a run whose mechanics are under test here; the real two-body set is made
    by `siqml data +molecule=water_pair`."""
    dimer = read_dataset(resolve_input("data/water_dimer.h5")).subset(np.arange(40))
    attrs = {"level_of_theory": level_of_theory, "molecule": "water_pair"}
    if label_kind:
        attrs["label_kind"] = label_kind
    write_hdf5(Dataset(dimer.species, dimer.positions, dimer.energies - dimer.energies.mean(), dimer.forces, attrs),
               path)
    return path


def trained(folder, *overrides):
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["train.steps=5", "train.batch_size=8", *overrides])
    train_run(cfg, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    level = read_dataset(resolve_input("data/h2o.h5")).attrs["level_of_theory"]
    pair_data = stand_in_pair_data(root / "pairs.h5", level)
    return {"monomer": trained(root / "h2o", "+molecule=h2o", "symmetry=full", "loss=energy_force"),
            "pair": trained(root / "pair", "+molecule=water_pair", f"molecule.data={pair_data}", "model.layers=1"),
            "root": root}


@pytest.mark.slow
def test_md_of_a_water_trimer_from_two_runs(runs, siqml, tmp_path, repo):
    out = tmp_path / "md"
    result = siqml("md", f"cluster.monomer={runs['monomer']}", f"cluster.pair={runs['pair']}",
                   f"cluster.geometry={repo / 'data/water_trimer.xyz'}", "md.steps=20", "md.write_every=5",
                   "md.temperature=100", f"out={out}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "md.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 20
    assert summary["cluster"]["molecules"] == 3 and summary["cluster"]["pair"] == str(runs["pair"])
    assert 0.8 < summary["oh_bond_min_A"] <= summary["oh_bond_max_A"] < 1.3
    assert 2.5 < summary["largest_nearest_oo_A"] < 3.2
    assert len(read(out / "md.extxyz", index=":")) == 5


@pytest.mark.slow
def test_runs_that_do_not_fit_together_are_refused(runs, siqml, repo):
    root = runs["root"]
    level = read_dataset(resolve_input("data/h2o.h5")).attrs["level_of_theory"]
    other_level = trained(root / "pair_other_level", "+molecule=water_pair", "model.layers=1",
                          f"molecule.data={stand_in_pair_data(root / 'other.h5', 'RKS B3LYP/def2-SVP')}")
    total = trained(root / "pair_total", "+molecule=water_pair", "model.layers=1",
                    f"molecule.data={stand_in_pair_data(root / 'total.h5', level, label_kind=None)}")
    geometry = f"cluster.geometry={repo / 'data/water_trimer.xyz'}"
    for pair, message in ((other_level, "trained on RKS PBE.* labels, the pair run .* on RKS B3LYP/def2-SVP; "
                                        "train both on data of one level of theory"),
                          (total, "not trained on two-body energies"),
                          (runs["monomer"], "the pair model is of O-H-H, but a water cluster needs a pair model")):
        result = siqml("md", f"cluster.monomer={runs['monomer']}", f"cluster.pair={pair}", geometry)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert re.search(message, result.stderr.strip().splitlines()[-1]), result.stderr
    with pytest.raises(AtomsMismatch, match="not whole water molecules"):
        WaterClusterCalculator(runs["monomer"], runs["pair"]).check_atoms(Atoms("OHHH"))
