"""The render planner: what the render worker renders next, most urgent first.

1. explicit renders (/render), at most `MAX_PENDING_RENDERS` waiting or rendering;
2. pitches just played that missed, at the current grid point;
3. every other pitch of the current grid point, nearest to the last played pitch first;
4. the same for the neighbouring grid points, nearest first, while the cache budget lasts:
   the grid's and, with GANSpace, the coefficient points one step away
   (`TimbreState.neighbours`).

The worker pulls (`next_jobs`) rather than draining a queue, so work made stale by a
timbre move never piles up. The planner shares the engine's lock: the timbre it plans
for is the engine's, changed by the control threads.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Callable

import numpy as np

from gansynth_live.live.cache import NoteCache
from gansynth_live.live.facts import ModelFacts
from gansynth_live.live.timbre import GridPoint, TimbreState
from gansynth_live.live.worker import RenderJob
from gansynth_live.sustain import RenderedNote

RETRY_FAILED_AFTER_S = 5.0  # a note whose render failed is not retried sooner
MAX_PENDING_RENDERS = 8     # explicit renders (/render) queued or rendering, at most


class RenderPlanner:
    """Plans renders into `cache` for `timbre`. `stored()` is called (under `lock`) after
    each note it stores and returns callbacks to run after the lock is released (the
    engine's "point playable" waiters). `clock` (monotonic seconds) times the retry of a
    failed render."""

    def __init__(self, facts: ModelFacts, timbre: TimbreState, cache: NoteCache,
                 bytes_per_note: int, lock: threading.RLock,
                 stored: Callable[[], list[Callable[[], None]]],
                 clock: Callable[[], float] = time.monotonic):
        self.facts = facts
        self.timbre = timbre
        self.cache = cache
        self.bytes_per_note = bytes_per_note
        self._lock = lock
        self._stored = stored
        self.clock = clock
        self.counters = collections.Counter()
        self.last_pitch = facts.pitches[len(facts.pitches) // 2]
        self._urgent: collections.deque[int] = collections.deque()
        self._in_flight: set[tuple[GridPoint, int]] = set()
        self._failed: dict[tuple[GridPoint, int], float] = {}
        self._explicit: collections.deque[RenderJob] = collections.deque()
        self.explicit_pending = 0  # explicit renders not yet delivered or failed
        self._plan_for = None  # (point, x, y, coefficients) the render plan was made for
        self._plan: list[GridPoint] = []
        self._keep: frozenset[GridPoint] = frozenset()  # the plan's points: never evicted

    def missed(self, pitch: int) -> None:
        """`pitch` was played and missed: render it first (caller holds the lock)."""
        if pitch in self._urgent:
            self._urgent.remove(pitch)
        self._urgent.appendleft(pitch)

    def explicit(self, z: np.ndarray, pitch: int, deliver: Callable[[RenderedNote], None],
                 fail: Callable[[str], None], ganspace: tuple[float, ...] = ()) -> None:
        """Render `z` (edited by the GANSpace coefficients `ganspace`) at `pitch` ahead of
        all else; ValueError when `MAX_PENDING_RENDERS` are pending already."""
        with self._lock:
            if self.explicit_pending >= MAX_PENDING_RENDERS:
                raise ValueError(f"render queue full ({MAX_PENDING_RENDERS} renders pending); "
                                 f"send more after a /done")
            self.explicit_pending += 1

        def finished() -> None:
            with self._lock:
                self.explicit_pending -= 1

        def delivered(note: RenderedNote) -> None:
            finished()
            deliver(note)

        def failed(reason: str) -> None:
            finished()
            fail(reason)

        self._explicit.append(RenderJob(z, pitch, delivered, failed, ganspace=ganspace))

    # The worker's next batch (worker thread) ------------------------------------------

    def next_jobs(self, n: int) -> list[RenderJob]:
        jobs: list[RenderJob] = []
        while self._explicit and len(jobs) < n:
            jobs.append(self._explicit.popleft())
        if jobs:
            return jobs
        with self._lock:
            now = self.clock()
            point = self.timbre.current_point()
            for key in self._wanted(point):
                if len(jobs) >= n:
                    break
                if key in self.cache or key in self._in_flight:
                    continue
                if now - self._failed.get(key, -1e9) < RETRY_FAILED_AFTER_S:
                    continue
                jobs.append(self._cache_job(key))
            self._in_flight.update(job.key for job in jobs)
        return jobs

    def _wanted(self, point: GridPoint):
        """Keys to render, in priority order, as many as the cache budget holds."""
        pitches = self.facts.pitches
        urgent = list(self._urgent)
        self._urgent.clear()
        last = self.last_pitch
        order = urgent + sorted((p for p in pitches if p not in urgent),
                                key=lambda p: (abs(p - last), p))
        for planned in self._planned_points(point):
            if self.cache.cached_pitches(planned) < len(pitches):  # skip complete points
                for p in order:
                    yield planned, p

    def _planned_points(self, point: GridPoint) -> list[GridPoint]:
        """The current point, then its neighbours nearest first, as many as the budget holds
        (worked out once per exact position)."""
        position = (point, self.timbre.x, self.timbre.y, self.timbre.coefficients)
        if self._plan_for != position:
            capacity = self.cache.budget_bytes // (self.bytes_per_note * len(self.facts.pitches))
            neighbours = itertools.islice(self.timbre.neighbours(point), max(0, capacity - 1))
            self._plan = [point, *neighbours]
            self._keep = frozenset(self._plan)
            self._plan_for = position
        return self._plan

    def _cache_job(self, key) -> RenderJob:
        point, pitch = key
        z = self.timbre.latent(point)

        def deliver(audio: RenderedNote) -> None:
            with self._lock:
                self._in_flight.discard(key)
                self._failed.pop(key, None)
                if point.generation != self.timbre.generation:
                    return  # the anchors changed while it rendered
                self._planned_points(self.timbre.current_point())
                self.cache.put(point, pitch, audio, self._keep)
                self.counters["renders"] += 1
                waiters = self._stored()
            for waiter in waiters:
                waiter()

        def fail(reason: str) -> None:
            with self._lock:
                self._in_flight.discard(key)
                self._failed[key] = self.clock()
                self.counters["render_failures"] += 1

        return RenderJob(z, pitch, deliver, fail, key, point.pca)


__all__ = ["MAX_PENDING_RENDERS", "RETRY_FAILED_AFTER_S", "RenderPlanner"]
