"""The run report: one table row per model and stage, plots, and the environment, as HTML and Markdown."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from bench.plots import score_vs_size
from bench.units import binary_bytes, si
from edgewise.atomic import write_text

COLUMNS = ("model", "stage", "metric", "score", "parameters", "MACs / sample", "size on disk")


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["model"], row["stage"], row["score_name"], f"{row['score']:.4f}", si(row["params"]),
            si(row["macs"]), binary_bytes(row["size_bytes"]))


def _environment_lines(manifest: dict[str, Any]) -> list[str]:
    env = manifest.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    return [
        f"machine: {env.get('cpu')} ({env.get('logical_cpus')} logical CPUs, "
        f"{binary_bytes(env.get('memory_bytes'))} memory), {env.get('platform')}",
        f"python {env.get('python')}; {versions}",
    ]


def render_markdown(rows: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    """The report as Markdown: the results table and the environment."""
    lines = [f"# Edgewise report: {manifest['run']}", "", f"Run at {manifest['updated']}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    lines += ["", "Scores are on each data set's held-out test split. Sizes are the saved model files.", "",
              "## Environment", ""]
    lines += [f"- {line}" for line in _environment_lines(manifest)]
    return "\n".join(lines) + "\n"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:62rem;color:#1d2330}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;font-size:.92rem}th,td{padding:.35rem .7rem;border-bottom:1px solid #e4e6ee}
th{text-align:left;background:#f4f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}.note{color:#5b6275;font-size:.85rem}
"""


def render_html(rows: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: the results table, an embedded plot, the environment."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i >= 3 else ""}">{esc(c)}</td>' for i, c in enumerate(_cells(r)))
        + "</tr>" for r in rows
    )
    plot = base64.b64encode(score_vs_size(rows)).decode("ascii") if rows else ""
    env = "".join(f"<li>{esc(line)}</li>" for line in _environment_lines(manifest))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Edgewise report: {esc(manifest['run'])}</title>
<style>{_STYLE}</style></head><body>
<h1>Edgewise report: {esc(manifest['run'])}</h1>
<p class="note">Run at {esc(manifest['updated'])}. Scores are on each data set's held-out test split;
sizes are the saved model files.</p>
<h2>Results</h2>
<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Score against size</h2>
{f'<img alt="score against size on disk" src="data:image/png;base64,{plot}">' if plot else ''}
<h2>Environment</h2><ul>{env}</ul>
</body></html>
"""


def write_report(root: Path, rows: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Path]:
    """Write report.html and report.md into `root` atomically and return their paths."""
    return {
        "html": write_text(root / "report.html", render_html(rows, manifest)),
        "markdown": write_text(root / "report.md", render_markdown(rows, manifest)),
    }
