"""One error type for everything a user can get wrong, so the CLI can print one clear line.

Readers, datasets and commands raise :class:`MedlearnError` naming the offending file and the
problem; the CLI turns it into ``medlearn: error: <file>: <problem>`` and exit status 2, never a
traceback from deep inside a library.
"""

from __future__ import annotations

from pathlib import Path


class MedlearnError(Exception):
    """A problem with the user's input: names the file (if any) and what is wrong with it."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ImageReadError(MedlearnError):
    """A file that cannot be read as a medical image (malformed, truncated, unsupported, too large)."""


class NonFiniteImageError(ImageReadError):
    """An image holding NaN or infinite pixel values, which must not be fed silently to a model."""


class InconsistentDataError(MedlearnError):
    """Images that cannot be used together (e.g. grey images in a colour training set): never skipped, always
    reported, because dropping them silently would change what the model learns."""
