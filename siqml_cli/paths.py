"""Where the shipped files are: Hydra's configs and the reference data sets, both installed inside the
package (the repository's `configs/` and `data/`, mapped by pyproject.toml), so that an installed wheel
works in any directory just as a checkout does."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

CONFIG_PACKAGE = "siqml_cli.configs"
CONFIG_PATH = f"pkg://{CONFIG_PACKAGE}"  # Hydra's search path for `hydra.main(config_path=...)`
SHIPPED_PACKAGE = "siqml_cli.shipped"
SHIPPED_PREFIX = "data"  # configs name the shipped data sets `data/<name>.h5`


def config_files() -> Traversable:
    """The root of the config tree (configs/ of the repository)."""
    return files(CONFIG_PACKAGE)


def config_options(group: str) -> list[str]:
    """The options of a config group (`molecule`, `hydra/launcher`, ...): its YAML files' names."""
    folder = config_files().joinpath(*group.split("/"))
    if not folder.is_dir():
        return []
    return sorted(f.name.removesuffix(".yaml") for f in folder.iterdir() if f.name.endswith(".yaml"))


def resolve_input(path: str | Path) -> Path:
    """An existing file as given (relative to the working directory), else a shipped data set named
    `data/<name>`, else the path as given (so the caller's error names what the user wrote)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or path.parts[:1] != (SHIPPED_PREFIX,) or len(path.parts) < 2:
        return path
    shipped = files(SHIPPED_PACKAGE).joinpath(*path.parts[1:])
    return Path(str(shipped)) if shipped.is_file() else path
