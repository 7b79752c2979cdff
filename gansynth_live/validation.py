"""Argument checks shared by every input: command-line flags, OSC, MIDI and the engine.

Each check returns the value in its Python type or raises ValueError naming the
argument, the allowed range and what it got, so that a flag, an OSC message and a
Python call refuse the same value with the same words. The ranges that several inputs
share live here too.

Integers are taken exactly (an OSC int64 seed of 2**63 - 1 stays that number); an
integral float is an integer too, because Pd sends every number as a float.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable

MIDI_NOTE = (0, 127)
VELOCITY = (0, 127)
MIDI_CHANNEL = (1, 16)
MIDI_CC = (0, 127)
ANCHOR = (0, 3)
MAX_SEED = 2**63 - 1  # numpy's default_rng takes any non-negative int; keep it in int64
UDP_PORT = (1, 65535)
MAX_BEND_RANGE = 96.0  # semitones: 8 octaves, as far as resampling a note makes sense
MAX_DURATION = 3600.0  # seconds of a /note


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"in {low:g}..{high:g}" if isinstance(low, float) else f"in {low}..{high}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           above: float | None = None, unit: str = "") -> float:
    """A finite number within [low, high] (and > `above`), as a float; `unit` ("seconds")
    ends the range in the error message."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r:.80}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got {value}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    if above is not None and not result > above:
        bound = f"{above:g}" + ("" if high is None else f" and at most {high:g}")
        raise ValueError(f"{name} must be above {bound}, got {result:g}")
    if (low is not None and result < low) or (high is not None and result > high):
        raise ValueError(f"{name} must be {_range(low, high)}{' ' + unit if unit else ''}, "
                         f"got {result:g}")
    return result


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """A whole number within [low, high], exactly (ints are never rounded through float)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got bool {value!r}")
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        result = int(value)
    else:
        number(name, value)  # the type and finiteness errors
        if float(value) != math.floor(float(value)):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        result = int(float(value))
    if (low is not None and result < low) or (high is not None and result > high):
        raise ValueError(f"{name} must be {_range(low, high)}, got {result}")
    return result


def distinct_ccs(ccs: dict[str, Any]) -> None:
    """ValueError naming both owners when one MIDI CC number drives two controls; `ccs`
    maps each control (a flag's name) to its CC number or a sequence of them."""
    owners: dict[int, str] = {}
    for name, numbers in ccs.items():
        for cc in (numbers if isinstance(numbers, (list, tuple)) else [numbers]):
            if cc in owners:
                same = owners[cc] == name
                raise ValueError(f"{name} names CC {cc} twice" if same else
                                 f"{owners[cc]} and {name} both use CC {cc}")
            owners[cc] = name


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r:.80}")
    return value


def flag(check: Callable[..., Any], parse: Callable[[str], Any] = float,
         **limits: Any) -> Callable[[str], Any]:
    """An argparse `type` that parses a flag's text with `parse` and applies `check`
    (argparse then names the flag: "argument --grid: must be at least 2, got 1")."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check("", value, **limits)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
    return convert


__all__ = ["ANCHOR", "MAX_BEND_RANGE", "MAX_DURATION", "MAX_SEED", "MIDI_CC", "MIDI_CHANNEL",
           "MIDI_NOTE", "UDP_PORT", "VELOCITY", "distinct_ccs", "flag", "integer", "number",
           "one_of"]
