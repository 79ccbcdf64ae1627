"""The one exception type for user mistakes (bad input, bad config, missing files).

Commands print it as a single line and exit non-zero; anything else is a bug and
keeps its traceback behind ``--debug``. A permission, read-only or full-disk error is not a bug
either: ``environment_error`` gives its line.
"""

from __future__ import annotations

import errno
import os

# what the machine refuses, not a bug: said in one line naming the place, like a user error
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def environment_error(e: BaseException) -> str | None:
    """The one-line message of a permission, read-only or full-disk error (None for anything else).
    A temporary name of an atomic write is reported as its folder."""
    if not isinstance(e, OSError) or e.errno not in _ENVIRONMENT_ERRNOS:
        return None
    from .fsutil import is_partial_name  # fsutil raises Rb2vError: imported here, not at the top

    where = e.filename
    if where is not None and is_partial_name(os.path.basename(str(where))):
        where = os.path.dirname(str(where)) or "."
    return f"{where}: {e.strerror}" if where is not None else str(e.strerror)


class Rb2vError(Exception):
    """A problem the user can fix: the message names the file and the problem."""

    exit_code = 2


class PartialFailure(Rb2vError):
    """Some units of work failed (each already reported); the rest finished."""

    exit_code = 1
