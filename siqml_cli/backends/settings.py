"""The `backend` config group as the backends see it: `BackendSettings`, checked once and typed.

Its schema and checks are `siqml_cli.config.BackendConfig`; every module of `siqml_cli.backends`
takes these settings, never the raw config, so a bad value is one line for the user before
anything is transpiled or sent.
"""

from __future__ import annotations

from siqml_cli.config import BackendConfig as BackendSettings
from siqml_cli.config import BackendKind, ForceMethod
from siqml_cli.config import MitigationConfig as Mitigation
from siqml_cli.config import NoiseModelConfig as Noise
from siqml_cli.config import parse_backend as backend_settings

__all__ = ["BackendKind", "BackendSettings", "ForceMethod", "Mitigation", "Noise", "backend_settings"]
