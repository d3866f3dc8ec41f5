"""Argument types shared by the command line and the pytest plugin: each parses one option's
text, or raises argparse.ArgumentTypeError saying what was expected and what was found."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _parsed(text: str, convert: Callable[[str], T], valid: Callable[[T], bool], expected: str) -> T:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text}")
    return value


def positive_int(text: str) -> int:
    return _parsed(text, int, lambda v: v >= 1, "a positive integer")


def seed(text: str) -> int:
    return _parsed(text, int, lambda v: v >= 0, "an integer seed >= 0")


def tolerance(text: str) -> float:
    return _parsed(text, float, lambda v: 0 <= v < float("inf"), "a finite number >= 0")
