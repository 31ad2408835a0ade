"""Sweeps: every configuration of a recipe's sweep as its own run, in local worker processes or as Ray tasks."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edgewise.base.paths import run_directory
from edgewise.board.errors import EdgewiseError, StageError, UserError
from edgewise.core.console import bar, console
from edgewise.core.rundir import RunDirectory
from edgewise.recipe import Recipe, SweepConfiguration

CONFIGS = "configs"


@dataclass
class SweepResult:
    """A finished sweep: its directory, one summary per configuration (in sweep order) and the report files."""

    root: Path
    configurations: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The configurations whose run raised."""
        return [c for c in self.configurations if c["error"] is not None]


def default_threads(jobs: int) -> int:
    """Threads each configuration may use so that `jobs` of them share this machine's CPUs."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def run_configuration(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration's recipe into `payload['out']` (a worker process's or Ray task's entry point).

    Returns a JSON-able summary: the name, the axis values, result rows, bench records, wall time,
    and the error (None on success). Torch is limited to `payload['threads']` threads so that parallel
    configurations do not oversubscribe the CPUs, and so that results do not depend on where they ran.
    """
    import torch

    from edgewise.pipeline import run_recipe

    os.environ["EDGEWISE_QUIET"] = "1"
    console.quiet = True  # the sweep's own process reports each configuration; workers' lines would interleave
    torch.set_num_threads(payload["threads"])
    start = time.perf_counter()
    summary = {"name": payload["name"], "overrides": payload["overrides"], "rows": [], "bench": [], "error": None}
    try:
        result = run_recipe(Recipe.model_validate(payload["recipe"]), payload["out"], payload["name"],
                            force=payload["force"])
        summary.update(rows=result.rows, bench=result.bench)
    except EdgewiseError as exc:
        summary["error"] = exc.problem
    except Exception as exc:  # one configuration's failure must not end the sweep
        summary["error"] = f"{type(exc).__name__}: {exc}"
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    return summary


def _pack(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=directory.name, filter=lambda info: None if info.name.endswith(".lock") else info)
    return buffer.getvalue()


def _unpack(data: bytes, parent: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(parent, filter="data")


def run_packed(payload: dict[str, Any], previous: bytes | None) -> tuple[dict[str, Any], bytes]:
    """Run one configuration on a machine that may not share our disk: its earlier run directory (if any) travels
    in as a tar.gz, so unchanged stages are reused there, and the finished directory travels back the same way."""
    with tempfile.TemporaryDirectory(prefix="edgewise-task-") as tmp:
        if previous is not None:
            _unpack(previous, Path(tmp))
        summary = run_configuration({**payload, "out": tmp})
        return summary, _pack(Path(tmp) / payload["name"])


def _replace_directory(data: bytes, parent: Path, name: str) -> None:
    """Put a packed run directory in place of `parent/name`; the old one stays until the new one is whole."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        _unpack(data, staging)
        old = parent / f".{name}.old"
        if (parent / name).exists():
            (parent / name).rename(old)
        (staging / name).rename(parent / name)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _payloads(configurations: Sequence[SweepConfiguration], parent: Path, force: Sequence[str],
              threads: int) -> list[dict[str, Any]]:
    return [{"name": c.name, "overrides": c.overrides, "recipe": c.recipe.model_dump(mode="json", by_alias=True),
             "out": str(parent), "force": list(force), "threads": threads} for c in configurations]


def _pin_worker(slots: Any, threads: int) -> None:
    """Give each worker process its own CPUs, so parallel configurations time their models on separate cores."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    cpus = sorted(os.sched_getaffinity(0))
    mine = {cpus[(slot * threads + i) % len(cpus)] for i in range(threads)}
    os.sched_setaffinity(0, mine)


def _run_local(payloads: list[dict[str, Any]], jobs: int, done: Callable[[dict[str, Any]], None]) -> None:
    # spawn, not fork: torch's thread pools and locks do not survive a fork of a process that already used them
    context = get_context("spawn")
    slots = context.Value("i", 0)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin_worker,
                             initargs=(slots, payloads[0]["threads"])) as pool:
        futures = [pool.submit(run_configuration, p) for p in payloads]
        for future in as_completed(futures):
            done(future.result())


RAY_CONNECT_TIMEOUT_S = 3.0


def _check_reachable(address: str) -> None:
    """Refuse a Ray address (host:port or ray://host:port) nothing answers at within a few seconds: ray.init itself
    retries for minutes before it gives up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address!r} is not host:port", "give the head node's address, e.g. --ray "
                        "127.0.0.1:6379 (or ray://host:10001 for Ray Client)")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address} ({exc.strerror or type(exc).__name__})",
                        "start it with `ray start --head` and pass its address, or run without --ray") from None


def _run_ray(payloads: list[dict[str, Any]], address: str, parent: Path,
             done: Callable[[dict[str, Any]], None]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise UserError("--ray needs the ray package, which is not installed",
                        "pip install 'edgewise[ray]' (or run without --ray to use local worker processes)") from exc
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot connect to the Ray cluster at {address}: {exc}",
                            "start it with `ray start --head` and pass its address, e.g. --ray 127.0.0.1:6379") from exc
    try:
        pending = {}
        for p in payloads:
            previous = parent / p["name"]
            packed = _pack(previous) if (previous / "manifest.json").is_file() else None
            task = ray.remote(num_cpus=p["threads"])(run_packed).remote(p, packed)
            pending[task] = p["name"]
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready[0])
            summary, directory = ray.get(ready[0])
            _replace_directory(directory, parent, name)
            done(summary)
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(recipe: Recipe, out: str | Path = "runs", name: str | None = None, jobs: int = 1,
              ray_address: str | None = None, force: Sequence[str] = (), threads: int | None = None) -> SweepResult:
    """Run every configuration of `recipe`'s sweep, each into `out/<name>/configs/<configuration>/`, then compare.

    Configurations run in `jobs` local worker processes, or as Ray tasks on the cluster at
    `ray_address`; either way each is an ordinary resumable run, so repeating a sweep only runs
    what changed. The sweep's own directory holds sweep.json (one summary per configuration),
    sweep.csv and the comparison report with the Pareto front of size, score, latency and energy.
    A configuration that fails is reported and the others go on; the failure is raised at the end.
    """
    from edgewise.report.sweep import write_sweep_report

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}", "give the number of worker processes, e.g. --jobs 2")
    configurations = recipe.configurations()
    root = run_directory(out, name or recipe.name)
    parent = root / CONFIGS
    threads = threads or default_threads(jobs)
    payloads = _payloads(configurations, parent, force, threads)
    where = f"Ray at {ray_address}" if ray_address else f"{jobs} local worker process(es)"
    console.print(f"[bold]edgewise[/bold] sweep {root.name}: {len(payloads)} configurations on {where}, "
                  f"{threads} thread(s) each -> {root}")
    with RunDirectory.create(root, root.name, recipe.model_dump(mode="json", by_alias=True)) as run:
        parent.mkdir(parents=True, exist_ok=True)
        summaries: dict[str, dict[str, Any]] = {}
        with run.stage("sweep", params={"configurations": len(payloads), "jobs": jobs, "ray": ray_address,
                                        "threads": threads, "axes": recipe.sweep}) as st, \
                bar("sweep", len(payloads)) as task:

            def done(summary: dict[str, Any]) -> None:
                summaries[summary["name"]] = summary
                task.advance()
                status = "failed: " + summary["error"] if summary["error"] else f"done in {summary['wall_s']:.1f} s"
                console.print(f"  {summary['name']}: {status}")

            if ray_address:
                _run_ray(payloads, ray_address, parent, done)
            else:
                _run_local(payloads, jobs, done)
            st.metrics.update(failed=sum(s["error"] is not None for s in summaries.values()))
        result = SweepResult(root, [summaries[p["name"]] for p in payloads])
        with run.stage("report") as st:
            result.reports = write_sweep_report(root, recipe, result.configurations, run.manifest,
                                                parallel=bool(ray_address) or jobs > 1)
            for path in result.reports.values():
                st.add_output(path)
        run.finish()
    if result.failed:
        raise StageError(f"{len(result.failed)} of {len(payloads)} sweep configurations failed, first "
                         f"{result.failed[0]['name']}: {result.failed[0]['error']}",
                         f"see {root / 'sweep.json'}; fix the cause and run again (finished configurations are reused)")
    return result
