"""Export's error type: a model, file or bundle that cannot be exported, verified or trusted."""

from __future__ import annotations

from edgewise.board.errors import UserError


class ExportError(UserError):
    """An export that failed a check (shapes, parity with torch, hashes) or cannot be done as asked."""
