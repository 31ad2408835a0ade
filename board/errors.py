"""The kit's exception types: every error a user can cause names the problem and the fix."""

from __future__ import annotations


class EdgewiseError(Exception):
    """Base of all Edgewise errors: the problem (the message) and, where one exists, the fix.

    The CLI prints both on one or two lines without a traceback and maps the error's type to its
    exit code (a user's error 2, the kit's 1).
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem} (fix: {fix})")


class UserError(EdgewiseError):
    """Something the user can correct: bad input, a bad recipe, a missing file."""


class RecipeError(UserError):
    """A recipe that does not validate: names the field, what was expected and what was given."""


class DataError(UserError):
    """Data that cannot be read or does not fit the model."""


class StageError(EdgewiseError):
    """A pipeline stage failed for a reason inside the kit."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a one-line error quotes of
    a library's exception."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# what the file system said, as the problem a user reads and the fix: errno -> (problem, fix)
_FILESYSTEM = {
    1: ("permission denied", "choose a writable location, or fix its permissions"),
    2: ("no such file or directory (or a folder that cannot hold new files, as /proc)",
        "give a path under an existing, ordinary folder"),
    13: ("permission denied", "choose a writable location, or fix its permissions"),
    17: ("a file is in the way where a folder is needed", "remove the file or choose another location"),
    20: ("a part of the path is a file, not a folder", "give a path whose parents are folders"),
    21: ("is a folder, where a file is needed", "give the path of a file"),
    24: ("too many open files", "raise the limit (ulimit -n) or run fewer jobs at once"),
    27: ("the file is larger than this process or file system allows", "raise the limit (ulimit -f), or write to "
         "another file system"),
    28: ("no space left on the device", "free some space, or write somewhere else"),
    30: ("the file system is read-only", "write somewhere writable (-o, --out, EDGEWISE_CACHE)"),
    36: ("a file name is too long (file systems take 255 bytes a name)", "give a shorter name"),
    40: ("a symlink loop", "fix the links, or give a path without them"),
    122: ("the disk quota is exceeded", "free some space, or write somewhere else"),
}


def filesystem_refusal(exc: OSError) -> tuple[str, str] | None:
    """What a file-system refusal (read-only, full, permission, symlink loop, a name too long, a file where a folder
    should be) means and its fix, as two phrases; None for an OSError that is no such refusal."""
    return _FILESYSTEM.get(exc.errno or 0)


def filesystem_error(exc: OSError, path: object = None, role: str = "") -> UserError | None:
    """A user's one-line error for a file-system refusal (see `filesystem_refusal`), naming the path (`path`, else
    the one the exception names) and, when given, its role (e.g. "the run directory"); None for an OSError that is
    no such refusal."""
    known = filesystem_refusal(exc)
    if known is None:
        return None
    where = path if path is not None else (exc.filename or "")
    if not where:
        return UserError(known[0].capitalize(), known[1])
    return UserError(f"cannot write {f'{role} ' if role else ''}{where}: {known[0]}", known[1])
