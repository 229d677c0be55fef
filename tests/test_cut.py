"""The water dimer 1D cut (Table 4, Fig. 8): the shipped set, its sampling, reading the cut back from
positions, and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.spatial.transform import Rotation

from siqml_cli.data import read_dataset
from siqml_cli.data.generate import (
    CUT_ATOM,
    CUT_FIXED,
    WATER_DIMER_MINIMUM,
    align_on_minimum,
    cut_displacement,
    cut_geometry,
    force_along_cut,
    label_dft,
    sample,
)
from siqml_cli.models import build_model
from siqml_cli.report.figures import plot_cut_curve

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/ and configs/

CUT = REPO_ROOT / "data" / "water_dimer_cut.h5"
GENERATE = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "configs" / "molecule" / "water_dimer_cut.yaml"))[
    "molecule"]["generate"]


@pytest.fixture(scope="module")
def cut():
    return read_dataset(CUT, "water_dimer_cut")


def displacements():
    return np.linspace(*GENERATE["params"]["displacement"], GENERATE["n"])


def test_shipped_cut_has_the_configured_size_and_provenance(cut):
    assert len(cut) == GENERATE["n"] >= 100
    assert cut.species == ("O", "H", "H", "O", "H", "H")
    assert np.isfinite(cut.energies).all() and np.isfinite(cut.forces).all()
    np.testing.assert_array_equal(cut.attrs["reference_geometry"], WATER_DIMER_MINIMUM)
    assert int(cut.attrs["cut_atom"]) == CUT_ATOM


def test_only_the_bridging_hydrogen_moves_and_only_along_x(cut):
    _, aligned = align_on_minimum(cut.positions)
    np.testing.assert_allclose(aligned[:, CUT_FIXED], np.broadcast_to(WATER_DIMER_MINIMUM[CUT_FIXED],
                                                                     (len(cut), 5, 3)), atol=1e-8)
    np.testing.assert_allclose(aligned[:, CUT_ATOM, 1:], np.broadcast_to(WATER_DIMER_MINIMUM[CUT_ATOM, 1:],
                                                                        (len(cut), 2)), atol=1e-8)


def test_displacements_are_recovered_and_evenly_spaced(cut):
    np.testing.assert_allclose(cut_displacement(cut.positions), displacements(), atol=1e-8)


def test_configurations_are_randomly_oriented_and_translated(cut):
    rotations, _ = align_on_minimum(cut.positions)
    assert cut.positions.mean(axis=1).std(axis=0).min() > 0.5  # translations U[-2, 2]
    assert np.abs(rotations.mean(axis=0)).max() < 0.3  # rotations spread out: their mean tends to 0


def test_energy_rises_half_an_ev_on_both_sides_of_the_minimum(cut):
    lowest = int(np.argmin(cut.energies))
    assert 0 < lowest < len(cut) - 1
    assert cut.energies[0] - cut.energies[lowest] >= 0.5
    assert cut.energies[-1] - cut.energies[lowest] >= 0.5


def test_forces_sum_to_zero_and_are_minus_the_slope_of_the_cut(cut):
    assert np.abs(cut.forces.sum(axis=1)).max() < 1e-3
    slope = np.gradient(cut.energies, displacements())
    np.testing.assert_allclose(force_along_cut(cut.positions, cut.forces)[1:-1], -slope[1:-1], atol=0.02)


def test_force_along_cut_turns_forces_into_the_reference_frame():
    rng = np.random.default_rng(3)
    forces = rng.normal(size=(4, 6, 3))
    rotations = Rotation.random(4, random_state=4)
    positions = np.stack([r.apply(cut_geometry(x)) + 1.5 for r, x in zip(rotations, (-0.1, 0.0, 0.1, 0.2))])
    rotated = np.stack([r.apply(f) for r, f in zip(rotations, forces)])
    np.testing.assert_allclose(force_along_cut(positions, rotated), forces[:, CUT_ATOM, 0], atol=1e-12)
    np.testing.assert_allclose(cut_displacement(positions), [-0.1, 0.0, 0.1, 0.2], atol=1e-12)


def test_regenerating_gives_the_shipped_positions(cut):
    positions = sample("water_dimer_cut", GENERATE["n"], int(cut.attrs["seed"]), GENERATE["params"])
    np.testing.assert_array_equal(positions, cut.positions)


def test_a_recomputed_point_matches_the_shipped_one(cut):
    energy, forces = label_dft(cut.species, cut.positions[7])
    assert energy == pytest.approx(cut.energies[7], abs=1e-6)
    np.testing.assert_allclose(forces, cut.forces[7], atol=1e-5)


def test_the_cut_is_learned_by_the_water_dimer_model():
    assert build_model("water_dimer_cut", "broken", 1, 1) == build_model("water_dimer", "broken", 1, 1)


def test_plot_cut_curve(tmp_path):
    x = displacements()
    energy = 20 * x ** 2
    path = tmp_path / "cut.png"
    plot_cut_curve(x, energy, x, energy + 0.01, path, forces_ref=-40 * x, forces_pred_grid=-40 * x,
                   disp_train=x[::2])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # ~20-60 s: compiles the 12-qubit model
def test_train_on_the_cut_draws_its_curve(tmp_path, siqml):
    result = siqml("train", "+molecule=water_dimer_cut", "train.steps=5", f"hydra.run.dir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cut_curve.png").stat().st_size > 0
