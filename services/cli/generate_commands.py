"""``sharehub generate``: synthetic datasets as JSON Lines, ready for ``sharehub publish``.

Every entry of ``GENERATORS`` becomes one sub-command with the same options, so adding a dataset is one
line here plus its generator in ``tooling.synthetic``. ``--changes`` interleaves later states of
earlier records (transfers, progress reports, handling steps); its default is the dataset's own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

#: ``generator(count, seed, changes=rate)``: deterministic for its arguments, lazy, checking them on the call.
Generator = Callable[..., Iterator[dict[str, Any]]]

#: Dataset id (the name of its schema in ``schemas/``) -> the name of its generator in ``tooling.synthetic``
#: and its default change rate. By name: the generators (and faker, half a second) are imported only by
#: ``sharehub generate`` itself, not by every other command of the command line.
GENERATORS: dict[str, tuple[str, float]] = {
    "party-members": ("generate_party_members", 0.0),
    "documents": ("generate_documents", 0.0),
    "resolution-tasks": ("generate_resolution_tasks", 3.0),  # the monitoring system is about progress reports
    "handbook-activities": ("generate_handbook_activities", 0.0),
    "handbook-attendance": ("generate_handbook_attendance", 0.0),
    "citizen-feedback": ("generate_citizen_feedback", 0.0),
}


def generator_of(dataset: str) -> Generator:
    """The generator of ``dataset`` (one of :data:`GENERATORS`)."""
    import tooling.synthetic

    generator: Generator = getattr(tooling.synthetic, GENERATORS[dataset][0])
    return generator


class _DatasetGroup(TyperGroup):
    """Answers an unknown dataset with the list of known ones (click alone says "No such command")."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and args[0] not in GENERATORS:
            known = ", ".join(sorted(GENERATORS))
            raise typer.BadParameter(
                f"unknown dataset {args[0]!r}; known datasets: {known}", ctx=ctx, param_hint="'DATASET'"
            )
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_DatasetGroup,
    no_args_is_help=True,
    subcommand_metavar="DATASET [OPTIONS]",
    help="Generate a synthetic dataset as JSON Lines (deterministic for a seed), for `sharehub publish`.",
)


def _register(dataset: str, default_changes: float) -> None:
    def command(
        count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of records.")],
        seed: Annotated[int, typer.Option("--seed", "-s", help="Same seed, same records.")] = 0,
        changes: Annotated[
            float,
            typer.Option(
                "--changes",
                min=0.0,
                help="Later events per record on average: full records of earlier keys in a later state.",
            ),
        ] = default_changes,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", dir_okay=False, help="JSON Lines file to write; stdout if omitted."
            ),
        ] = None,
    ) -> None:
        if output is not None and not output.parent.is_dir():
            raise typer.BadParameter(f"directory {output.parent} does not exist", param_hint="'--output'")
        from tooling.synthetic import write_jsonl

        try:
            records = generator_of(dataset)(count, seed, changes=changes)
        except ValueError as exc:  # arguments the generator itself rejects, e.g. ids out of range
            raise typer.BadParameter(str(exc)) from None
        try:
            written = write_jsonl(records, output)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush of stdout
            # from failing on the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except OSError as exc:
            typer.echo(f"Error: cannot write {output or 'stdout'}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
        if output is not None:
            typer.echo(f"wrote {written:,} {dataset} records to {output}", err=True)

    app.command(dataset, help=f"Write COUNT synthetic {dataset} records as JSON Lines.")(command)


for _dataset, (_, _changes) in GENERATORS.items():
    _register(_dataset, _changes)
