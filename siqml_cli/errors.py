"""The one exception type meant for users, and the one way a command reports it: one line, then exit."""

from __future__ import annotations

import sys
from typing import NoReturn


class SiqmlError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def fail(command: str, message: str, code: int = 1) -> NoReturn:
    """`siqml <command>: error: <message>` on stderr and exit with `code` (1; 2 for a bad command line)."""
    print(f"siqml {command}: error: {message}", file=sys.stderr)
    sys.exit(code)
