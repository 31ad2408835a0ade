"""The model-version ledger: every version of a recipe model (float32, pruned, quantized, ...) as one record.

Stages append versions and add files to them; export, emulate, deploy, bench, the summary and
sweeps read the records' fields (kind, files, score row), never labels or file names. A version
is the unit a user reads in the report: what it is, how it scores, which files it has and how it
runs (an ONNX session when it has an ONNX file, the FantastIC4 integer kernel when it was
emulated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the kinds of versions, in the order a model goes through them
FLOAT32, GIVEN, PRUNED, EXPERT, UNION, FOLDED, QUANTIZED, BITSTREAM, W4A8 = (
    "float32", "given", "pruned", "expert", "union", "folded", "quantized", "bitstream", "w4a8")
KINDS = (FLOAT32, GIVEN, PRUNED, EXPERT, UNION, FOLDED, QUANTIZED, BITSTREAM, W4A8)
# the main line: each version compresses the one before; the next compression stage starts from its last (with a
# torch model: a W4A8 file, the quantized model with 8-bit activations, exists as ONNX only)
MAIN_LINE = (FLOAT32, GIVEN, PRUNED, FOLDED, QUANTIZED, W4A8)
# class-specific versions answer another question (a subset of the classes) and are reported apart
CLASS_SPECIFIC = (EXPERT, UNION)

# the files a version can have, by role
TORCH, RECORDS, ONNX, BITSTREAM_FILE, EMULATION = "torch", "records", "onnx", "bitstream", "emulation"


@dataclass
class Version:
    """One version of a model: what it is, how it scores and what it weighs, and its files by role.

    `row` is the score row of the results table (None for an intermediate such as a folded model,
    which scores like its parent and is not reported); `runs_as` names the version whose runtime
    figures apply (a bitstream runs as the quantized model it decodes to); `rung` is its step of
    the size ladder (bytes, bits per weight, sparsity, entropy).
    """

    id: str
    kind: str
    label: str
    parent: str | None = None
    row: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    runs_as: str | None = None
    rung: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown version kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def runs(self) -> str:
        """The id of the version whose latency, memory and energy figures stand for this one."""
        return self.runs_as or self.id

    def result_row(self) -> dict[str, Any]:
        """The score row with the version's identity: id, kind and the version it runs as."""
        if self.row is None:
            raise ValueError(f"version {self.id} has no score row")
        return {**self.row, "version": self.id, "kind": self.kind, "runs_as": self.runs}

    def to_json(self, root: Path) -> dict[str, Any]:
        """JSON-able values, file paths relative to `root` (the run directory)."""
        files = {}
        for role, path in self.files.items():
            try:
                files[role] = str(Path(path).relative_to(root))
            except ValueError:
                files[role] = str(path)
        return {"id": self.id, "kind": self.kind, "label": self.label, "parent": self.parent, "row": self.row,
                "files": files, "runs_as": self.runs, "rung": self.rung}


class Ledger:
    """A model's versions in the order they were made."""

    def __init__(self) -> None:
        self._versions: dict[str, Version] = {}

    def __iter__(self) -> Iterator[Version]:
        return iter(self._versions.values())

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, version_id: str) -> bool:
        return version_id in self._versions

    def __getitem__(self, version_id: str) -> Version:
        return self._versions[version_id]

    def merge(self, values: dict[str, Any], resolve: Callable[[str], Path]) -> Version:
        """Add the version `values` describes, or update the one with its id: files are added, other fields set.

        `values` is what a stage returns (JSON): `files` maps roles to output names of that stage,
        which `resolve` turns into paths, so a reused stage hands on exactly what it recorded.
        """
        files = {role: resolve(name) for role, name in values.get("files", {}).items()}
        fields = {k: v for k, v in values.items() if k not in ("id", "files")}
        version = self._versions.get(values["id"])
        if version is None:
            version = Version(values["id"], files=files, **fields)
            self._versions[version.id] = version
            return version
        version.files.update(files)
        for key, value in fields.items():
            setattr(version, key, value)
        return version

    def of_kind(self, *kinds: str) -> list[Version]:
        """The versions of the given kinds, in order."""
        return [v for v in self if v.kind in kinds]

    def working(self) -> Version:
        """The version the next compression stage starts from: the last of the main line with a torch model."""
        line = [v for v in self.of_kind(*MAIN_LINE) if TORCH in v.files]
        if not line:
            raise LookupError("no torch version of this model yet")
        return line[-1]

    def reported(self) -> list[Version]:
        """The versions with a score row, in order: the rows of the results table."""
        return [v for v in self if v.row is not None]

    def deployable(self) -> list[Version]:
        """The main-line versions with a score row: the ones exported, bundled and benchmarked."""
        return [v for v in self.of_kind(*MAIN_LINE) if v.row is not None]

    def final(self) -> Version:
        """The last deployable version: the compressed model a board receives."""
        return self.deployable()[-1]

    def rows(self) -> list[dict[str, Any]]:
        """The result rows of every reported version (with version id, kind and what it runs as); a version that runs
        as another (a bitstream, as the quantized model it decodes to) has that one's score in ONNX Runtime."""
        rows = [v.result_row() for v in self.reported()]
        shipped = {r["version"]: r["onnx_score"] for r in rows if r.get("onnx_score") is not None}
        for row in rows:
            if row.get("onnx_score") is None and row["runs_as"] in shipped:
                row["onnx_score"] = shipped[row["runs_as"]]
        return rows
