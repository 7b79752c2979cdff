"""The timbre pad: four anchor latents, a position in their square, and the grid of cached points.

The performer moves a point (x, y) in the unit square whose corners are four anchor
latent vectors (corner order of `latent.bilinear_slerp`: 0 = (0, 0), 1 = (1, 0),
2 = (0, 1), 3 = (1, 1)). Notes are rendered at the points of a `resolution` x
`resolution` grid over the square (9 x 9 like NSynth Super), never between them, so a
finite set of renders covers the pad and can be cached: the position snaps to the
nearest grid point.

A model with GANSpace directions (`gansynth_live.ganspace`) adds coefficients that edit
the position's latent along them. They snap too, to multiples of `ganspace.SNAP_STEP`,
so a coefficient point is cached like a grid point: it is part of the `GridPoint`.

`TimbreState` is plain data changed by the control thread under the engine's lock.
Each change of an anchor bumps `generation`, which is part of every cache key, so notes
rendered for old anchors are never mistaken for the new timbre.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from gansynth_live import ganspace
from gansynth_live.latent import bilinear_slerp, seeded_z
from gansynth_live.validation import ANCHOR, MAX_SEED, integer, number

# Coefficient neighbours are planned along the first few directions only: the ones a
# panel's sliders (pd/ganspace.pd) and MIDI CCs usually drive. Each one adds two points.
PLANNED_COMPONENTS = 4
NO_GANSPACE = ("this model has no GANSpace directions (gansynth-ganspace --model DIR "
               "computes them)")


class GridPoint(NamedTuple):
    """A cached interpolation point: grid column i (x), row j (y), for anchors `generation`,
    edited by the snapped GANSpace coefficients `pca` (`ganspace.snap`; () = no edit).

    A NamedTuple, so hashing a cache key happens in C: the render worker hashes thousands
    of them while it holds the GIL that the audio callback needs."""
    generation: int
    i: int
    j: int
    pca: tuple[float, ...] = ()


def distance(a: GridPoint, b: GridPoint) -> float:
    """How far apart two points of the same anchors are, in steps: grid steps and
    coefficient snap steps alike (a slider's step weighs as much as a grid step)."""
    width = max(len(a.pca), len(b.pca))
    ca, cb = (p.pca + (0.0,) * (width - len(p.pca)) for p in (a, b))
    return math.hypot(a.i - b.i, a.j - b.j,
                      *((u - v) / ganspace.SNAP_STEP for u, v in zip(ca, cb)))


class TimbreState:
    """Anchors, position and grid. Not thread-safe: the engine guards it with its lock."""

    def __init__(self, latent_size: int, resolution: int = 9,
                 seeds: Sequence[int] = (0, 1, 2, 3), ganspace_components: int = 0):
        """`ganspace_components`: the model's GANSpace directions (0: it has none)."""
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
        self.ganspace_components = int(ganspace_components)
        # The coefficients as set (not snapped), trailing zeros dropped: () is no edit.
        self.coefficients: tuple[float, ...] = ()

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

    def set_pca(self, values: Sequence) -> None:
        """Set the whole coefficient vector: c1..ck, the directions after k at 0; no
        values reset it (ganspace.check_coefficients' words when one is refused)."""
        if not self.ganspace_components:
            raise ValueError(NO_GANSPACE)
        if len(values):
            ganspace.check_coefficients(values, self.ganspace_components)
        # Kept as given (float64), not as the check's float32: /render uses them exactly.
        self.coefficients = _trimmed(float(c) for c in values)

    def set_pca_component(self, direction: int, value: float) -> None:
        """Set the coefficient of direction `direction` (1 = the first) alone."""
        if not self.ganspace_components:
            raise ValueError(NO_GANSPACE)
        direction = integer("ganspace direction", direction, 1, self.ganspace_components)
        values = list(self.coefficients) + [0.0] * (direction - len(self.coefficients))
        values[direction - 1] = value
        self.set_pca(values)

    # The grid --------------------------------------------------------------------------

    def current_point(self) -> GridPoint:
        """The grid point nearest to the position, with the snapped coefficients."""
        last = self.resolution - 1
        return GridPoint(self.generation, round(self.x * last), round(self.y * last),
                         ganspace.snap(self.coefficients))

    def latent(self, point: GridPoint) -> np.ndarray:
        """The latent vector (float32) of `point` (for the current anchors)."""
        last = self.resolution - 1
        return bilinear_slerp(self.anchors, point.i / last, point.j / last).astype(np.float32)

    def latent_at_position(self) -> np.ndarray:
        """The latent vector of the exact position (not snapped; for /render)."""
        return bilinear_slerp(self.anchors, self.x, self.y).astype(np.float32)

    def neighbours(self, point: GridPoint) -> Iterator[GridPoint]:
        """Other points, nearest to the exact position first, ring after ring: the other
        grid points at `point`'s coefficients, and in the first ring also the coefficient
        points one snap step away along the first `PLANNED_COMPONENTS` directions at
        `point`'s grid position (where a slider goes next)."""
        last = self.resolution - 1
        # The exact position as a point (fractional i and j, unsnapped coefficients).
        exact = GridPoint(point.generation, self.x * last, self.y * last, self.coefficients)
        others = [GridPoint(point.generation, i, j, point.pca)
                  for i in range(self.resolution) for j in range(self.resolution)
                  if (i, j) != (point.i, point.j)]
        rings = {p: max(abs(p.i - point.i), abs(p.j - point.j)) for p in others}
        planned = min(PLANNED_COMPONENTS, self.ganspace_components)
        for pca in ganspace.snap_neighbours(point.pca, planned):
            rings[point._replace(pca=pca)] = 1
        yield from sorted(rings, key=lambda p: (rings[p], distance(p, exact)))


def check_anchor(anchor) -> int:
    return integer("anchor", anchor, *ANCHOR)


def check_unit(name: str, value) -> float:
    return number(name, value, 0.0, 1.0)


def _trimmed(values) -> tuple[float, ...]:
    """`values` as a tuple without trailing zeros: (1.0, 0.0) and (1.0,) are one edit."""
    point = [v + 0.0 for v in values]  # + 0.0: no -0.0
    while point and point[-1] == 0.0:
        point.pop()
    return tuple(point)


__all__ = ["GridPoint", "NO_GANSPACE", "PLANNED_COMPONENTS", "TimbreState", "check_anchor",
           "check_unit", "distance"]
