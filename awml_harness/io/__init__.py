"""Readers shared by projects (safe pickles, point files, images through OpenCV)."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file that cannot be read as what it should be. The message starts with
    the file's path and says what was expected, so the CI log names the culprit; the
    suites report it as one failure block instead of a traceback through the loader."""
