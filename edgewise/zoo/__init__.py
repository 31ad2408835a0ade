"""The zoo: reference architectures, data sets (digits, rail scenes, user data), training and the model cache."""

from __future__ import annotations

from edgewise.zoo.architectures import ARCHITECTURES
from edgewise.zoo.data import DATA_SOURCES
from edgewise.zoo.reference import REFERENCES


def catalogue() -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    """The zoo as tables (title, columns, rows): architectures, data sources, reference models."""
    archs = [(a.name, a.task, a.description) for a in ARCHITECTURES.values()]
    archs.append(("torchvision:<name>", "either", "any torchvision architecture, random weights"))
    data = [(name, (spec.__doc__ or "").strip().splitlines()[0]) for name, spec in DATA_SOURCES.items()]
    refs = [(r.name, r.arch, r.data.name, r.description) for r in REFERENCES.values()]
    return [
        ("Architectures", ("name", "task", "description"), archs),
        ("Data sources", ("name", "description"), data),
        ("Reference models (trained on first use, then cached)", ("name", "arch", "data", "description"), refs),
    ]
