"""Errors a user can cause. Each carries one sentence that names the problem and the way out.

The command line prints the sentence and exits with status 2 (no traceback);
notebooks show it as the exception message.
"""


class SimclrError(Exception):
    """Base class: a problem with the user's input, explained in one sentence."""


class DataError(SimclrError):
    """A data folder or archive that is missing, empty, unreadable or unreachable."""


class CheckpointError(SimclrError):
    """A checkpoint that is missing, corrupt, or of the wrong kind."""


class ImageError(SimclrError):
    """An image file that cannot be read: ``path`` names it (``<bytes>`` for bytes), ``reason`` is the sentence
    that says why and what to do; the message is both, ``"path: reason"``."""

    def __init__(self, path: str, reason: str):
        super().__init__(str(path), reason)
        self.path, self.reason = str(path), reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class TrainingError(SimclrError):
    """A run that cannot go on as asked: a loss that is no longer finite, a finished run in the way."""
