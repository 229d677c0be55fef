"""siqml: symmetry-invariant quantum machine-learning force fields (Le et al., arXiv:2311.11362).

The Python API (`siqml_cli.api`, docs/api.md) is exported here and imported on first use (PEP 562), so
that `import siqml_cli`, and with it every `siqml` command's start-up, stays free of JAX and Qiskit.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: exported name -> the module that defines it. `siqml_cli.api.train` is not among them: `siqml_cli.train` is
#: the training subpackage, which Python binds to that name whenever it is imported.
_EXPORTS = {
    "load_run": "siqml_cli.api", "build_model": "siqml_cli.api",
    "TrainedRun": "siqml_cli.api", "RunFolder": "siqml_cli.runs", "Prediction": "siqml_cli.prediction",
    "SiqmlError": "siqml_cli.errors",
}

__all__ = ["Prediction", "RunFolder", "SiqmlError", "TrainedRun", "__version__", "build_model", "load_run"]

if TYPE_CHECKING:
    from siqml_cli.api import TrainedRun, build_model, load_run
    from siqml_cli.errors import SiqmlError
    from siqml_cli.prediction import Prediction
    from siqml_cli.runs import RunFolder


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'siqml_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
