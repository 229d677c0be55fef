"""The one exception type meant for users: the CLI prints its message on one line and exits 1."""


class SiqmlError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
