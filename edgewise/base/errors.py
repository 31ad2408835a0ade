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
