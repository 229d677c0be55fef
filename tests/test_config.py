"""The typed configuration (siqml_cli.config): every range check is one line from the command line, a
wrong type or an unknown key is refused when the config is composed, and each schema's defaults are the
YAML files' defaults (so `--help` shows what the code assumes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from siqml_cli import config
from siqml_cli.cli import preflight
from siqml_cli.errors import SiqmlError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # the checkout's config tree

#: (command, overrides, the start of the one-line message): every range check of the schema
RANGE_CHECKS = [
    ("train", ["train.steps=-1"], "train.steps must be an integer >= 0, got -1"),
    ("train", ["train.lr=0"], "train.lr must lie in (0.0, inf]"),
    ("train", ["train.batch_size=0"], "train.batch_size must be an integer >= 1 or null"),
    ("train", ["train.lr_final_fraction=1.5"], "train.lr_final_fraction must lie in [0.0, 1.0]"),
    ("train", ["train.checkpoint_every=0"], "train.checkpoint_every must be an integer >= 1"),
    ("train", ["loss.force_weight=-1"], "loss.force_weight must lie in [0.0, inf]"),
    ("train", ["noise.sigma=-0.1"], "noise.sigma must lie in [0.0, inf]"),
    ("train", ["data.train_fraction=0"], "data.train_fraction must lie in (0.0, 1.0]"),
    ("train", ["data.relevant_window=0"], "data.relevant_window must lie in (0.0, inf]"),
    ("train", ["seed=-1"], "seed must be an integer >= 0"),
    ("train", ["model.layers=0"], "model.layers must be a positive integer"),
    ("train", ["model.blocks=0"], "model.blocks must be a positive integer"),
    ("train", ["model.alpha_init=inf"], "model.alpha_init must be a number (where the encoding scales start)"),
    ("train", ["model.output_margin=0.5"], "model.output_margin must lie in [0.0, 0.5)"),
    ("train", ["model.output_range=[1,0]"], "model.output_range must be two finite numbers with low < high"),
    ("train", ["model.output_range=[-9,9]"], "model.output_range must satisfy"),
    ("train", ["model.feature_range=[1,1]"], "model.feature_range must be two finite numbers with low < high"),
    ("train", ["symmetry=none", "model.periodize=true", "model.feature_range=[0,2]"],
     "model.periodize=true needs a feature_range of width pi"),
    ("train", ["molecule.generate.n=0"], "molecule.generate.n must be an integer >= 1"),
    ("train", ["backend=aer", "backend.shots=0"], "backend.shots must be an integer >= 1 or null"),
    ("train", ["backend=aer", "backend.seed=-1"], "backend.seed must be an integer >= 0"),
    ("train", ["backend=aer", "backend.optimization_level=4"], "backend.optimization_level must be 0, 1, 2 or 3"),
    ("train", ["backend=aer", "backend.configurations_per_job=0"],
     "backend.configurations_per_job must be an integer >= 1"),
    ("train", ["backend=aer", "backend.finite_difference_step=0"], "backend.finite_difference_step must be a positive"),
    ("train", ["backend=aer", "backend.noise.readout=1"], "backend.noise.readout must be a probability in [0, 1)"),
    ("train", ["backend=aer", "backend.noise.device=fake_manila", "backend.noise.readout=0.1"],
     "backend.noise: give either a device's noise model"),
    ("train", ["backend=ibm"], "backend=ibm needs a device"),
    ("train", ["backend=fake", "backend.mitigation.resilience_level=3"],
     "the IBM runtime's Estimator refuses backend.mitigation: resilience_level"),
    ("train", ["backend=fake", "+backend.options.no_such_option=1"],
     "the IBM runtime's Estimator refuses backend.options.no_such_option"),
    ("evaluate", ["run=x", "data.max_configurations=0"], "data.max_configurations must be a positive integer or null"),
    ("submit", ["run=x", "backend.name=ibm_torino", "data.max_configurations=0"],
     "data.max_configurations must be a positive integer or null"),
    ("md", ["run=x", "md.timestep=0"], "md.timestep must lie in (0.0, inf]"),
    ("md", ["run=x", "md.temperature=-1"], "md.temperature must lie in [0.0, inf]"),
    ("md", ["run=x", "md.friction=-1"], "md.friction must lie in [0.0, inf]"),
    ("md", ["run=x", "md.max_distance=0"], "md.max_distance must lie in (0.0, inf]"),
    ("md", ["run=x", "md.steps=0"], "md.steps must be an integer >= 1"),
    ("md", ["run=x", "md.write_every=0"], "md.write_every must be an integer >= 1"),
    ("vibrations", ["run=x", "fmax=0"], "fmax must lie in (0.0, inf]"),
    ("vibrations", ["run=x", "delta=-1"], "delta must lie in (0.0, inf]"),
    ("check-symmetry", ["n_configs=0"], "n_configs must be an integer >= 1"),
    ("data", ["n=0"], "n must be a positive number of configurations"),
]


def _with_molecule(command: str, overrides: list[str]) -> list[str]:
    return ["+molecule=lih", *overrides] if command in ("train", "check-symmetry", "data") else overrides


@pytest.mark.parametrize("command, overrides, message", RANGE_CHECKS,
                         ids=[" ".join(o) for _, o, _ in RANGE_CHECKS])
def test_every_range_check_is_one_line_before_the_command_runs(command, overrides, message):
    """`preflight` is what `siqml <command>` runs before Hydra starts the command (exit 2 on a SiqmlError)."""
    with pytest.raises(SiqmlError) as error:
        preflight(command, _with_molecule(command, overrides))
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("command, overrides, message", [
    ("train", ["train.steps=-1"], "train.steps must be an integer >= 0, got -1"),
    ("train", ["train.lr=fast"], "train.lr must be a number, got 'fast'"),
    ("train", ["train.schedule=linear"], "train.schedule must be one of constant, cosine, got 'linear'"),
    ("train", ["+train.stepz=3"], "unknown key 'train.stepz'"),
    ("train", ["-m", "seed=0,1", "noise.sigma=-1"], "noise.sigma must lie in [0.0, inf]"),
    ("md", ["run=x", "md.ensemble=npt"], "md.ensemble must be one of nve, langevin, got 'npt'"),
])
def test_the_command_line_exits_2_with_one_line_and_no_folder(siqml, tmp_path, command, overrides, message):
    folder = tmp_path / "run"
    result = siqml(command, *_with_molecule(command, overrides), f"hydra.run.dir={folder}",
                   f"hydra.sweep.dir={folder}")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"siqml {command}: error: {message}"), result.stderr
    assert not folder.exists()


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=many", "train.batch_size must be an integer or null, got 'many'"),
    ("model.atom_readout=maybe", "model.atom_readout must be true or false, got 'maybe'"),
    ("backend.forces=adjoint", "backend.forces must be one of shift, finite_difference, none, got 'adjoint'"),
])
def test_a_wrong_type_is_refused_at_compose(override, message):
    from siqml_cli.cli import compose_check

    with pytest.raises(SiqmlError) as error:
        compose_check("train", ["+molecule=lih", override])
    assert str(error.value) == message


def test_an_unknown_key_is_refused():
    from siqml_cli.cli import compose_check

    with pytest.raises(SiqmlError, match="train.stepz"):
        compose_check("train", ["+molecule=lih", "train.stepz=3"])
    with pytest.raises(SiqmlError, match="unknown key 'model.depth'"):
        config.parse(config.TrainCommand, compose_check("train", ["+molecule=lih", "+model.depth=3"]))


def _defaults(schema) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)


def _yaml(path) -> dict:
    values = OmegaConf.to_container(OmegaConf.load(path))
    return {k: v for k, v in values.items() if k not in ("defaults", "hydra")}


@pytest.mark.parametrize("group, option", [("model", "sivqlm"), ("optim", "adam"), ("split", "default"),
                                           ("noise", "none"), ("loss", "energy"), ("symmetry", "full"),
                                           ("backend", "statevector")])
def test_each_group_schema_defaults_equal_the_default_option(group, option):
    assert _yaml(CONFIG_DIR / group / f"{option}.yaml") == {
        k: v for k, v in _defaults(config.GROUP_SCHEMAS[group]).items()
        if k in _yaml(CONFIG_DIR / group / f"{option}.yaml")}
    if group != "backend":  # the backend's options each set their own keys
        assert _yaml(CONFIG_DIR / group / f"{option}.yaml") == _defaults(config.GROUP_SCHEMAS[group])


def test_the_backend_schema_defaults_are_the_aer_options():
    aer, defaults = _yaml(CONFIG_DIR / "backend" / "aer.yaml"), _defaults(config.BackendConfig)
    assert {k: v for k, v in aer.items() if k not in ("kind", "name")} == {
        k: v for k, v in defaults.items() if k in aer and k not in ("kind", "name")}


@pytest.mark.parametrize("command", sorted(config.COMMAND_SCHEMAS))
def test_each_command_schema_defaults_equal_its_yaml(command):
    defaults = _defaults(config.COMMAND_SCHEMAS[command])
    for key, value in _yaml(CONFIG_DIR / f"{command}.yaml").items():
        assert defaults[key] == value, key


def test_every_group_and_preset_composes_and_parses():
    from siqml_cli.cli import compose_check
    from siqml_cli.train.run import checked_settings

    for molecule in ("lih", "h2o", "water_dimer", "water_dimer_cut"):
        settings = config.parse(config.TrainCommand, compose_check("train", [f"+molecule={molecule}"]))
        assert settings.molecule.name == molecule
    for arm in sorted(p.stem for p in (CONFIG_DIR / "arm").glob("*.yaml")):
        molecule = "lih" if arm.startswith("lih") else "h2o" if arm.startswith("h2o") else "water_dimer"
        checked_settings(compose_check("train", [f"+molecule={molecule}", f"+arm={arm}"]))
    dimer = config.parse(config.TrainCommand, compose_check("train", ["+molecule=water_dimer"])).model
    assert (dimer.frame, dimer.atom_readout, dimer.observable) == ("bonds", True, "trained")
    for backend in ("statevector", "aer", "fake"):
        config.parse(config.EvaluateCommand, compose_check("evaluate", ["run=x", f"backend={backend}"]))


def test_the_typed_settings_are_the_schema_classes():
    settings = config.parse(config.TrainCommand, {"molecule": {"name": "lih", "species": ["Li", "H"], "data": "d"}})
    assert isinstance(settings.train, config.OptimConfig) and settings.train.schedule is config.Schedule.cosine
    assert f"{settings.train.precision}" == "single" and settings.backend.record()["kind"] == "statevector"
    assert [f.name for f in dataclasses.fields(config.TrainCommand)][:1] == ["molecule"]
