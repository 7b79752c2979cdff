"""The engine: what a played note goes through between the control inputs and the mixer.

Control inputs (OSC, MIDI, Python) call the methods in "Control"; they are thread-safe,
validate their arguments (ValueError naming the argument and the allowed range, with
nothing changed) and never wait for rendering. A note-on looks up the current grid
point's note in the cache and posts it to the mixer; on a miss a stand-in from the
cache sounds at once (`NoteCache.stand_in`) and the exact note goes to the front of
the render queue.

What the render worker does next is planned here (`next_jobs`), most urgent first:
1. /render requests;
2. pitches just played that missed, at the current grid point;
3. every other pitch of the current grid point, nearest to the last played pitch first;
4. the same for the neighbouring grid points, nearest first, while the cache budget lasts.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Callable, Sequence

import numpy as np

from gansynth_live.envelope import Envelope
from gansynth_live.live.cache import NoteCache
from gansynth_live.live.renderer import InProcessRenderer
from gansynth_live.live.timbre import GridPoint, TimbreState
from gansynth_live.live.voices import LATENCY_RING, Mixer, NoteStart, velocity_gain
from gansynth_live.live.worker import RenderJob, RenderWorker
from gansynth_live.midi import MAX_RESAMPLE, nearest_pitch
from gansynth_live.model import Model
from gansynth_live.sustain import (DEFAULT_SUSTAIN_MODE, MAX_LOOP_SECONDS, RenderedNote,
                                   check_sustain_mode)

RETRY_FAILED_AFTER_S = 5.0  # a note whose render failed is not retried sooner


class Engine:
    """A model made playable: timbre state, note cache, render worker and mixer."""

    def __init__(self, model: Model, *, sample_rate: int, channels: int = 2,
                 blocksize: int = 256, grid: int = 9, cache_bytes: int = 1 << 30,
                 polyphony: int = 32, seeds: Sequence[int] = (0, 1, 2, 3),
                 velocity_curve: float = 2.0, gain: float = 0.5, bend_range: float = 2.0,
                 batch_size: int = 8, sustain_mode: str = DEFAULT_SUSTAIN_MODE,
                 renderer=None, log: Callable[[str], None] = print):
        """`renderer`: what renders notes (`renderer.py`); default: `model` in this process.
        `sustain_mode`: "loop" or "natural" (`gansynth_live.sustain`)."""
        self.model = model
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.blocksize = int(blocksize)
        self.velocity_curve = float(velocity_curve)
        self.bend_range = float(bend_range)
        self.log = log
        self.timbre = TimbreState(model.latent_size, grid, seeds)
        self.cache = NoteCache(cache_bytes)
        self.envelope = Envelope()
        self.sustain_mode = check_sustain_mode(sustain_mode)
        # Rendered note length at the device rate; every cache entry holds that many frames
        # and its loop body (at most MAX_LOOP_SECONDS): the budget plans for the most.
        self.note_frames = int(round(model.num_samples * self.sample_rate / model.sample_rate))
        loop_frames = min(self.note_frames, int(round(MAX_LOOP_SECONDS * self.sample_rate)))
        self.bytes_per_note = (self.note_frames + loop_frames) * model.channels * 4
        if cache_bytes < self.bytes_per_note * len(model.pitches):
            raise ValueError(f"cache budget {cache_bytes / 2**20:.1f} MiB cannot hold one "
                             f"timbre point ({len(model.pitches)} notes of "
                             f"{self.bytes_per_note / 2**20:.2f} MiB); raise it")
        self.mixer = Mixer(self.sample_rate, self.channels, max(self.blocksize, 4096),
                           polyphony=polyphony, gain=gain)
        self.renderer = renderer or InProcessRenderer(model, self.sample_rate)
        self.worker = RenderWorker(self.renderer, self.next_jobs, batch_size=batch_size,
                                   on_error=log)
        self._lock = threading.RLock()
        self._urgent: collections.deque[int] = collections.deque()
        self._last_pitch = model.pitches[len(model.pitches) // 2]
        self._in_flight: set[tuple[GridPoint, int]] = set()
        self._failed: dict[tuple[GridPoint, int], float] = {}
        self._explicit: collections.deque[RenderJob] = collections.deque()
        self._ready_waiters: list[Callable[[], None]] = []
        self._plan_for = None  # (point, x, y) the render plan was made for
        self._plan: list[GridPoint] = []
        self._keep: frozenset[GridPoint] = frozenset()  # the plan's points: never evicted
        self._ready = threading.Event()
        self.counters = collections.Counter()

    # Life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.renderer.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the current grid point's whole pitch range is cached."""
        return self._ready.wait(timeout)

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the worker thread, or now) once the current point is playable."""
        with self._lock:
            if self._point_complete(self.timbre.current_point()):
                ready = True
            else:
                self._ready_waiters.append(callback)
                ready = False
        if ready:
            callback()

    # Control ----------------------------------------------------------------------------

    def check_pitch(self, pitch) -> int:
        """A pitch the model renders (ValueError otherwise)."""
        pitch = _as_int("pitch", pitch)
        if pitch not in self.model._label_of:
            raise ValueError(f"pitch {pitch} is not one of the model's pitches "
                             f"({self.model.pitches[0]}..{self.model.pitches[-1]})")
        return pitch

    def source_pitch(self, pitch) -> tuple[int, int]:
        """(pitch, the model pitch that plays it): the nearest one the model has, at most
        `MAX_RESAMPLE` semitones away (ties: the lower, played faster)."""
        pitch = _as_int("pitch", pitch)
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch must be 0..127, got {pitch}")
        if pitch in self.model._label_of:
            return pitch, pitch
        source = nearest_pitch(pitch, self.model.pitches)
        if source is None:
            raise ValueError(f"pitch {pitch} is more than {MAX_RESAMPLE} semitones from the "
                             f"model's pitches {self.model.pitches[0]}..{self.model.pitches[-1]}")
        return pitch, source

    def note_on(self, pitch, velocity, duration: float | None = None,
                received: float | None = None) -> None:
        """Start a note (velocity 1..127; 0 is a note-off). `duration` in seconds plays it
        for that long (as /note does); `received` is the perf_counter time of the message.
        A pitch the model lacks plays its nearest model pitch, resampled (`source_pitch`)."""
        received = received or time.perf_counter()
        velocity = _as_int("velocity", velocity)
        if not 0 <= velocity <= 127:
            raise ValueError(f"velocity must be 0..127, got {velocity}")
        if velocity == 0:  # a note-off, whatever the model could play
            self.note_off(pitch)
            return
        pitch, source = self.source_pitch(pitch)
        if duration is not None:
            duration = float(duration)
            if not 0.0 <= duration <= 3600.0:  # also rejects NaN
                raise ValueError(f"duration must be 0..3600 seconds, got {duration:g}")
        with self._lock:
            point = self.timbre.current_point()
            self._last_pitch = source
            envelope, loop = self.envelope, self.sustain_mode == "loop"
            audio, rate = self.cache.get(point, source), 1.0
            hit = audio is not None
            self.counters["cache_hits" if hit else "cache_misses"] += 1
            if not hit:
                if source in self._urgent:
                    self._urgent.remove(source)
                self._urgent.appendleft(source)
                audio, rate = self.cache.stand_in(point, source) or (None, 1.0)
                if audio is None:
                    self.counters["silent_misses"] += 1
            if audio is not None and source != pitch:
                self.counters["resampled_notes"] += 1
        rate *= 2.0 ** ((pitch - source) / 12.0)
        if not hit:
            self.worker.wake()
        if audio is None:
            return
        frames = None if duration is None else int(round(duration * self.sample_rate))
        self.mixer.post(("on", NoteStart(pitch, audio, rate,
                                         velocity_gain(velocity, self.velocity_curve),
                                         envelope, self.note_frames, loop, frames, received)))
        with self._lock:  # OSC and MIDI threads both count
            self.counters["notes"] += 1

    def note_off(self, pitch) -> None:
        pitch = _as_int("pitch", pitch)
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch must be 0..127, got {pitch}")
        self.mixer.post(("off", pitch))

    def all_notes_off(self) -> None:
        """Every sounding note fades out within a few milliseconds (the panic button)."""
        self.mixer.post(("all_off",))

    def sustain(self, on: bool) -> None:
        self.mixer.post(("sustain", bool(on)))

    def pitch_bend(self, semitones) -> None:
        semitones = float(semitones)
        if not -self.bend_range <= semitones <= self.bend_range:
            raise ValueError(f"pitch bend must be within +-{self.bend_range:g} semitones, "
                             f"got {semitones:g}")
        self.mixer.post(("bend", 2.0 ** (semitones / 12.0)))

    def set_xy(self, x=None, y=None) -> None:
        with self._lock:
            before = self.timbre.current_point()
            self.timbre.set_xy(x, y)
            moved = self.timbre.current_point() != before
            if moved:
                self._timbre_changed()
        if moved:
            self.worker.wake()

    def set_seed(self, anchor, seed) -> None:
        anchor, seed = _as_int("anchor", anchor), _as_int("seed", seed)
        with self._lock:
            self.timbre.set_seed(anchor, seed)
            self._timbre_changed()
        self.worker.wake()

    def set_z(self, anchor, z: Sequence[float]) -> None:
        anchor = _as_int("anchor", anchor)
        with self._lock:
            self.timbre.set_z(anchor, z)
            self._timbre_changed()
        self.worker.wake()

    def set_envelope(self, attack_percent, attack_slope, release_percent, release_slope) -> None:
        """Applies to notes started from now on (sounding notes keep theirs)."""
        envelope = Envelope(attack_percent, attack_slope, release_percent, release_slope)
        with self._lock:
            self.envelope = envelope

    def set_sustain_mode(self, mode) -> None:
        """"loop" or "natural", for notes started from now on (sounding notes keep theirs)."""
        mode = check_sustain_mode(mode)
        with self._lock:
            self.sustain_mode = mode

    def set_gain(self, gain) -> None:
        gain = float(gain)
        if not 0.0 <= gain <= 4.0:
            raise ValueError(f"gain must be 0..4, got {gain:g}")
        self.mixer.post(("gain", gain))

    def render_note(self, pitch, deliver: Callable[[RenderedNote], None],
                    fail: Callable[[str], None]) -> None:
        """Render the exact current position's note (not the grid point) ahead of all else."""
        pitch = self.check_pitch(pitch)
        with self._lock:
            z = self.timbre.latent_at_position()
        self._explicit.append(RenderJob(z, pitch, deliver, fail))
        self.worker.wake()

    def _timbre_changed(self) -> None:
        if not self._point_complete(self.timbre.current_point()):
            self._ready.clear()

    # Planning the worker's next batch (worker thread) ----------------------------------

    def next_jobs(self, n: int) -> list[RenderJob]:
        jobs: list[RenderJob] = []
        while self._explicit and len(jobs) < n:
            jobs.append(self._explicit.popleft())
        if jobs:
            return jobs
        with self._lock:
            now = time.monotonic()
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
        pitches = self.model.pitches
        urgent = list(self._urgent)
        self._urgent.clear()
        last = self._last_pitch
        order = urgent + sorted((p for p in pitches if p not in urgent),
                                key=lambda p: (abs(p - last), p))
        for planned in self._planned_points(point):
            if self.cache.cached_pitches(planned) < len(pitches):  # skip complete points
                for p in order:
                    yield planned, p

    def _planned_points(self, point: GridPoint) -> list[GridPoint]:
        """The current point, then its neighbours nearest first, as many as the budget holds
        (worked out once per grid point)."""
        if self._plan_for != (point, self.timbre.x, self.timbre.y):
            capacity = self.cache.budget_bytes // (self.bytes_per_note * len(self.model.pitches))
            neighbours = itertools.islice(self.timbre.neighbours(point), max(0, capacity - 1))
            self._plan = [point, *neighbours]
            self._keep = frozenset(self._plan)
            self._plan_for = (point, self.timbre.x, self.timbre.y)
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
                waiters = self._check_ready()
            for waiter in waiters:
                waiter()

        def fail(reason: str) -> None:
            with self._lock:
                self._in_flight.discard(key)
                self._failed[key] = time.monotonic()
                self.counters["render_failures"] += 1

        return RenderJob(z, pitch, deliver, fail, key)

    def _point_complete(self, point: GridPoint) -> bool:
        return self.cache.cached_pitches(point) == len(self.model.pitches)

    def _check_ready(self) -> list[Callable[[], None]]:
        if not self._point_complete(self.timbre.current_point()):
            return []
        self._ready.set()
        waiters, self._ready_waiters = self._ready_waiters, []
        return waiters

    # Status ----------------------------------------------------------------------------

    def status(self) -> dict[str, int | float | str]:
        """Named counters and settings (the /status reply), all ints, floats or strings."""
        with self._lock:
            point = self.timbre.current_point()
            pending = len(self.model.pitches) - self.cache.cached_pitches(point)
            x, y, generation = self.timbre.x, self.timbre.y, self.timbre.generation
            envelope, sustain_mode = self.envelope, self.sustain_mode
        mixer, worker = self.mixer, self.worker
        count = min(mixer.latency_count, LATENCY_RING)
        latencies = np.sort(mixer.latencies[:count]) * 1000.0 if count else np.zeros(1)
        status = {
            "model": self.model.name,
            "sample_rate": self.sample_rate,
            "model_sample_rate": self.model.sample_rate,
            "blocksize": self.blocksize,
            "channels": self.channels,
            "voices": mixer.active_voices(),
            "polyphony": mixer.polyphony,
            "pitches": len(self.model.pitches),
            "notes": self.counters["notes"],
            "cache_hits": self.counters["cache_hits"],
            "cache_misses": self.counters["cache_misses"],
            "silent_misses": self.counters["silent_misses"],
            "resampled_notes": self.counters["resampled_notes"],
            "cache_entries": len(self.cache),
            "cache_bytes": self.cache.bytes,
            "cache_budget_bytes": self.cache.budget_bytes,
            "cache_evictions": self.cache.evictions,
            "pending_renders": pending,
            "ready": int(pending == 0),
            "renders": worker.notes_rendered,
            "render_errors": worker.errors,
            "voices_stolen": mixer.voices_stolen,
            "clipped_blocks": mixer.clipped_blocks,
            "x": x, "y": y, "grid": self.timbre.resolution,
            "grid_i": point.i, "grid_j": point.j, "anchors_generation": generation,
            "latency_ms_median": float(np.median(latencies)),
            "latency_ms_p99": float(np.percentile(latencies, 99)),
            "latency_ms_max": float(latencies[-1]),
        }
        status.update({k: float(v) for k, v in envelope.params().items()})
        status["sustain_mode"] = sustain_mode
        return status


def _as_int(name: str, value) -> int:
    """An integer argument; integral floats (Pd sends every number as a float) are fine."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


__all__ = ["Engine"]
