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
    for kind, path in result.reports.items():
        console.print(f"report ({kind}): {path}")


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
