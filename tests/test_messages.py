"""Messages: a folder for a file says so, every error names its command, no third-party noise before it."""

from __future__ import annotations

import warnings

import pytest

from siqml_cli.backends.estimators import fake_device
from siqml_cli.errors import SiqmlError


def _one_line(result, command: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"siqml {command}: error: ")
    return lines[0]


def test_a_folder_as_training_data_says_so(siqml, tmp_path):
    line = _one_line(siqml("train", "+molecule=lih", f"data.path={tmp_path}", "train.steps=1",
                           f"hydra.run.dir={tmp_path / 'run'}"), "train")
    assert f"{tmp_path} is a folder, not a data file" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key", ["out", "export", "input"])
def test_a_folder_given_to_the_data_command_says_so(siqml, tmp_path, key):
    args = {"out": f"out={tmp_path / 'x.h5'}", key: f"{key}={tmp_path}"}
    line = _one_line(siqml("data", "+molecule=lih", "n=1", *args.values()), "data")
    assert f"{tmp_path} is a folder" in line


def test_report_errors_name_the_command(siqml, tmp_path):
    line = _one_line(siqml("report", str(tmp_path / "missing")), "report")
    assert "no such folder" in line


def test_an_unknown_fake_device_warns_of_nothing_else():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SiqmlError, match="unknown fake device 'fake_nope'"):
            fake_device("fake_nope")
        assert fake_device("fake_manila").num_qubits == 5
    assert [str(w.message) for w in caught] == []
