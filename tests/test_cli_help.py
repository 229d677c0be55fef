"""Every `siqml` command explains itself (`--help`, `--hydra-help`) and completes on Tab (Hydra's shell completion)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from siqml_cli.cli import COMMANDS

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # the checkout's config tree

HYDRA_COMMANDS = [name for name, (config, _) in COMMANDS.items() if config is not None]


def config_keys(config_name: str) -> list[str]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return list(compose(config_name=config_name))


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
def test_help_names_the_command_and_lists_its_keys(command, siqml):
    result = siqml(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"siqml {command}: {COMMANDS[command][1]}")
    listed = set(re.findall(r"^'?(\w+)'?:", result.stdout.split("== Config ==")[1], flags=re.MULTILINE))
    assert set(config_keys(COMMANDS[command][0])) <= listed


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
def test_hydra_help_tells_how_to_install_completion(command, siqml):
    result = siqml(command, "--hydra-help")
    assert result.returncode == 0, result.stderr
    assert f'eval "$(siqml {command} -sc install=bash)"' in result.stdout


def test_report_has_an_argparse_help(siqml):
    result = siqml("report", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: siqml report") and "--out DIR" in result.stdout


@pytest.mark.parametrize("args", [["-sc", "install=bash"], ["md", "-sc", "install=bash"]])
def test_completion_script_is_for_the_siqml_program(args, siqml):
    result = siqml(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("complete -o nospace -o default -F hydra_bash_completion siqml")
    assert "-sc query=bash" in result.stdout


@pytest.mark.parametrize("line, expected, absent", [
    ("siqml ", {"train", "evaluate", "check-symmetry", "report"}, set()),
    ("siqml ch", {"check-symmetry"}, {"train"}),
    ("siqml train +molecule=", {"+molecule=lih", "+molecule=h2o"}, set()),
    ("siqml md md.t", {"md.temperature=", "md.timestep="}, {"md.steps="}),
    ("siqml evaluate backend=", {"backend=aer", "backend=statevector"}, set()),
    ("siqml report res", set(), set()),  # folders: left to the shell
])
def test_completion_answers_for_the_command_on_the_line(line, expected, absent, monkeypatch, siqml):
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    result = siqml("-sc", "query=bash")
    assert result.returncode == 0, result.stderr
    offered = set(result.stdout.split())
    assert expected <= offered and not absent & offered and (expected or not offered)
