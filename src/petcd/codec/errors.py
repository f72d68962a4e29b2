"""The one error the codec layer raises."""

from __future__ import annotations


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the value asked for (truncated, corrupt, or foreign)."""
