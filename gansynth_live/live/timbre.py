"""The timbre pad: four anchor latents, a position in their square, and the grid of cached points.

The performer moves a point (x, y) in the unit square whose corners are four anchor
latent vectors (corner order of `latent.bilinear_slerp`: 0 = (0, 0), 1 = (1, 0),
2 = (0, 1), 3 = (1, 1)). Notes are rendered at the points of a `resolution` x
`resolution` grid over the square (9 x 9 like NSynth Super), never between them, so a
finite set of renders covers the pad and can be cached: the position snaps to the
nearest grid point.

`TimbreState` is plain data changed by the control thread under the engine's lock.
Each change of an anchor bumps `generation`, which is part of every cache key, so notes
rendered for old anchors are never mistaken for the new timbre.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from gansynth_live.latent import bilinear_slerp, seeded_z
from gansynth_live.validation import ANCHOR, MAX_SEED, integer, number


class GridPoint(NamedTuple):
    """A cached interpolation point: grid column i (x), row j (y), for anchors `generation`.

    A NamedTuple, so hashing a cache key happens in C: the render worker hashes thousands
    of them while it holds the GIL that the audio callback needs."""
    generation: int
    i: int
    j: int


class TimbreState:
    """Anchors, position and grid. Not thread-safe: the engine guards it with its lock."""

    def __init__(self, latent_size: int, resolution: int = 9,
                 seeds: Sequence[int] = (0, 1, 2, 3)):
        if int(resolution) < 2:
            raise ValueError(f"grid resolution must be at least 2, got {resolution}")
        if len(seeds) != 4:
            raise ValueError(f"need 4 anchor seeds, got {len(seeds)}")
        self.latent_size = int(latent_size)
        self.resolution = int(resolution)
        self.anchors = np.stack([seeded_z(int(s), self.latent_size) for s in seeds])
        self.anchor_sources: list[str] = [f"seed {int(s)}" for s in seeds]
        self.x = 0.0
        self.y = 0.0
        self.generation = 0

    # Changes (each validated; ValueError names the argument) ------------------------------

    def set_seed(self, anchor: int, seed: int) -> None:
        anchor = check_anchor(anchor)
        seed = integer("seed", seed, 0, MAX_SEED)
        self._set_anchor(anchor, seeded_z(seed, self.latent_size), f"seed {seed}")

    def set_z(self, anchor: int, z: Sequence[float]) -> None:
        anchor = check_anchor(anchor)
        z = np.asarray(z, np.float32)
        if z.shape != (self.latent_size,):
            raise ValueError(f"z for anchor {anchor} needs {self.latent_size} numbers, "
                             f"got {z.size}")
        if not np.all(np.isfinite(z)):
            raise ValueError("z contains NaN or infinite values")
        self._set_anchor(anchor, z, "z")

    def _set_anchor(self, anchor: int, z: np.ndarray, source: str) -> None:
        if np.array_equal(self.anchors[anchor], z):
            return  # same timbre: keep the cache
        anchors = self.anchors.copy()  # a new array: a worker may still read the old one
        anchors[anchor] = z
        self.anchors = anchors
        self.anchor_sources[anchor] = source
        self.generation += 1

    def set_xy(self, x: float | None, y: float | None) -> None:
        """Move the position; None leaves that coordinate as it is."""
        new_x = self.x if x is None else check_unit("x", x)
        new_y = self.y if y is None else check_unit("y", y)
        self.x, self.y = new_x, new_y

    # The grid --------------------------------------------------------------------------

    def current_point(self) -> GridPoint:
        """The grid point nearest to the position."""
        last = self.resolution - 1
        return GridPoint(self.generation, round(self.x * last), round(self.y * last))

    def latent(self, point: GridPoint) -> np.ndarray:
        """The latent vector (float32) of `point` (for the current anchors)."""
        last = self.resolution - 1
        return bilinear_slerp(self.anchors, point.i / last, point.j / last).astype(np.float32)

    def latent_at_position(self) -> np.ndarray:
        """The latent vector of the exact position (not snapped; for /render)."""
        return bilinear_slerp(self.anchors, self.x, self.y).astype(np.float32)

    def neighbours(self, point: GridPoint) -> Iterator[GridPoint]:
        """Other grid points, nearest to the exact position first (ring after ring)."""
        last = self.resolution - 1
        others = [(i, j) for i in range(self.resolution) for j in range(self.resolution)
                  if (i, j) != (point.i, point.j)]
        fx, fy = self.x * last, self.y * last
        others.sort(key=lambda ij: (max(abs(ij[0] - point.i), abs(ij[1] - point.j)),
                                    math.hypot(ij[0] - fx, ij[1] - fy)))
        for i, j in others:
            yield GridPoint(point.generation, i, j)


def check_anchor(anchor) -> int:
    return integer("anchor", anchor, *ANCHOR)


def check_unit(name: str, value) -> float:
    return number(name, value, 0.0, 1.0)


__all__ = ["GridPoint", "TimbreState", "check_anchor", "check_unit"]
