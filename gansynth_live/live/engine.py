"""The engine: what a played note goes through between the control inputs and the mixer.

Control inputs (OSC, MIDI, Python) call the methods in "Control"; they are thread-safe,
validate their arguments (`gansynth_live.validation`: ValueError naming the argument and
the allowed range, with nothing changed) and never wait for rendering. A note-on looks
up the current grid point's note in the cache and posts it to the mixer; on a miss a
stand-in from the cache sounds at once (`NoteCache.stand_in`) and the exact note goes
to the front of the render queue. What the render worker does next is the planner's
(`planner.RenderPlanner`); the engine tells when the current point is playable.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Sequence

import numpy as np

from gansynth_live.envelope import Envelope
from gansynth_live.live.cache import NoteCache
from gansynth_live.live.facts import ModelFacts
from gansynth_live.live.planner import RenderPlanner
from gansynth_live.live.timbre import GridPoint, TimbreState
from gansynth_live.live.voices import LATENCY_RING, Mixer, NoteStart, velocity_gain
from gansynth_live.live.worker import RenderWorker
from gansynth_live.midi import MAX_RESAMPLE, nearest_pitch
from gansynth_live.sustain import (DEFAULT_SUSTAIN_MODE, MAX_LOOP_SECONDS, RenderedNote,
                                   check_sustain_mode)
from gansynth_live.validation import (ANCHOR, MAX_DURATION, MIDI_NOTE, VELOCITY, integer,
                                      number)


class Engine:
    """A model made playable: timbre state, note cache, render worker and mixer.

    `facts` are the model's (`facts.ModelFacts`); `renderer(z, pitches)` renders its notes
    at `sample_rate`, and `renderer(z, pitches, ganspace=[per note])` with GANSpace edits
    (`renderer.py`: gansynth-live's runs the model in another process)."""

    def __init__(self, facts: ModelFacts, renderer, *, sample_rate: int, channels: int = 2,
                 blocksize: int = 256, grid: int = 9, cache_bytes: int = 1 << 30,
                 polyphony: int = 32, seeds: Sequence[int] = (0, 1, 2, 3),
                 velocity_curve: float = 2.0, gain: float = 0.5, bend_range: float = 2.0,
                 batch_size: int = 8, sustain_mode: str = DEFAULT_SUSTAIN_MODE,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic):
        """`sustain_mode`: "loop" or "natural" (`gansynth_live.sustain`); `clock`
        (monotonic seconds) is the planner's."""
        self.facts = facts
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.blocksize = int(blocksize)
        self.velocity_curve = float(velocity_curve)
        self.bend_range = float(bend_range)
        self.log = log
        self.timbre = TimbreState(facts.latent_size, grid, seeds, facts.ganspace_components)
        self.cache = NoteCache(cache_bytes)
        self.envelope = Envelope()
        self.sustain_mode = check_sustain_mode(sustain_mode)
        # Rendered note length at the device rate; every cache entry holds that many frames
        # and its loop body (at most MAX_LOOP_SECONDS): the budget plans for the most.
        self.note_frames = int(round(facts.num_samples * self.sample_rate / facts.sample_rate))
        loop_frames = min(self.note_frames, int(round(MAX_LOOP_SECONDS * self.sample_rate)))
        self.bytes_per_note = (self.note_frames + loop_frames) * facts.channels * 4
        if cache_bytes < self.bytes_per_note * len(facts.pitches):
            raise ValueError(f"cache budget {cache_bytes / 2**20:.1f} MiB cannot hold one "
                             f"timbre point ({len(facts.pitches)} notes of "
                             f"{self.bytes_per_note / 2**20:.2f} MiB); raise it")
        self.mixer = Mixer(self.sample_rate, self.channels, max(self.blocksize, 4096),
                           polyphony=polyphony, gain=gain)
        self.renderer = renderer
        self._lock = threading.RLock()
        self.planner = RenderPlanner(facts, self.timbre, self.cache, self.bytes_per_note,
                                     self._lock, self._check_ready, clock)
        self.worker = RenderWorker(self.renderer, self.planner.next_jobs,
                                   batch_size=batch_size, on_error=log)
        self._ready_waiters: list[Callable[[], None]] = []
        self._ready = threading.Event()
        self.counters = collections.Counter()

    # Life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(wait=False)  # the renderer first, which may be what it waits for
        self.renderer.close()
        self.worker.stop()

    def preload(self, notes: dict[int, RenderedNote]) -> None:
        """Cache `notes` ({pitch: note}, every pitch of the model, e.g. from a
        `note_store.NoteStore`) as the current grid point's: it is playable at once."""
        with self._lock:
            point = self.timbre.current_point()
            for pitch in self.facts.pitches:
                self.cache.put(point, pitch, notes[pitch], {point})
            waiters = self._check_ready()
        for waiter in waiters:
            waiter()

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
        pitch = integer("pitch", pitch)
        if pitch not in self.facts.pitch_set:
            raise ValueError(f"pitch {pitch} is not one of the model's pitches "
                             f"({self.facts.pitch_range})")
        return pitch

    def source_pitch(self, pitch) -> tuple[int, int]:
        """(pitch, the model pitch that plays it): the nearest one the model has, at most
        `MAX_RESAMPLE` semitones away (ties: the lower, played faster)."""
        pitch = integer("pitch", pitch, *MIDI_NOTE)
        if pitch in self.facts.pitch_set:
            return pitch, pitch
        source = nearest_pitch(pitch, self.facts.pitches)
        if source is None:
            raise ValueError(f"pitch {pitch} is more than {MAX_RESAMPLE} semitones from the "
                             f"model's pitches {self.facts.pitches[0]}..{self.facts.pitches[-1]}")
        return pitch, source

    def note_on(self, pitch, velocity, duration: float | None = None,
                received: float | None = None) -> None:
        """Start a note (velocity 1..127; 0 is a note-off). `duration` in seconds plays it
        for that long (as /note does); `received` is the perf_counter time of the message.
        A pitch the model lacks plays its nearest model pitch, resampled (`source_pitch`)."""
        received = received or time.perf_counter()
        velocity = integer("velocity", velocity, *VELOCITY)
        if velocity == 0:  # a note-off, whatever the model could play
            self.note_off(pitch)
            return
        pitch, source = self.source_pitch(pitch)
        if duration is not None:
            duration = number("duration", duration, 0.0, MAX_DURATION, unit="seconds")
        with self._lock:
            point = self.timbre.current_point()
            self.planner.last_pitch = source
            envelope, loop = self.envelope, self.sustain_mode == "loop"
            audio, rate = self.cache.get(point, source), 1.0
            hit = audio is not None
            self.counters["cache_hits" if hit else "cache_misses"] += 1
            if not hit:
                self.planner.missed(source)
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
        pitch = integer("pitch", pitch, *MIDI_NOTE)
        self.mixer.post(("off", pitch))

    def all_notes_off(self) -> None:
        """Every sounding note fades out within a few milliseconds (the panic button)."""
        self.mixer.post(("all_off",))

    def sustain(self, on: bool) -> None:
        self.mixer.post(("sustain", bool(on)))

    def pitch_bend(self, semitones) -> None:
        semitones = number("pitch bend", semitones)
        if not -self.bend_range <= semitones <= self.bend_range:
            raise ValueError(f"pitch bend must be within +-{self.bend_range:g} semitones, "
                             f"got {semitones:g}")
        self.mixer.post(("bend", 2.0 ** (semitones / 12.0)))

    def set_xy(self, x=None, y=None) -> None:
        self._move(lambda: self.timbre.set_xy(x, y))

    def set_pca(self, values: Sequence) -> None:
        """Set the GANSpace coefficients c1..ck (the rest 0; none: all 0), each in
        `ganspace.COEFFICIENT_RANGE`. The timbre is the position's latent edited by them,
        snapped to `ganspace.SNAP_STEP` like the position to its grid."""
        self._move(lambda: self.timbre.set_pca(values))

    def set_pca_component(self, direction: int, value: float) -> None:
        """Set one GANSpace coefficient (direction 1 = the first), keeping the others."""
        self._move(lambda: self.timbre.set_pca_component(direction, value))

    def _move(self, change: Callable[[], None]) -> None:
        """Apply a change of position; the render plan follows only a change of point."""
        waiters = None
        with self._lock:
            before = self.timbre.current_point()
            change()
            if self.timbre.current_point() != before:
                waiters = self._timbre_changed()
        self._after_change(waiters)

    def set_seed(self, anchor, seed) -> None:
        anchor, seed = integer("anchor", anchor, *ANCHOR), integer("seed", seed)
        with self._lock:
            self.timbre.set_seed(anchor, seed)
            waiters = self._timbre_changed()
        self._after_change(waiters)

    def set_z(self, anchor, z: Sequence[float]) -> None:
        anchor = integer("anchor", anchor, *ANCHOR)
        with self._lock:
            self.timbre.set_z(anchor, z)
            waiters = self._timbre_changed()
        self._after_change(waiters)

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
        gain = number("gain", gain, 0.0, 4.0)
        self.mixer.post(("gain", gain))

    def render_note(self, pitch, deliver: Callable[[RenderedNote], None],
                    fail: Callable[[str], None]) -> None:
        """Render the exact current position's note (not the grid point) ahead of all else;
        ValueError when `planner.MAX_PENDING_RENDERS` are pending already."""
        pitch = self.check_pitch(pitch)
        with self._lock:
            z, coefficients = self.timbre.latent_at_position(), self.timbre.coefficients
        self.planner.explicit(z, pitch, deliver, fail, ganspace=coefficients)
        self.worker.wake()

    def _timbre_changed(self) -> list[Callable[[], None]]:
        """The timbre's point may have changed (caller holds the lock): the "playable"
        waiters to call now when the new point is cached already (a move back to a point
        rendered before: no render will come to call them)."""
        if self._point_complete(self.timbre.current_point()):
            return self._check_ready()
        self._ready.clear()
        return []

    def _after_change(self, waiters: list[Callable[[], None]] | None) -> None:
        """After a timbre change, outside the lock: answer `waiters`, wake the worker
        (None: the point did not change, nothing to do)."""
        if waiters is None:
            return
        for waiter in waiters:
            waiter()
        self.worker.wake()

    def _point_complete(self, point: GridPoint) -> bool:
        return self.cache.cached_pitches(point) == len(self.facts.pitches)

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
            pending = len(self.facts.pitches) - self.cache.cached_pitches(point)
            x, y, generation = self.timbre.x, self.timbre.y, self.timbre.generation
            coefficients = self.timbre.coefficients
            envelope, sustain_mode = self.envelope, self.sustain_mode
        mixer, worker = self.mixer, self.worker
        count = min(mixer.latency_count, LATENCY_RING)
        latencies = np.sort(mixer.latencies[:count]) * 1000.0 if count else np.zeros(1)
        status = {
            "model": self.facts.name,
            "sample_rate": self.sample_rate,
            "model_sample_rate": self.facts.sample_rate,
            "blocksize": self.blocksize,
            "channels": self.channels,
            "voices": mixer.active_voices(),
            "polyphony": mixer.polyphony,
            "pitches": len(self.facts.pitches),
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
            "render_failures": self.planner.counters["render_failures"],
            "render_requests_pending": self.planner.explicit_pending,
            "render_errors": worker.errors,
            "voices_stolen": mixer.voices_stolen,
            "clipped_blocks": mixer.clipped_blocks,
            "x": x, "y": y, "grid": self.timbre.resolution,
            "grid_i": point.i, "grid_j": point.j, "anchors_generation": generation,
            "pca_components": self.timbre.ganspace_components,
            **{f"pca_{n + 1}": float(coefficients[n]) if n < len(coefficients) else 0.0
               for n in range(self.timbre.ganspace_components)},
            "latency_ms_median": float(np.median(latencies)),
            "latency_ms_p99": float(np.percentile(latencies, 99)),
            "latency_ms_max": float(latencies[-1]),
        }
        status.update({k: float(v) for k, v in envelope.params().items()})
        status["sustain_mode"] = sustain_mode
        return status


__all__ = ["Engine"]
