"""Run directories: every stage's inputs, outputs (with sha256), parameters, metrics and timings in manifest.json."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgewise.base.atomic import leftover_temporaries, remove_temporary, sha256_file, write_json
from edgewise.board.errors import EdgewiseError, UserError, filesystem_error
from edgewise.core.environment import describe_environment, library_versions

MANIFEST = "manifest.json"
LOCK = ".edgewise.lock"
FORMAT = "edgewise-manifest/1"
OUTCOME = "outcome.json"
# bump when a stage's outputs change meaning, so older run directories are recomputed, not reused
# (the Edgewise version is part of every key as well: a new release recomputes)
KEY_VERSION = 2


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def file_record(path: Path, root: Path) -> dict[str, Any]:
    """Path (relative to `root` where possible), sha256 and size of a file, as the manifest stores them."""
    try:
        shown = str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(path)
    return {"path": shown, "sha256": sha256_file(path), "bytes": path.stat().st_size}


@dataclass
class StageRecord:
    """What one stage did; filled in by the `RunDirectory.stage` window and written to the manifest."""

    id: str
    stage: str
    model: str | None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    status: str = "running"
    error: str | None = None
    started: str = ""
    finished: str | None = None
    wall_s: float | None = None


class StageWindow:
    """The handle a stage writes through: where its files go, and what to record about them."""

    def __init__(self, run: RunDirectory, record: StageRecord) -> None:
        self.run = run
        self.record = record
        self.dir = run.root / (record.model or "_run") / record.stage

    @property
    def metrics(self) -> dict[str, Any]:
        """The stage's metrics; update it in place."""
        return self.record.metrics

    def path(self, name: str) -> Path:
        """Where the stage's output file `name` belongs (inside the run directory)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / name

    def add_input(self, path: Path) -> None:
        """Record a file the stage read (sha256 and size)."""
        self.record.inputs.append(file_record(path, self.run.root))

    def add_output(self, path: Path) -> None:
        """Record a file the stage wrote (sha256 and size); write it atomically first."""
        self.record.outputs.append(file_record(path, self.run.root))


@dataclass(frozen=True)
class StageOutcome:
    """What a cached stage hands on: its JSON values, its output files by name, and whether it was reused."""

    values: dict[str, Any]
    files: dict[str, Path]
    reused: bool

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def stage_key(stage_id: str, params: dict[str, Any], inputs: Sequence[Path], context: dict[str, Any]) -> str:
    """sha256 over a stage's identity, parameters, context and its input files' contents: equal keys, equal work."""
    missing = [str(path) for path in inputs if not Path(path).is_file()]
    if missing:
        raise UserError(f"stage {stage_id}: input file {missing[0]} does not exist",
                        "check the path in the recipe, or rerun the stages that write it (--force)")
    body = {"version": KEY_VERSION, "edgewise": library_versions(("edgewise",))["edgewise"] or "0+unknown",
            "stage": stage_id, "params": params, "context": context, "inputs": [sha256_file(path) for path in inputs]}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def never_forced(stage: str, model: str | None) -> bool:
    """The default force policy: reuse every stage whose key and outputs are unchanged."""
    return False


class RunDirectory:
    """A run's directory and its manifest; stages are recorded through `stage(...)` windows.

    Reopening a directory keeps its previous manifest's finished stages: `cached(...)` reuses a
    stage whose key (parameters and input hashes) is unchanged and whose outputs are all present
    with their recorded sha256, so an interrupted or repeated run resumes where work is missing.
    """

    def __init__(self, root: Path, name: str, recipe: dict[str, Any],
                 force: Callable[[str, str | None], bool] = never_forced) -> None:
        self.root = root
        self.force = force
        self.previous: dict[str, dict[str, Any]] = {}
        self._finished = False
        self._told: set[str] = set()
        self.manifest: dict[str, Any] = {
            "format": FORMAT, "run": name, "created": _now(), "updated": _now(),
            "recipe": recipe, "environment": describe_environment(), "stages": [],
        }

    @classmethod
    def create(cls, root: str | Path, name: str, recipe: dict[str, Any],
               force: Callable[[str, str | None], bool] = never_forced) -> RunDirectory:
        """Open (creating if needed) and lock the run directory `root`, and write its initial manifest.

        The lock (an exclusive flock on `.edgewise.lock`) keeps two runs from writing the same
        directory at once; the operating system drops it when the process ends, crashed or not.
        Temporary files a killed run left behind are removed once the lock is held.
        Use the run as a context manager, or call `close()`, to release it. `force(stage, model)`
        says which stages must run again even where their earlier results could be reused.
        """
        run = cls(Path(root), name, recipe, force)
        run._lock()
        try:
            for leftover in leftover_temporaries(run.root):  # a killed run's half-written files: ours, under the lock
                remove_temporary(leftover)
            run._load_previous()
            run.save()
        except BaseException:
            run.close()
            raise
        return run

    def _lock(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run's lifetime)
        except OSError as exc:  # read-only, full, a file or a symlink loop in the way
            raise (filesystem_error(exc, self.root, "the run directory") or exc) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"run directory {self.root} is in use by another run ({holder})",
                            "wait for that run to finish, or give this one another --name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {_now()}\n")
        handle.flush()
        self._lock_handle = handle

    def _load_previous(self) -> None:
        path = self.root / MANIFEST
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # an unreadable manifest only means nothing is reused
        if isinstance(old, dict) and old.get("format") == FORMAT:
            self.manifest["created"] = old.get("created", self.manifest["created"])
            self.previous = {s["id"]: s for s in old.get("stages", []) if s.get("status") == "ok" and s.get("key")}

    def close(self) -> None:
        """Release the directory's lock."""
        handle = getattr(self, "_lock_handle", None)
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            self._lock_handle = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self) -> None:
        """Write manifest.json atomically. Until `finish`, it also carries the earlier run's finished stages that this
        run has not reached yet: a run that fails or is killed at its first stage still leaves the later ones
        reusable by the next."""
        self.manifest["updated"] = _now()
        done = {s["id"] for s in self.manifest["stages"]}
        carried = [] if self._finished else [s for i, s in self.previous.items() if i not in done]
        write_json(self.root / MANIFEST, {**self.manifest, "stages": [*self.manifest["stages"], *carried]})

    def finish(self) -> None:
        """Mark the run complete and write the manifest with this run's stages alone (a stage the recipe no longer
        has is forgotten)."""
        self._finished = True
        self.save()

    @contextlib.contextmanager
    def stage(self, stage: str, model: str | None = None,
              params: dict[str, Any] | None = None) -> Iterator[StageWindow]:
        """Record one stage: yields a window for its files and metrics; on exit writes the manifest.

        A stage that raises is recorded as failed with its error, the manifest is saved, and the
        exception propagates: artifacts of earlier stages are untouched.
        """
        record = StageRecord(id=f"{model}/{stage}" if model else stage, stage=stage, model=model,
                             params=dict(params or {}), started=_now())
        window = StageWindow(self, record)
        start = time.perf_counter()
        try:
            yield window
            record.status = "ok"
        except BaseException as exc:
            record.status = "failed"
            record.error = (exc.problem if isinstance(exc, EdgewiseError) else
                            "".join(traceback.format_exception_only(type(exc), exc)).strip())
            raise
        finally:
            record.wall_s = round(time.perf_counter() - start, 4)
            record.finished = _now()
            self._store(record)
            self.save()

    def first_time(self, notice: str) -> bool:
        """True the first time this run asks about `notice`: a note that holds for the whole run (TensorRT is
        missing here) is printed once, not once per model."""
        if notice in self._told:
            return False
        self._told.add(notice)
        return True

    def cached(self, stage: str, model: str | None, params: dict[str, Any], inputs: Sequence[Path],
               compute: Callable[[StageWindow], dict[str, Any]], context: dict[str, Any] | None = None,
               family: str | None = None) -> StageOutcome:
        """Run `compute` as stage `stage`, or reuse its earlier outcome when nothing it depends on changed.

        The stage's key hashes `params`, `context` (what else the work reads, such as the data
        set's spec and the seed) and the contents of `inputs`; an earlier successful run of
        the same stage with the same key is reused when every output it recorded still has its
        sha256 (and the force policy does not name it, or its `family`: the pipeline stage it is
        part of, as `--force` names it). `compute` writes its files through the window and
        returns JSON-able values, kept beside the outputs as outcome.json and handed back on reuse.
        """
        stage_id = f"{model}/{stage}" if model else stage
        key = stage_key(stage_id, params, inputs, context or {})
        previous = self.previous.get(stage_id)
        if previous is not None and previous["key"] == key and not self.force(family or stage, model):
            outcome = self._reuse(previous)
            if outcome is not None:
                return outcome
        with self.stage(stage, model, params) as st:
            st.record.key = key
            for path in inputs:
                st.add_input(path)
            values = compute(st)
            st.add_output(write_json(st.path(OUTCOME), values))
        return StageOutcome(values, self._files(st.record.outputs), False)

    def _files(self, outputs: list[dict[str, Any]]) -> dict[str, Path]:
        return {Path(o["path"]).name: self.root / o["path"] for o in outputs}

    def _reuse(self, previous: dict[str, Any]) -> StageOutcome | None:
        files = self._files(previous["outputs"])
        for output in previous["outputs"]:
            path = self.root / output["path"]
            if not path.is_file() or sha256_file(path) != output["sha256"]:
                return None
        record = {**previous, "reused": True}
        self.manifest["stages"] = [s for s in self.manifest["stages"] if s["id"] != record["id"]] + [record]
        self.save()
        return StageOutcome(json.loads(files[OUTCOME].read_text(encoding="utf-8")), files, True)

    def _store(self, record: StageRecord) -> None:
        entry = {**record.__dict__, "versions": library_versions(("edgewise", "torch", "numpy"))}
        stages = [s for s in self.manifest["stages"] if s["id"] != record.id]
        stages.append(entry)
        self.manifest["stages"] = stages
