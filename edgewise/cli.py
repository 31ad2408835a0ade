"""The `edgewise` command: a thin typer layer over the Python API."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgewise import __version__
from edgewise.console import console
from edgewise.errors import EdgewiseError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Compress networks with explainability, export them for edge hardware, measure the cost.")
zoo_app = typer.Typer(no_args_is_help=True, help="The zoo of reference architectures, models and data.")
recipe_app = typer.Typer(no_args_is_help=True, help="Recipes: show and check them.")
app.add_typer(zoo_app, name="zoo")
app.add_typer(recipe_app, name="recipe")


def _version(value: bool) -> None:
    if value:
        print(f"edgewise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Edgewise: compressed networks on edge hardware, and what they cost there."""


@app.command()
def run(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML; the embedded default when omitted.")] = None,
    out: Annotated[Path, typer.Option(help="Parent directory of run directories.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the recipe's name).")] = None,
) -> None:
    """Run a recipe: build or load each model, run its stages, write the run directory and the report."""
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import load_recipe

    result = run_recipe(load_recipe(recipe), out=out, name=name)
    console.print(f"run directory: {result.root}")
    for kind in ("html", "markdown"):
        if kind in result.reports:
            console.print(f"report ({kind}): {result.reports[kind]}")


@app.command()
def prune(
    model: Annotated[str, typer.Argument(help="Zoo reference (e.g. digits-cnn) or a model .pt file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the pruned model (.pt).")],
    criterion: Annotated[str, typer.Option(help="lrp, gradient, taylor, l1, l2, hrank, apoz, activation, random.")]
    = "lrp",
    rate: Annotated[float, typer.Option(help="Fraction of prunable channels to remove, in [0, 1).")] = 0.5,
    schedule: Annotated[str, typer.Option(help="oneshot, iterative or adaptive.")] = "oneshot",
    scope: Annotated[str, typer.Option(help="global or layer ranking.")] = "global",
    data: Annotated[str | None, typer.Option(help="digits, rail, a .npz or an image folder (default: the model's).")]
    = None,
    classes: Annotated[list[str] | None, typer.Option("--class", help="Restrict scores to a class (repeatable).")]
    = None,
    samples: Annotated[int, typer.Option(help="Reference samples per class.")] = 10,
) -> None:
    """Prune a model's channels (physically removed) and print the per-layer report."""
    from pydantic import ValidationError

    from edgewise.commands import prune_file
    from edgewise.errors import UserError
    from edgewise.recipe import PruneConfig

    try:
        config = PruneConfig(criterion=criterion, rate=rate, schedule=schedule, scope=scope,
                             samples_per_class=samples)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(f"--{error['loc'][0]}: {error['msg']} (given {error.get('input')!r})") from None
    result = prune_file(model, out, config, data, classes)
    table = Table(title=f"{result.criterion}, {result.schedule}", title_justify="left")
    for column in ("layer", "channels", "pruned", "parameters", "MACs"):
        table.add_column(column)
    for r in result.layers:
        table.add_row(r["layer"], f"{r['channels_before']} -> {r['channels_after']}", f"{r['rate']:.0%}",
                      f"{r['params_before']:,} -> {r['params_after']:,}",
                      f"{r['macs_before']:,} -> {r['macs_after']:,}")
    console.print(table)
    console.print(f"parameters {result.before.params:,} -> {result.after.params:,}, "
                  f"MACs {result.before.macs:,} -> {result.after.macs:,}; written to {out}")


@recipe_app.command("show")
def recipe_show() -> None:
    """Print the embedded default recipe (a starting point for your own)."""
    print(resources.files("edgewise.recipes").joinpath("default.yaml").read_text(encoding="utf-8"), end="")


@recipe_app.command("check")
def recipe_check(recipe: Annotated[Path, typer.Argument(help="Recipe YAML to validate.")]) -> None:
    """Validate a recipe without running it."""
    from edgewise.recipe import load_recipe

    parsed = load_recipe(recipe)
    console.print(f"{recipe}: valid, {len(parsed.models)} model(s): {', '.join(m.name for m in parsed.models)}")


@zoo_app.command("list")
def zoo_list() -> None:
    """List the zoo's architectures, data sources and reference models."""
    from edgewise.zoo import catalogue

    for title, columns, rows in catalogue():
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)


def main() -> None:
    """Entry point: run the app; a kit error prints one or two lines and exits 2 (user) or 1 (internal)."""
    try:
        app()
    except EdgewiseError as exc:
        console.print(f"[bold red]error:[/bold red] {exc.problem}", soft_wrap=True)
        if exc.fix:
            console.print(f"  fix: {exc.fix}", soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print("interrupted; finished stages are kept in the run directory")
        raise SystemExit(130) from None
