"""The domain a model saw: ordinary test configurations pass, absurd ones are flagged with the reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from siqml_cli.data import read_dataset
from siqml_cli.domain import Domain, check_cell, describe_outside
from siqml_cli.errors import SiqmlError
from siqml_cli.train.run import split_indices

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its data/

MOLECULES = ["lih", "h2o", "water_dimer", "water_dimer_cut"]


def _split_domain(name: str, seed: int = 0):
    data = read_dataset(REPO_ROOT / "data" / f"{name}.h5")
    split = split_indices(len(data), 0.8, seed)
    return Domain.from_dataset(data.species, data.positions[split.train]), data.positions[split.test]


@pytest.mark.parametrize("name", MOLECULES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_ordinary_test_configuration_is_flagged(name, seed):
    domain, test = _split_domain(name, seed)
    outside, reasons = domain.check(test)
    assert outside.shape == (len(test),) and not outside.any(), [r for r in reasons if r][:3]
    assert reasons == [""] * len(test)


@pytest.mark.parametrize("name", MOLECULES)
def test_absurd_configurations_are_flagged_with_the_pair_and_range(name):
    domain, test = _split_domain(name)
    bond = np.linalg.norm(test[:, 1] - test[:, 0], axis=-1)
    ordinary = test[np.argsort(bond)[len(bond) // 2]]  # a bond of median length
    same_point = ordinary.copy()
    same_point[1] = same_point[0]
    far = ordinary.copy()
    far[-1] += np.array([1000.0, 0.0, 0.0])
    stretched = ordinary.copy()  # atom 1 is bonded to atom 0 in every shipped molecule (Li-H, O-H)
    stretched[1] = ordinary[0] + 3 * (ordinary[1] - ordinary[0])
    nan = ordinary.copy()
    nan[0, 0] = np.nan
    outside, reasons = domain.check(np.stack([ordinary, same_point, far, stretched, nan]))
    assert outside.tolist() == [False, True, True, True, True]
    assert reasons[0] == ""
    assert "distance 0.000 Å outside the trained range" in reasons[1]
    assert re.search(r"distance (99\d|100\d)\.\d+ Å outside the trained range", reasons[2]), reasons[2]
    assert re.search(r"(H-Li|H-O|H-H|O-O) distance \d+\.\d+ Å outside the trained range \d+\.\d+-\d+\.\d+ Å$",
                     reasons[3]), reasons[3]
    assert reasons[4] == "non-finite coordinates"


def test_exchanging_equal_atoms_stays_inside():
    domain, test = _split_domain("water_dimer")
    swapped = test[:, [3, 5, 4, 0, 2, 1]]  # the two molecules and the H of each exchanged
    assert not domain.check(swapped)[0].any()


def test_round_trip_through_json():
    domain, test = _split_domain("h2o")
    again = Domain.from_dict(json.loads(json.dumps(domain.to_dict())))
    assert again.species == domain.species and again.margin == domain.margin
    for pair in domain.seen:
        np.testing.assert_array_equal(again.seen[pair], domain.seen[pair])
    probe = test.copy()
    probe[::3, 2] *= 2.5
    assert np.array_equal(again.check(probe)[0], domain.check(probe)[0])
    with pytest.raises(SiqmlError, match="does not fit its species"):
        Domain.from_dict({**domain.to_dict(), "species": ["Li", "H"]})


def test_periodic_cells_are_refused_and_open_ones_pass():
    molecule = Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]])
    check_cell(molecule)
    check_cell(Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[10, 10, 10], pbc=False))
    with pytest.raises(SiqmlError, match="periodic along xyz") as error:
        check_cell(Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[10, 10, 10], pbc=True))
    assert "\n" not in str(error.value)
    with pytest.raises(SiqmlError, match="periodic along z"):
        check_cell(Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[10, 10, 10], pbc=[False, False, True]))


def test_describe_outside_names_the_first_few_and_counts_the_rest():
    outside = np.array([False, True, True, True, True, False])
    reasons = ["", "a", "b", "c", "d", ""]
    assert describe_outside(outside, reasons) == ("4 of 6 configurations lie outside the training domain "
                                                  "(configuration 1: a; configuration 2: b; configuration 3: c; "
                                                  "1 more)")
    assert describe_outside(np.array([True]), ["far"]) == ("1 of 1 configuration lies outside the training domain "
                                                          "(configuration 0: far)")


def test_the_run_folder_keeps_the_domain_and_every_prediction_flags(tmp_path):
    """Saved with the model (model.json), loaded with it, flagged by `ForceField.predict`; a model.json
    without one (a run trained before domains were recorded) loads, and its predictions carry no flag."""
    from siqml_cli.forcefield import ForceField, LabelScaler
    from siqml_cli.models import build_model
    from siqml_cli.runs import RunFolder

    domain, test = _split_domain("lih")
    spec = build_model("lih", "full", 1, 1)
    forcefield = ForceField(spec, spec.init_weights(0), LabelScaler(-215.0, -213.0, -0.5, 0.5), domain=domain)
    run = RunFolder(tmp_path / "run")
    run.save_forcefield(forcefield)
    loaded = run.load_forcefield()
    assert loaded.domain.to_dict() == domain.to_dict()
    far = test[:2].copy()
    far[1, 1] += [0.0, 0.0, 1000.0]
    assert loaded.predict(far).flags["out_of_domain"].tolist() == [False, True]
    record = json.loads(run.file("model.json").read_text())
    run.file("model.json").write_text(json.dumps({k: v for k, v in record.items() if k != "domain"}))
    assert run.load_forcefield().domain is None and not run.load_forcefield().predict(far).flags
    run.file("model.json").write_text(json.dumps({**record, "domain": {"species": ["Li", "H"]}}))
    with pytest.raises(SiqmlError, match=r"model.json is damaged \(the recorded model domain is damaged"):
        run.load_forcefield()


def test_a_periodic_extxyz_file_is_refused_on_reading(tmp_path):
    import ase.io

    path = tmp_path / "crystal.extxyz"
    ase.io.write(path, [Atoms("LiH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[5, 5, 5], pbc=[True, False, False])],
                 format="extxyz")
    with pytest.raises(SiqmlError, match=r"crystal.extxyz: configuration 0: a periodic cell \(periodic along x\)"):
        read_dataset(path)
