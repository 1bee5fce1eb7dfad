"""What the user sees on stderr: log lines, progress bars, the summary table.

stdout is reserved for result paths (so scripts can capture them); everything here goes to stderr.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class StageRow:
    stage: str
    status: str  # "ran", "cached", "resumed"
    seconds: float
    output: str
    detail: str = ""


@dataclass
class Reporter:
    verbose: bool = False
    quiet: bool = False
    rows: list[StageRow] = field(default_factory=list)
    _console: object = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def info(self, msg: str) -> None:
        if not self.quiet:
            self.console.print(msg)

    def warn(self, msg: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {msg}")

    def debug(self, msg: str) -> None:
        if self.verbose:
            self.console.print(f"[dim]{msg}[/dim]")

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator:
        """Yields advance(n): a rich bar on stderr (hidden with --quiet)."""
        if self.quiet or not self.console.is_terminal:  # no bar redraws into logs and pipes
            yield lambda n=1: None
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                        transient=True)
        with prog:
            task = prog.add_task(label, total=total)
            yield lambda n=1: prog.advance(task, n)

    def add(self, row: StageRow) -> None:
        """One row per stage: a stage consulted again (as another stage's input) adds nothing."""
        for i, r in enumerate(self.rows):
            if r.stage == row.stage:
                if r.status == "cached" and row.status != "cached":
                    self.rows[i] = row
                return
        self.rows.append(row)

    def summary(self) -> None:
        if self.quiet or not self.rows:
            return
        from rich.table import Table

        table = Table(title=None, show_edge=False, header_style="bold")
        for col in ("stage", "status", "time", "output"):
            table.add_column(col)
        for r in self.rows:
            colour = {"ran": "green", "cached": "cyan", "resumed": "magenta"}.get(r.status, "white")
            table.add_row(r.stage, f"[{colour}]{r.status}[/{colour}]" + (f" ({r.detail})" if r.detail else ""),
                          f"{r.seconds:.1f}s", r.output)
        self.console.print(table)


class NativeStderrSilenced:
    """Send what native libraries write to fd 2 (mediapipe/TFLite banners and warnings) to
    /dev/null, while Python's own stderr (our progress, logs, errors) keeps the real stream.
    Not under --verbose, where everything stays visible."""

    def __enter__(self):
        import os

        sys.stderr.flush()
        self.saved_fd = os.dup(2)
        self.saved_stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(self.saved_fd), "w", buffering=1, encoding="utf-8",
                               errors="replace")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return self

    def __exit__(self, *exc):
        # fd 2 stays on /dev/null: mediapipe's threads still log while the process exits
        sys.stderr.flush()
        return False


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
