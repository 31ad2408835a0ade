"""The run report: the results table, sections added by the stages, plots and the environment, as HTML and Markdown."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgewise.base.atomic import write_bytes, write_text
from edgewise.report.plots import score_vs_size
from edgewise.report.section import Section
from edgewise.report.units import binary_bytes, si

COLUMNS = ("model", "stage", "metric", "score", "score in ONNX Runtime", "parameters", "MACs / sample", "model size")


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    shipped = row.get("onnx_score")
    return (row["model"], row["stage"], row["score_name"], f"{row['score']:.4f}",
            "not exported" if shipped is None else f"{shipped:.4f}", si(row["params"]), si(row["macs"]),
            binary_bytes(row["size_bytes"]))


def _environment_lines(manifest: dict[str, Any]) -> list[str]:
    env = manifest.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    return [
        f"machine: {env.get('cpu')} ({env.get('logical_cpus')} logical CPUs, "
        f"{binary_bytes(env.get('memory_bytes'))} memory), {env.get('platform')}",
        f"python {env.get('python')}; {versions}",
    ]


def _markdown_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    header = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return header + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(rows: list[dict[str, Any]], manifest: dict[str, Any], sections: Sequence[Section] = (),
                    image_names: dict[int, str] | None = None) -> str:
    """The report as Markdown: the results table, the stages' sections (with links to their plots), the environment."""
    lines = [f"# Edgewise report: {manifest['run']}", "", f"Run at {manifest['updated']}.", ""]

    def section_lines(lead: bool) -> list[str]:
        out = []
        for i, section in enumerate(sections):
            if section.lead != lead:
                continue
            out += [f"## {section.title}", "", *_markdown_table(section.columns, section.rows), ""]
            if section.note:
                out += [section.note, ""]
            if image_names and i in image_names:
                out += [f"![{section.title}]({image_names[i]})", ""]
        return out

    lines += section_lines(lead=True)
    lines += ["## Results", "", *_markdown_table(COLUMNS, [_cells(r) for r in rows])]
    lines += ["", "Scores are on each data set's held-out test split. Model size: float32 parameters and buffers, "
              "or the packed low-bit weights, or the NNCodec bitstream.", ""]
    lines += section_lines(lead=False)
    lines += ["## Environment", ""]
    lines += [f"- {line}" for line in _environment_lines(manifest)]
    return "\n".join(lines) + "\n"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:66rem;color:#1d2330}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;font-size:.9rem}th,td{padding:.3rem .65rem;border-bottom:1px solid #e4e6ee}
th{text-align:left;background:#f4f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}.note{color:#5b6275;font-size:.85rem}
"""


def _html_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], numeric_from: int, table_id: str = "") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{esc(c)}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows
    )
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(rows: list[dict[str, Any]], manifest: dict[str, Any], sections: Sequence[Section] = ()) -> str:
    """The report as one self-contained HTML page: tables, an embedded plot and the environment."""
    esc = html.escape
    image = score_vs_size(rows) if rows else None
    plot = base64.b64encode(image).decode("ascii") if image else ""
    env = "".join(f"<li>{esc(line)}</li>" for line in _environment_lines(manifest))

    def section_html(lead: bool) -> str:
        return "".join(
            f'<section class="{"lead" if s.lead else "stage"}"><h2>{esc(s.title)}</h2>'
            + _html_table(s.columns, s.rows, 1)
            + (f'<p class="note">{esc(s.note)}</p>' if s.note else "")
            + (f'<img alt="{esc(s.title)}" src="data:image/png;base64,{base64.b64encode(s.image).decode("ascii")}">'
               if s.image else "") + "</section>"
            for s in sections if s.lead == lead
        )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Edgewise report: {esc(manifest['run'])}</title>
<style>{_STYLE}</style></head><body>
<h1>Edgewise report: {esc(manifest['run'])}</h1>
<p class="note">Run at {esc(manifest['updated'])}. Scores are on each data set's held-out test split.
Model size: float32 parameters and buffers, or the packed low-bit weights, or the NNCodec bitstream.</p>
{section_html(lead=True)}
<h2>Results</h2>
{_html_table(COLUMNS, [_cells(r) for r in rows], 3, "results")}
<h2>Score against size</h2>
{f'<img alt="score against size on disk" src="data:image/png;base64,{plot}">' if plot else ''}
{section_html(lead=False)}
<h2>Environment</h2><ul>{env}</ul>
</body></html>
"""


def write_report(root: Path, rows: list[dict[str, Any]], manifest: dict[str, Any],
                 sections: Sequence[Section] = ()) -> dict[str, Path]:
    """Write report.html (self-contained), report.md and the Markdown's plot files into `root`, atomically."""
    paths: dict[str, Path] = {}
    image_names = {}
    for i, section in enumerate(sections):
        if section.image:
            image_names[i] = f"report-plot-{i}.png"
            paths[f"plot-{i}"] = write_bytes(root / image_names[i], section.image)
    paths["html"] = write_text(root / "report.html", render_html(rows, manifest, sections))
    paths["markdown"] = write_text(root / "report.md", render_markdown(rows, manifest, sections, image_names))
    return paths
