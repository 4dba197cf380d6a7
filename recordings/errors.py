"""Exceptions raised by the recording package."""

from __future__ import annotations


class RecordingError(Exception):
    """Base class for every error the recording package raises on purpose."""


class RecordingFormatError(RecordingError):
    """A file is not a hoop recording, or its bytes do not follow the format."""


class RecordingClosedError(RecordingError):
    """An event was appended to a writer that is closing or closed."""
