"""Where relative paths point: the working directory first, then the repository (shipped data)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"


def resolve_input(path: str | Path) -> Path:
    """An existing file as given, else the same relative path under the repository root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    shipped = REPO_ROOT / path
    return shipped if shipped.exists() else path
