"""Benchmark figures in words: a record's latency, memory and energy, each with how it was obtained.

One formatter serves the report's tables (short cells) and the `edgewise bench` command (a line
per figure with its details); a figure without a source says so and why, never a number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgewise.report.units import binary_bytes, duration, si


def _tail(part: dict[str, Any]) -> tuple[str, str] | None:
    """The percentile a latency shows beside its median, named: p90, else p99 (TensorRT 7 prints no p90)."""
    for key in ("p90_ms", "p99_ms"):
        if key in part:
            return key.removesuffix("_ms"), duration(part[key] / 1e3)
    return None


def _replaced(part: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> str:
    """', estimated X' for a measured figure that replaces an estimate."""
    return f"; estimated {text(part['replaces']).removesuffix(' (estimated)')}" if "replaces" in part else ""


def latency_text(part: dict[str, Any]) -> str:
    """'median / p90 (kind)', an estimate with its range, or 'unavailable'; a board's measurement names the estimate
    it replaces."""
    if part["kind"] == "unavailable":
        return "unavailable"
    if part["kind"] == "estimated":
        return (f"{duration(part['median_ms'] / 1e3)} ({duration(part['low_ms'] / 1e3)}-"
                f"{duration(part['high_ms'] / 1e3)}, estimated)")
    tail = _tail(part)
    unstable = ", unstable" if part.get("unstable") else ""
    return (f"{duration(part['median_ms'] / 1e3)}{' / ' + tail[1] if tail else ''} "
            f"({part['kind']}{unstable}{_replaced(part, latency_text)})")


def spread_text(part: dict[str, Any]) -> str:
    """A measured latency's runs, its p10-p90 range, the machine's other load and why it is unstable, where known:
    what a reader needs to judge the median (empty for figures that are not timed)."""
    if "iterations" not in part:
        return ""
    text = f"{part['iterations']:,} runs"
    if "p10_ms" in part:
        text += f", p10-p90 {duration(part['p10_ms'] / 1e3)}-{duration(part['p90_ms'] / 1e3)}"
    if part.get("other_cpu_share") is not None:
        text += f", other processes {part['other_cpu_share']:.0%} of the CPUs"
    if part.get("unstable"):
        text += f"; UNSTABLE ({'; '.join(part['unstable'])}): not ranked, measure again on a quiet machine"
    return text


def _memory_figure(part: dict[str, Any]) -> str:
    if "peak_rss_bytes" in part:
        text = f"{binary_bytes(part['peak_rss_bytes'])} peak"
        if "system_ram_above_idle_bytes" in part:
            text += f", {binary_bytes(part['system_ram_above_idle_bytes'])} system RAM above idle"
        return text
    if "gpu_process_bytes" in part or "gpu_peak_allocated_bytes" in part:
        return f"{binary_bytes(part.get('gpu_process_bytes') or part['gpu_peak_allocated_bytes'])} GPU"
    if "system_ram_above_idle_bytes" in part:
        return f"{binary_bytes(part['system_ram_above_idle_bytes'])} system RAM above idle"
    return f"{binary_bytes(part['weight_bytes'])} weights"


def memory_text(part: dict[str, Any]) -> str:
    """Peak resident memory of a fresh process (with a board's system RAM above idle), GPU memory, or the weights'
    bytes where only those are known; with the kind."""
    if part["kind"] == "unavailable":
        return "unavailable"
    return f"{_memory_figure(part)} ({part['kind']}{_replaced(part, memory_text)})"


def energy_text(part: dict[str, Any]) -> str:
    """Gross energy per inference with its kind and source; an unavailable figure always says why (the fix is in it)."""
    if part["kind"] == "unavailable":
        return f"unavailable: {part['reason']}"
    source = f", {part['rail']}" if part.get("rail") else ""
    return f"{si(part['gross_j_per_inference'], 'J')} ({part['kind']}{source}{_replaced(part, energy_text)})"


def inputs_text(spec: list[dict[str, Any]]) -> str:
    """The inputs a figure holds for, as `--input` takes them: name:shape:dtype, space-separated."""
    return " ".join(f"{s['name']}:{'x'.join(map(str, s['shape'])) or 'scalar'}:{s['dtype']}" for s in spec)


def counts_text(counts: dict[str, Any]) -> str:
    """MACs (or what was counted, and why not all) and weights of a model at its inputs."""
    macs = (f"{si(counts['macs'])}MACs" if counts["macs"] is not None
            else f"at least {si(counts['macs_counted'])}MACs ({'; '.join(counts['unknown'][:2])})")
    return f"{macs}, {binary_bytes(counts['weight_bytes'])} of weights ({si(counts['parameters'])} parameters)"


def record_lines(record: dict[str, Any]) -> list[str]:
    """What `edgewise bench` prints for a record: its inputs and counts, then latency, memory and energy, each with
    its kind and details."""
    lat, mem, energy = record["latency"], record["memory"], record["energy"]
    lines = [f"inputs: {inputs_text(record['inputs'])}"]
    if "counts" in record:
        lines.append(f"model: {counts_text(record['counts'])}")
    if lat["kind"] == "unavailable":
        lines.append(f"latency: unavailable ({lat['reason']})")
    elif lat["kind"] == "estimated":
        lines.append(f"latency (estimated): {duration(lat['median_ms'] / 1e3)}, range "
                     f"{duration(lat['low_ms'] / 1e3)} to {duration(lat['high_ms'] / 1e3)} at {lat['power_mode']} "
                     f"({lat['method']}; a model, not a measurement)")
    else:
        rate = lat.get("throughput_per_s")
        spread = spread_text(lat)
        lines.append(f"latency ({lat['kind']}{', ' + lat['backend'] if lat.get('backend') else ''}): median "
                     f"{duration(lat['median_ms'] / 1e3)}{', ' + ' '.join(_tail(lat)) if _tail(lat) else ''}"
                     + (f", {rate:,.0f} inferences/s" if rate else "") + (f" ({spread})" if spread else "")
                     + _replaced(lat, latency_text))
    if "peak_rss_bytes" in mem:
        lines.append(f"memory ({mem['kind']}): peak RSS {binary_bytes(mem['peak_rss_bytes'])} "
                     f"({binary_bytes(mem['model_rss_bytes'])} over the runtime alone), file "
                     f"{binary_bytes(mem['model_file_bytes'])}"
                     + (f", system RAM {binary_bytes(mem['system_ram_above_idle_bytes'])} above idle"
                        if "system_ram_above_idle_bytes" in mem else "") + _replaced(mem, memory_text))
    elif mem["kind"] == "unavailable":
        lines.append(f"memory: unavailable ({mem['reason']})")
    else:
        lines.append(f"memory ({mem['kind']}): {_memory_figure(mem)}{_replaced(mem, memory_text)}")
    if energy["kind"] == "unavailable":
        lines.append(f"energy: unavailable ({energy['reason']})")
    else:
        net = energy.get("net_j_per_inference")
        where = f" from {energy['rail']}" if energy.get("rail") else ""
        lines.append(f"energy ({energy['kind']}{', ' + energy['source'] if energy.get('source') else ''}): "
                     f"{si(energy['gross_j_per_inference'], 'J')} per inference{where}"
                     + (f", net {si(net, 'J')} above idle" if net is not None else "")
                     + _replaced(energy, energy_text))
        lines += [f"energy warning: {w}" for w in energy.get("warnings", [])]
    board = record.get("board") or {}
    if board:
        mode, pinned = board.get("power_mode", {}), board.get("gpu_clocks", {}).get("jetson_clocks")
        lines.append(f"board: power mode {mode.get('name') or 'unknown (' + str(mode.get('reason')) + ')'}, "
                     f"jetson_clocks {({True: 'on', False: 'off'}).get(pinned, 'unknown')}")
    return lines
