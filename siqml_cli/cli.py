"""The `siqml` entry point: `siqml <command> [hydra overrides]`.

Each command is a Hydra app over `configs/`. Problems a user can fix are raised as SiqmlError
anywhere below and end here as one line on stderr with exit code 1 (2 for a bad command line).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
from pathlib import Path

from siqml_cli.config import GROUPS
from siqml_cli.errors import SiqmlError, fail
from siqml_cli.paths import CONFIG_PACKAGE, CONFIG_PATH, config_options

SWEEP_FILE = "multirun.yaml"  # Hydra's record of a sweep, in its folder

COMMANDS = {
    "train": ("train", "train a siVQLM; writes results/<molecule>/<symmetry>/<date>_<time>/"),
    "data": ("generate", "generate reference data with PySCF, label given configurations, export extxyz"),
    "evaluate": ("evaluate", "predict energies and forces of a trained run on any configurations (any backend)"),
    "submit": ("submit", "send a trained run's circuits to IBM Quantum (or a fake device) as jobs; returns at once"),
    "retrieve": ("retrieve", "fetch the finished jobs of `siqml submit` and write the tables (resumable)"),
    "check-symmetry": ("check_symmetry", "measure a model's invariance errors for random configurations"),
    "md": ("md", "molecular dynamics (NVE or Langevin) with a trained run, through ASE"),
    "vibrations": ("vibrations", "harmonic frequencies of a trained run next to the reference method's"),
    "report": (None, "summarise runs or a sweep (results/multirun/...): tables over seeds and MSE figures"),
}
# Hydra's launchers and its plugins'; configs/hydra/launcher adds its own
LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")
HELP_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i")  # Hydra answers these without running
COMPLETION_FLAGS = ("-sc", "--shell-completion")

USAGE = "usage: siqml <command> [key=value ...]\n\ncommands:\n" + "\n".join(
    f"  {name:<15} {text}" for name, (_, text) in COMMANDS.items()) + (
    "\n\nexamples:\n  siqml train +molecule=h2o\n  siqml train +molecule=lih model.layers=6 train.steps=2000\n"
    "  siqml evaluate run=results/h2o/broken/<date>_<time>\n"
    "  siqml evaluate run=results/h2o/broken/<date>_<time> backend=aer backend.shots=4000\n"
    "  siqml submit run=results/h2o/broken/<date>_<time> backend=ibm backend.name=ibm_torino\n"
    "  siqml train experiment=h2o                     # one of the paper's experiments, 3 seeds\n"
    "  siqml check-symmetry +molecule=h2o\n"
    "  siqml train -m +molecule=lih noise.sigma=0,0.01 seed=0,1 hydra/launcher=joblib\n"
    "  siqml report results/multirun/<date>_<time>\n"
    "\nEach command takes Hydra overrides (report takes folders); `siqml <command> --help` lists its configuration.\n"
    "Tab completion of commands and keys in bash: eval \"$(siqml -sc install=bash)\" (zsh, fish: see --hydra-help).")


def _group_value(override: str) -> tuple[str, str] | None:
    key, sep, value = override.lstrip("+~").partition("=")
    return (key, value) if sep and key in GROUPS else None


def has_molecule(overrides: list[str]) -> bool:
    return any((_group_value(o) or ("",))[0] == "molecule" for o in overrides)


def shipped_molecules() -> list[str]:
    from siqml_cli.molecules import shipped

    return sorted(shipped())


def with_custom_molecule(overrides: list[str]) -> list[str]:
    """`molecule.geometry=...` or `molecule.data=...` without `+molecule`: a molecule known only from its file
    (`+molecule=custom`), so that `siqml data molecule.geometry=x.xyz` needs nothing more."""
    if any(o.startswith(("molecule.geometry=", "molecule.data=")) for o in overrides):
        return [*overrides, "+molecule=custom"]
    return overrides


def check_groups(overrides: list[str]) -> None:
    """Unknown options of config groups, one line each (Hydra would print a paragraph)."""
    for override in overrides:
        found = _group_value(override)
        if override.startswith("hydra/launcher="):
            found = ("hydra/launcher", override.partition("=")[2])
        if not found:
            continue
        group, value = found
        options = sorted(set(config_options(group)) | (set(LAUNCHERS) if group == "hydra/launcher" else set()))
        for choice in value.split(","):
            if choice and choice not in options:
                raise SiqmlError(f"unknown {group} '{choice}'; choose one of: {', '.join(options)}")


def compose_check(config_name: str, overrides: list[str], keep_hydra: bool = False):
    """Compose the config once without running, to report bad keys or values as one line; returns it.
    Hydra's own overrides (`hydra.run.dir=...`) are left to Hydra unless `keep_hydra` (the Python API,
    which has no Hydra run to apply them)."""
    from hydra import compose, initialize_config_module
    from omegaconf.errors import ValidationError

    from siqml_cli.config import COMMAND_SCHEMAS, describe

    plain = [o for o in overrides if not o.startswith(("-",) if keep_hydra else ("hydra.", "hydra/", "-"))]
    try:
        with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
            return compose(config_name=config_name, overrides=plain, return_hydra_config=True)
    except Exception as exc:  # Hydra and OmegaConf raise several types; all mean a bad override
        if isinstance(exc.__cause__, ValidationError):  # a value of the wrong type: the schema says which
            raise SiqmlError(describe(exc.__cause__, COMMAND_SCHEMAS[config_name])) from None
        command = next((name for name, (config, _) in COMMANDS.items() if config == config_name), config_name)
        unknown = re.search(r"Could not override '([^']+)'", str(exc))
        if unknown:  # Hydra would suggest appending it with `+`, which only hides a typo
            raise SiqmlError(f"unknown key '{unknown.group(1)}'; see `siqml {command} --help` for the keys") from None
        lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()]
        raise SiqmlError("; ".join(lines[:3]) + f" (see `siqml {command} --help` for the keys)") from None


def preflight(command: str, overrides: list[str]) -> list[str]:
    """Checks that need no Hydra run, and the run folder of a resumed training."""
    check_groups(overrides)
    multirun = any(o in ("-m", "--multirun") for o in overrides) or has_experiment(overrides)
    wants_help = any(o.startswith(HELP_FLAGS) for o in overrides)
    if command == "train" and not wants_help:
        resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=")), None)
        if resume and (Path(resume) / SWEEP_FILE).is_file():
            overrides = resumed_sweep(Path(resume), [o for o in overrides if not o.startswith("resume=")])
            multirun = True
        elif resume:  # verified before Hydra writes into the run folder: a refused resume changes nothing
            from siqml_cli.train.resume import resumed_config

            saved = resumed_config(Path(resume), overrides)
            overrides = [*overrides, f"hydra.run.dir={resume}"]
            if not has_molecule(overrides):
                overrides.append(f"+molecule={saved.molecule.name}")
        elif not has_molecule(overrides) and not has_experiment(overrides):
            overrides = with_custom_molecule(overrides)
            if not has_molecule(overrides):
                raise SiqmlError(f"+molecule is missing: add +molecule=<name> ({', '.join(shipped_molecules())}), "
                                 "or molecule.data=<file> for your own molecule, or run one of the paper's "
                                 "experiments with experiment=<name>")
    if command in ("check-symmetry", "data") and not wants_help and not has_molecule(overrides):
        overrides = with_custom_molecule(overrides)
        if not has_molecule(overrides):
            raise SiqmlError(f"+molecule is missing: add +molecule=<name> ({', '.join(shipped_molecules())}), or "
                             "molecule.geometry=<xyz file> for your own molecule")
    if command in ("evaluate", "md", "vibrations", "submit", "retrieve") and not wants_help and not any(
            o.startswith(("run=", "cluster.")) for o in overrides):
        cluster = (", or for a water cluster cluster.monomer=, cluster.pair= and cluster.geometry="
                   if command == "md" else "")
        raise SiqmlError("run= is missing: give a trained run folder, e.g. "
                         f"run=results/h2o/broken/<date>_<time>{cluster}")
    if not wants_help:
        sweep = sweep_jobs(overrides) if multirun else [overrides]
        cfg = compose_check(COMMANDS[command][0], sweep[0])
        arms = preset_arms(cfg, overrides)
        jobs = ([compose_check(COMMANDS[command][0], [*sweep[0], f"+arm={arm}"]) for arm in arms]
                or [cfg, *(compose_check(COMMANDS[command][0], job) for job in sweep[1:])])
        for job in jobs:  # every model of an experiment or a sweep, before any job starts
            check_values(command, job)
    return overrides


def check_values(command: str, cfg) -> None:
    """Every value of a composed config against its schema, before any run (or any job of a sweep)
    starts, so that a bad one is one line and no results folder."""
    if command == "train":
        from siqml_cli.train.run import checked_settings

        checked_settings(cfg)
    else:
        from siqml_cli.config import parse_command

        parse_command(COMMANDS[command][0], cfg)


def has_experiment(overrides: list[str]) -> bool:
    return any((_group_value(o) or ("",))[0] == "experiment" for o in overrides)


def preset_arms(cfg, overrides: list[str]) -> list[str]:
    """The models (`+arm`) an experiment preset sweeps over, unless the command line picks them."""
    if cfg is None or any(o.lstrip("+").startswith("arm=") for o in overrides):
        return []
    from omegaconf import OmegaConf

    arms = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
    return [a.strip() for a in str(arms.get("+arm", "")).split(",") if a.strip()]


def resumed_sweep(folder: Path, extra: list[str]) -> list[str]:
    """The command line of a sweep (or experiment) in `folder`, to run again into the same folder: jobs
    that completed are skipped, interrupted ones continue from their checkpoints."""
    from omegaconf import OmegaConf

    saved = OmegaConf.load(folder / SWEEP_FILE)
    original = [o for o in (OmegaConf.select(saved, "hydra.overrides.task") or []) if not o.startswith("resume=")]
    return ["-m", *original, *extra, f"hydra.sweep.dir={folder}"]


#: the most jobs of a sweep checked one by one before it starts; a larger sweep has each value checked once
MAX_CHECKED_JOBS = 64


def sweep_values(override: str) -> list[str]:
    """`key=a,b,c` or `key=range(3)` -> one override per value, read by Hydra's own override parser; a
    continuous sweep (interval) is left to Hydra's sweeper, and what the parser rejects to the composition
    that reports it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "=" not in override or override.startswith("-"):
        return [override]
    try:
        parsed = OverridesParser.create().parse_override(override)
    except Exception:  # Hydra's grammar errors: composing the config reports them as one line
        return [override]
    if not parsed.is_sweep_override() or not parsed.is_discrete_sweep():
        return [override]
    key = parsed.get_key_element()
    return [f"{key}={value}" for value in parsed.sweep_string_iterator()]


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The override lists of a comma sweep's jobs, so that every job's values (a model too large to compile
    in one of them included) are checked before any starts: all of them up to MAX_CHECKED_JOBS, beyond that
    each value of each key once, with the first value of every other key."""
    values = [sweep_values(o) for o in overrides]
    if math.prod(len(v) for v in values) <= MAX_CHECKED_JOBS:
        return [list(job) for job in itertools.product(*values)]
    first = [v[0] for v in values]
    return [first] + [[*first[:i], value, *first[i + 1:]] for i, v in enumerate(values) for value in v[1:]]


def run_hydra(command: str, overrides: list[str]) -> None:
    import hydra

    from siqml_cli import tasks
    from siqml_cli.precision import double_precision

    task = double_precision(tasks.TASKS[command])  # every command computes in double precision
    if any(o in ("--help", "-h") for o in overrides):  # Hydra would name the app after tasks.py
        overrides = [*overrides, f'hydra.help.header="siqml {command}: {COMMANDS[command][1]}"']
    # the completion script Hydra installs registers and calls the program named here
    program = "siqml" if any(o in COMPLETION_FLAGS for o in overrides) else f"siqml {command}"
    sys.argv = [program, *overrides]
    hydra.main(config_path=CONFIG_PATH, config_name=COMMANDS[command][0], version_base="1.3")(task)()


def shell_completion(flags: list[str]) -> None:
    """Answer `siqml -sc query=bash`, which the script of `siqml [<command>] -sc install=bash` runs on each
    Tab with the command line in COMP_LINE: command names first, then Hydra completes that command's
    config with the command word taken out of the line; report's folders are left to the shell."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) < 2 or (len(words) == 2 and not line.endswith(" ")):
        if any(f.startswith("query=") for f in flags):
            typed = words[1] if len(words) == 2 else ""
            print(" ".join(name for name in COMMANDS if name.startswith(typed)))
            return
    command = words[1] if len(words) > 1 and words[1] in COMMANDS else "train"
    if COMMANDS[command][0] is None:
        return
    os.environ["COMP_LINE"] = re.sub(r"^(\s*\S+)\s+\S+", r"\1", line, count=1)
    run_hydra(command, flags)


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        from siqml_cli import __version__

        print(f"siqml {__version__}")
        return
    if any(a in COMPLETION_FLAGS for a in argv):
        shell_completion([a for a in argv if a not in COMMANDS])
        return
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        fail("", f"unknown command '{command}'; choose one of: {', '.join(COMMANDS)}", code=2)
    from siqml_cli import interrupts

    interrupts.install(command)
    try:
        if command != "report":
            # before Hydra: Ctrl-C while a C extension initialises surfaces as an ImportError, caught below
            import jax  # noqa: F401
        run_command(command, overrides)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what was written stays; one line, no traceback
        message, code = interrupts.stopped_message(command, exc)
        print(f"\n{message}", file=sys.stderr)
        sys.exit(code)
    except Exception:
        if not interrupts.received():
            raise
        message, code = interrupts.stopped_message(command, KeyboardInterrupt())
        print(f"\n{message}", file=sys.stderr)
        sys.exit(code)


def run_command(command: str, overrides: list[str]) -> None:
    if command == "report":  # folders, not Hydra overrides
        from siqml_cli.report.summary import main as report_main

        try:
            report_main(overrides)
        except SiqmlError as exc:
            fail(command, str(exc))
        return
    try:
        overrides = preflight(command, overrides)
    except SiqmlError as exc:
        fail(command, str(exc), code=2)
    run_hydra(command, overrides)

