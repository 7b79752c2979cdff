"""A timbre path for `gansynth-generate`: GANSpace coefficient points at times through a
piece, and each note's coefficients read off it at the note's start.

Between two points the coefficients are interpolated linearly (they are coordinates
along fixed PCA directions of one layer: the straight line between two points is the
natural path); before the first point and after the last the path stays where it is.
A constant (`--ganspace c1,c2,...`) is a path of one point. See docs/gansynth-generate.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gansynth_live import ganspace, validation

MAX_SECONDS = 3600.0  # a point's time: as long as gansynth-generate's longest piece


def parse_coefficients(text: str, num_components: int = ganspace.MAX_COMPONENTS
                       ) -> np.ndarray:
    """float32 [k']: "c1,c2,..." checked with `ganspace.check_coefficients`' words
    (each a number in ganspace.COEFFICIENT_RANGE, 1..num_components of them)."""
    if not text.strip():
        raise ValueError("give 1 or more ganspace coefficients, got none")
    values = []
    for i, word in enumerate(text.split(",")):
        try:
            values.append(float(word) + 0.0)  # + 0.0: "-0" is 0
        except ValueError:
            raise ValueError(f"ganspace coefficient {i + 1} must be a number, "
                             f"got {word.strip()!r}") from None
    return ganspace.check_coefficients(values, num_components)


def parse_point(text: str) -> tuple[float, np.ndarray]:
    """(seconds, coefficients) of "TIME:c1,c2,...", e.g. "12.5:1,-0.5"."""
    time, sep, coefficients = text.partition(":")
    if not sep:
        raise ValueError(f"must be TIME:c1,c2,... (seconds, then coefficients), got {text!r}")
    try:
        seconds = float(time)
    except ValueError:
        raise ValueError(f"the time must be a number of seconds, got {time.strip()!r}") from None
    seconds = validation.number("the time", seconds, 0.0, MAX_SECONDS, unit="seconds")
    return seconds, parse_coefficients(coefficients)


@dataclass(frozen=True)
class TimbrePath:
    """Coefficient points at increasing times.

    Attributes:
        times: (K,) float64 seconds, strictly increasing, K >= 1.
        points: (K, k) float32 coefficients; a point given with fewer than k has zeros
            for the rest (as `model.generate` pads them).
    """

    times: np.ndarray
    points: np.ndarray

    @classmethod
    def from_points(cls, points: Sequence[tuple[float, Sequence[float]]]) -> TimbrePath:
        """The path through (seconds, coefficients) pairs, in any order; ValueError for
        two points at one time."""
        ordered = sorted(points, key=lambda point: point[0])
        times = np.array([t for t, _ in ordered], np.float64)
        for a, b in zip(times, times[1:]):
            if a == b:
                raise ValueError(f"two points at {a:g} s; for a sudden change put two points "
                                 f"close together (e.g. at {a:g} and {a + 0.01:g})")
        width = max((len(c) for _, c in ordered), default=0)
        padded = np.zeros((len(ordered), width), np.float32)
        for row, (_, c) in zip(padded, ordered):
            row[:len(c)] = c
        return cls(times, padded)

    def __post_init__(self) -> None:
        times, points = self.times, self.points
        if times.ndim != 1 or len(times) == 0 or points.shape[:1] != times.shape \
                or points.ndim != 2 or points.shape[1] == 0:
            raise ValueError(f"need K >= 1 times and (K, k >= 1) coefficient points, got "
                             f"{times.shape} and {points.shape}")
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(points))):
            raise ValueError("times and coefficient points must be finite")
        if np.any(np.diff(times) <= 0):
            raise ValueError("times must be strictly increasing")

    def at(self, starts: Sequence[float]) -> np.ndarray:
        """float32 (N, k): the coefficients at each of `starts` (seconds)."""
        starts = np.asarray(starts, np.float64).reshape(-1)
        points = self.points.astype(np.float64)
        if len(self.times) == 1:
            return np.repeat(self.points, len(starts), axis=0)
        k = np.clip(np.searchsorted(self.times, starts, side="right") - 1, 0,
                    len(self.times) - 2)
        frac = np.clip((starts - self.times[k]) / (self.times[k + 1] - self.times[k]),
                       0.0, 1.0)[:, np.newaxis]
        return ((1.0 - frac) * points[k] + frac * points[k + 1]).astype(np.float32)
