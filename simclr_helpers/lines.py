"""The package's lines (data loaded, an epoch's loss, a run trained on demand) and where they show.

Every module that says something logs through ``logging.getLogger(__name__)``, a child of the
``simclr_helpers`` logger, instead of printing. Nothing shows until ``show_lines`` is called: the
notebooks' ``setup`` shows the lines on stdout, where ``print`` writes, and the command line on
stderr, so that its stdout holds only the result. ``quiet`` silences them for a block.

A leaf module without torch, so that the command line imports it before it knows the command.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = "simclr_helpers"


class _CurrentStream(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as they are when a line is written, not when the handler was
    made: pytest's capture and a notebook's running cell replace them."""

    def __init__(self, which: str):
        self.which = which
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property above decides
        pass


def show_lines(stream: str | None = "stdout") -> str | None:
    """Show the package's lines as they are (no level, no logger name) on ``sys.stdout`` or ``sys.stderr``;
    ``None`` shows them no more. Called again, it replaces its handler, never adds a second. Returns the stream
    the lines went to before (None: nowhere)."""
    logger = logging.getLogger(LOGGER)
    before = None
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStream)]:
        before = handler.which
        logger.removeHandler(handler)
    if stream is not None:
        handler = _CurrentStream(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if stream is not None else logging.NOTSET)
    return before


@contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """The package's lines silenced inside the block (if ``on``)."""
    logger = logging.getLogger(LOGGER)
    level = logger.level
    if on:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
