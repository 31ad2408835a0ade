"""A report section: a titled table a stage adds to the report, a note under it, and an optional plot."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Section:
    """A titled table a stage adds to the report, with an explanatory note under it."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str = ""
    image: bytes | None = None
    lead: bool = False  # shown above the results table: the summary a reader wants first

    def to_json(self) -> dict[str, Any]:
        """The section as JSON-able values (the PNG as base64), for a stage's stored outcome."""
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "note": self.note, "image": base64.b64encode(self.image).decode() if self.image else None,
                "lead": self.lead}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Section:
        """The section `to_json` stored."""
        image = base64.b64decode(value["image"]) if value.get("image") else None
        return cls(value["title"], tuple(value["columns"]), [tuple(r) for r in value["rows"]], value["note"], image,
                   value.get("lead", False))
