"""The one exception type for user mistakes (bad input, bad config, missing files).

Commands print it as a single line and exit non-zero; anything else is a bug and
keeps its traceback behind ``--debug``.
"""


class Rb2vError(Exception):
    """A problem the user can fix: the message names the file and the problem."""

    exit_code = 2


class PartialFailure(Rb2vError):
    """Some units of work failed (each already reported); the rest finished."""

    exit_code = 1
