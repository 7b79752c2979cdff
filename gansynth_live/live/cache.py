"""The note cache: rendered notes keyed by (grid point, pitch), within a memory budget (LRU).

A grid point includes its GANSpace coefficient point (`timbre.GridPoint.pca`), so "the
nearest grid point" below is the nearest in grid steps and coefficient steps together
(`timbre.distance`).

Entries are `sustain.RenderedNote`s (float32 frames and the note's loop) already at the
device rate, so a voice plays them as they are. The cache is shared by the control thread (look-ups at note-on)
and the render worker (stores); one lock guards the dictionaries and is held only for
dictionary work, never while rendering. The audio thread never touches the cache: a
voice holds its own reference to its array, so evicting an entry never cuts a note.

On a miss, `stand_in` finds the nearest cached substitute, in this order:
1. the same pitch at the nearest grid point of the same anchors;
2. the nearest pitch (within `max_shift` semitones) at the same grid point, played at a
   rate of 2 ** (semitones / 12);
3. the nearest pitch at the nearest other grid point of the same anchors;
4. the same search among notes of earlier anchors (newest first).
"""
from __future__ import annotations

import collections
import threading

from gansynth_live.live.timbre import GridPoint, distance
from gansynth_live.sustain import RenderedNote

Key = tuple[GridPoint, int]


class NoteCache:
    def __init__(self, budget_bytes: int):
        if budget_bytes <= 0:
            raise ValueError(f"cache budget must be positive, got {budget_bytes} bytes")
        self.budget_bytes = int(budget_bytes)
        self.bytes = 0
        self._entries: collections.OrderedDict[Key, RenderedNote] = collections.OrderedDict()
        self._points_by_pitch: dict[int, dict[GridPoint, None]] = collections.defaultdict(dict)
        self._pitch_count: collections.Counter[GridPoint] = collections.Counter()
        self._lock = threading.Lock()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def get(self, point: GridPoint, pitch: int) -> RenderedNote | None:
        """The cached note, marked as recently used; None on a miss."""
        with self._lock:
            audio = self._entries.get((point, pitch))
            if audio is not None:
                self._entries.move_to_end((point, pitch))
            return audio

    def put(self, point: GridPoint, pitch: int, note: RenderedNote,
            keep_points: frozenset[GridPoint] | set[GridPoint] = frozenset()) -> None:
        """Store a note, then evict least recently used entries to fit the budget, except
        those of the grid points in `keep_points`."""
        note.samples.setflags(write=False)
        key = (point, pitch)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            else:
                self._pitch_count[point] += 1
            self._entries[key] = note
            self._points_by_pitch[pitch][point] = None
            self.bytes += note.nbytes
            excess = self.bytes - self.budget_bytes
            victims = []
            for k, a in self._entries.items():  # least recently used first
                if excess <= 0:
                    break
                if k[0] not in keep_points and k != key:
                    victims.append(k)
                    excess -= a.nbytes
            for victim in victims:
                self._remove(victim)
                self.evictions += 1

    def _remove(self, key: Key) -> None:
        audio = self._entries.pop(key)
        self.bytes -= audio.nbytes
        points = self._points_by_pitch[key[1]]
        points.pop(key[0], None)
        if not points:
            del self._points_by_pitch[key[1]]
        self._pitch_count[key[0]] -= 1
        if not self._pitch_count[key[0]]:
            del self._pitch_count[key[0]]

    def cached_pitches(self, point: GridPoint) -> int:
        return self._pitch_count.get(point, 0)

    def points(self) -> set[GridPoint]:
        with self._lock:
            return {point for point, _ in self._entries}

    def stand_in(self, point: GridPoint, pitch: int, max_shift: int = 12
                 ) -> tuple[RenderedNote, float] | None:
        """(audio, playback rate) of the nearest cached substitute for a miss, or None."""
        with self._lock:
            by_pitch = self._points_by_pitch
            best = self._nearest_point(by_pitch.get(pitch, {}), point, same_generation=True)
            if best is not None:
                return self._hit(best, pitch, 1.0)
            for shift in _shifts(max_shift):  # same point, nearby pitch
                if point in by_pitch.get(pitch + shift, {}):
                    return self._hit(point, pitch + shift, 2.0 ** (-shift / 12.0))
            for same_generation in (True, False):
                for shift in _shifts(max_shift, include_zero=not same_generation):
                    best = self._nearest_point(by_pitch.get(pitch + shift, {}), point,
                                               same_generation)
                    if best is not None:
                        return self._hit(best, pitch + shift, 2.0 ** (-shift / 12.0))
        return None

    def _hit(self, point: GridPoint, pitch: int, rate: float) -> tuple[RenderedNote, float]:
        self._entries.move_to_end((point, pitch))
        return self._entries[(point, pitch)], rate

    @staticmethod
    def _nearest_point(points, target: GridPoint, same_generation: bool) -> GridPoint | None:
        best, best_score = None, None
        for p in points:
            if (p.generation == target.generation) != same_generation:
                continue
            score = (-p.generation, distance(p, target))
            if best_score is None or score < best_score:
                best, best_score = p, score
        return best


def _shifts(max_shift: int, include_zero: bool = False):
    """0 (optionally), then -1, +1, -2, +2, ...: the nearest pitches first."""
    if include_zero:
        yield 0
    for d in range(1, max_shift + 1):
        yield -d
        yield d


__all__ = ["NoteCache"]
