"""The package as a library: importing it changes no global setting of JAX or matplotlib, and its
shipped configs and data are found through the package, not the checkout."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import siqml_cli
from siqml_cli.paths import config_options, resolve_input

MODULES = sorted(m.name for m in pkgutil.walk_packages(siqml_cli.__path__, "siqml_cli."))

SETTINGS = """
import importlib, json, sys
import jax, matplotlib
before = (jax.config.jax_enable_x64, matplotlib.get_backend())
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": (jax.config.jax_enable_x64, matplotlib.get_backend())}))
"""


def test_importing_every_module_keeps_jax_precision_and_matplotlib_backend():
    # a backend other than Agg, as a notebook would have; double precision off, JAX's default
    env = {**os.environ, "MPLBACKEND": "svg", "JAX_ENABLE_X64": "0"}
    done = subprocess.run([sys.executable, "-c", SETTINGS, *MODULES], capture_output=True, text=True, env=env,
                          check=True)
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["before"] == [False, "svg"]
    assert seen["after"] == seen["before"]


def test_double_precision_is_scoped():
    import jax
    import jax.numpy as jnp

    from siqml_cli.precision import double_precision

    @double_precision
    def dtype():
        return jnp.asarray(1.0, dtype=jnp.float64).dtype

    with jax.enable_x64(False):  # the tests run in double precision (conftest); JAX's default is single
        assert dtype() == jnp.float64
        assert not jax.config.jax_enable_x64
        assert jnp.asarray(1.0).dtype == jnp.float32


def test_shipped_configs_and_data_come_from_the_package():
    assert {"lih", "h2o", "water_dimer"} <= set(config_options("molecule"))
    assert "slurm" in config_options("hydra/launcher")
    assert resolve_input("data/h2o.h5").is_file()
    assert str(resolve_input("data/no_such_file.h5")) == "data/no_such_file.h5"  # the error names the user's path
