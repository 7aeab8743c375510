"""A progress bar for long inputs (lines published, rate, time left) on stderr: shown on a terminal only,
never with ``--quiet``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class PerSecond(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


#: Told a file's name and its number of lines; returns the callback that hears how many more are done.
Tracker = Callable[[str, int], Callable[[int], None]]


@contextmanager
def line_progress(console: Console, *, quiet: bool, unit: str = "lines") -> Iterator[Tracker | None]:
    """A tracker drawing one bar per file (or topic), or None when nothing is to be drawn."""
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), PerSecond(unit),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:

        def track(name: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(name, total=total)
            return lambda n: progress.advance(task, n)

        yield track
