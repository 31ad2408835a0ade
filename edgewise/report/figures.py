"""Benchmark figures in words: a record's latency, memory and energy, each with how it was obtained.

One formatter serves the report's tables (short cells) and the `edgewise bench` command (a line
per figure with its details); a figure without a source says so and why, never a number.
"""

from __future__ import annotations

from typing import Any

from edgewise.report.units import binary_bytes, duration, si


def latency_text(part: dict[str, Any]) -> str:
    """'median / p90 (kind)', an estimate with its range, or 'unavailable'."""
    if part["kind"] == "unavailable":
        return "unavailable"
    if part["kind"] == "estimated":
        return (f"{duration(part['median_ms'] / 1e3)} ({duration(part['low_ms'] / 1e3)}-"
                f"{duration(part['high_ms'] / 1e3)}, estimated)")
    return f"{duration(part['median_ms'] / 1e3)} / {duration(part['p90_ms'] / 1e3)} ({part['kind']})"


def memory_text(part: dict[str, Any]) -> str:
    """Peak resident memory of a fresh process, or the weights' bytes where only those are known; with the kind."""
    if part["kind"] == "unavailable":
        return "unavailable"
    if "peak_rss_bytes" in part:
        return f"{binary_bytes(part['peak_rss_bytes'])} peak ({part['kind']})"
    return f"{binary_bytes(part['weight_bytes'])} weights ({part['kind']})"


def energy_text(part: dict[str, Any]) -> str:
    """Gross energy per inference with its kind; an unavailable figure always says why (the fix is in it)."""
    if part["kind"] == "unavailable":
        return f"unavailable: {part['reason']}"
    return f"{si(part['gross_j_per_inference'], 'J')} ({part['kind']})"


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
        lines.append(f"latency ({lat['kind']}): median {duration(lat['median_ms'] / 1e3)}, p90 "
                     f"{duration(lat['p90_ms'] / 1e3)}, {lat.get('throughput_per_s', 0):,.0f} inferences/s")
    if "peak_rss_bytes" in mem:
        lines.append(f"memory ({mem['kind']}): peak RSS {binary_bytes(mem['peak_rss_bytes'])} "
                     f"({binary_bytes(mem['model_rss_bytes'])} over the runtime alone), file "
                     f"{binary_bytes(mem['model_file_bytes'])}")
    elif mem["kind"] == "unavailable":
        lines.append(f"memory: unavailable ({mem['reason']})")
    else:
        lines.append(f"memory ({mem['kind']}): {binary_bytes(mem['weight_bytes'])} weights")
    if energy["kind"] == "unavailable":
        lines.append(f"energy: unavailable ({energy['reason']})")
    else:
        net = energy.get("net_j_per_inference")
        lines.append(f"energy ({energy['kind']}): {si(energy['gross_j_per_inference'], 'J')} per inference"
                     + (f", net {si(net, 'J')} above idle" if net is not None else ""))
    return lines
