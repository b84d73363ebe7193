"""What `mnist-dnn repro` shows while it runs: on a terminal, a rich progress bar per running stage (its epoch and
a time estimate) under one for the whole run; elsewhere (a CI log, a pipe), plain lines."""

import re

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

EPOCH_LINE = re.compile(r"^epoch\s+(\d+):")  # what lecture.training prints after each epoch


class StageProgress:
    """The ``stages`` of one run as they start, print epoch lines and end (``epochs``: each training stage's total),
    as bars on ``console`` where it is a terminal, else as lines on stdout."""

    def __init__(self, stages, epochs, console=None):
        self.epochs = epochs
        console = console or Console()
        self.live = console.is_terminal
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                                 disable=not self.live)
        self.run = self.progress.add_task("all stages", total=stages)
        self.bars = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def started(self, name):
        """Stage ``name`` is submitted."""
        self.bars[name] = self.progress.add_task(name, total=None)

    def line(self, name, text):
        """Stage ``name`` printed ``text``: an epoch line moves its bar (or is printed, with no terminal)."""
        epoch = EPOCH_LINE.match(text)
        if not epoch:
            return
        if self.live:
            self.progress.update(self.bars[name], completed=int(epoch[1]), total=self.epochs)
        else:
            print(f"{name}: {text}", flush=True)

    def ended(self, name, summary):
        """Stage ``name`` ended as ``summary`` says: a line above the bars."""
        self.progress.remove_task(self.bars.pop(name))
        self.progress.advance(self.run)
        self.say(summary)

    def say(self, text):
        """A line of the run's own, above the bars on a terminal."""
        if self.live:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)
