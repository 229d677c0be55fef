"""The repository documents itself: the README's links resolve inside the clone, and nothing refers to
background files that a clone does not have. (`make docs` builds the site in strict mode; this check
needs no documentation tools.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: names of background files kept outside the repository (split so this file does not match itself)
OUTSIDE = ("shared" + "/paper", "MODELS" + ".md", "DATA" + ".md")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md", ".sh", ".toml", ".cff", ".txt", ""}


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [ROOT / name for name in listed.splitlines()]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES and f.stat().st_size < 1_000_000]


def test_nothing_refers_to_files_outside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in tracked_text_files()
                 for number, line in enumerate(path.read_text(errors="ignore").splitlines(), 1)
                 if any(name in line for name in OUTSIDE)]
    assert not offenders, "references to files outside the repository:\n" + "\n".join(offenders)


def test_readme_links_resolve_inside_the_repository():
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if not re.match(r"[a-z]+:", t)]
    assert any(t.startswith("docs/") for t in targets), "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"
