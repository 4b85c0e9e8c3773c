"""Progress bars (tqdm) for the long waits a person watches: export steps, bundle uploads.

A bar is drawn only when its stream is a terminal (tqdm's ``disable=None``), so CI logs,
pipes and tests see exactly the lines they saw before and no carriage-return debris.
Messages printed while a bar is shown go above it instead of through it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm


def bar(total: float | None, desc: str, file: TextIO | None = None, **options: Any) -> tqdm:
    """A tqdm bar on ``file`` (stderr by default), silent unless that is a terminal."""
    stream = sys.stderr if file is None else file
    return tqdm(total=total, desc=desc, file=stream, disable=None, dynamic_ncols=True, **options)


class StepBar:
    """A bar over a known number of steps; :meth:`say` wraps a line printer so its lines
    appear above the bar (and plainly when there is no bar)."""

    def __init__(self, total: int, desc: str, file: TextIO | None = None) -> None:
        self.file = sys.stderr if file is None else file
        self.bar = bar(total, desc, self.file, unit="step", leave=False)

    def say(self, printer: Callable[[str], None]) -> Callable[[str], None]:
        def printed_above(message: str) -> None:
            with tqdm.external_write_mode(file=self.file):
                printer(message)

        return printed_above

    def advance(self, steps: int = 1, what: str | None = None) -> None:
        if what is not None:
            self.bar.set_postfix_str(what, refresh=False)
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
