"""The two exceptions users see: a wrong call, and a wrong gradient."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class InvalidArgument(ValueError):
    """A call the checker cannot honour. The message names the argument, what was expected,
    what was found, and how to fix it."""


class GradientMismatch(AssertionError):
    """A gradient disagrees with the oracles. The message is the per-layer table; the full
    report is attached as `.report`."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


def parse_enum(enum: type[E], value: object, argument: str) -> E:
    """`value` as a member of `enum`; InvalidArgument naming `argument` otherwise."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise InvalidArgument(f"{argument}={value!r} is not a valid choice; use one of {choices}") from None
