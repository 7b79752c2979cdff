"""Voices and the mixer: the only code that runs in the audio callback.

The control thread never touches a voice. It posts small command tuples to
`Mixer.commands` (a `collections.deque`: append and popleft are atomic in CPython, so
no lock is shared with the audio thread); `Mixer.process` applies them at the start of
the next block and mixes the sounding voices into the output buffer.

Every note is a pre-rendered `sustain.RenderedNote` at the device rate (from the
timbre cache), so a voice only reads its buffer (at a playback rate for pitch bend and
for a neighbour pitch used as a stand-in; through its loop while it is held, in sustain
loop), multiplies by its envelope (`envelope.BlockGain`, the code gansynth-generate
uses) and by its velocity gain, and adds. All arrays are allocated when the mixer is
built; per block only small Python objects (views, floats) are made.

Voice life: HELD (key down) -> RELEASED at note-off, or SUSTAINED while the sustain
pedal holds it -> finished when its release reaches 0, or (sustain natural) its audio
ends. A looping voice never runs out of audio. A stolen voice, and every voice on
all-notes-off, goes to FADING: a short linear fade from whatever gain it had, so nothing
stops with a click.
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

import numpy as np

from gansynth_live.envelope import BlockGain, Envelope, fade_frames
from gansynth_live.sustain import RenderedNote, source_indices, wrap_positions

HELD, SUSTAINED, RELEASED, FADING = 1, 2, 3, 4
NO_RELEASE = 2**62  # "release not known yet" as a frame count that never comes
LATENCY_RING = 4096  # note-on latencies kept for /status
# Commands applied per block at most: a burst of control messages spreads over blocks
# instead of making one callback overrun (64 notes start within 2 ms of each other).
MAX_COMMANDS_PER_BLOCK = 64


@dataclass
class NoteStart:
    """Everything a voice needs, prepared by the control thread.

    Attributes:
        pitch: MIDI note (note-off matches on it).
        note: the rendered note at the device rate, with its loop; never written.
        rate: playback rate (1.0, or 2**(semitones/12) for a neighbour pitch stand-in).
        gain: velocity gain.
        envelope: the voice keeps this one even if the envelope changes later.
        length: the model's note length L in frames at the device rate; the envelope's
            percentages are of it, as in gansynth-generate.
        loop: sustain loop (repeat the note's loop while held) or natural (play it once).
        duration: frames until an automatic note-off (/note), or None (wait for note-off).
        received: time.perf_counter() when the control message arrived (latency stats).
    """
    pitch: int
    note: RenderedNote
    rate: float
    gain: float
    envelope: Envelope
    length: int
    loop: bool = True
    duration: int | None = None
    received: float = 0.0


class Voice:
    __slots__ = ("state", "pitch", "note", "loop", "rate", "gain", "envelope", "attack",
                 "release", "release_start", "shortest_hold", "age", "position", "order",
                 "fade_level", "received")

    def __init__(self):
        self.state = 0  # 0 = free


class Mixer:
    """Mixes voices into output blocks of up to `max_frames` frames and `channels` channels."""

    def __init__(self, sample_rate: int, channels: int, max_frames: int, *,
                 polyphony: int = 32, gain: float = 0.5):
        if polyphony < 1:
            raise ValueError(f"polyphony must be at least 1, got {polyphony}")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.max_frames = int(max_frames)
        self.polyphony = int(polyphony)
        self.gain = float(gain)
        self.fade_frames = fade_frames(self.sample_rate)
        # Spare slots let a stolen voice fade out while its replacement starts.
        self.voices = [Voice() for _ in range(self.polyphony + 8)]
        self.commands: collections.deque = collections.deque()
        self.sustain = False
        self.bend = 1.0
        self._order = 0
        self._block_gain = BlockGain(Envelope(), self.max_frames, self.fade_frames)
        f = self.max_frames
        self._ramp = np.arange(f + 1, dtype=np.float64)
        self._gain = np.empty(f, np.float64)
        self._fade = np.empty(f, np.float64)
        self._pos = np.empty(f, np.float64)
        self._frac = np.empty(f, np.float64)
        self._idx = np.empty(f, np.intp)
        self._idx1 = np.empty(f, np.intp)
        self._scratch = np.empty(f, np.intp)
        # Source scratch per channel count, so a row slice stays contiguous for np.take.
        self._a = {c: np.empty((f, c), np.float32) for c in (1, 2)}
        self._b = {c: np.empty((f, c), np.float32) for c in (1, 2)}
        # A held note read at a rate other than 1: the stretch of its looped stream that a
        # block reads (up to 4x faster than real time), so positions need no wrapping.
        self._window = {c: np.empty((4 * f + 2, c), np.float32) for c in (1, 2)}
        self._tail = np.empty(f, np.float64)
        # float32 copies for the products with float32 audio: a ufunc mixing float32 and
        # float64 operands allocates cast buffers on every call.
        self._gain32 = np.empty(f, np.float32)
        self._frac32 = np.empty(f, np.float32)
        self._scaled = np.empty(f, np.float32)
        self._absmax = np.empty((f, self.channels), np.float32)
        self.latencies = np.zeros(LATENCY_RING, np.float64)  # seconds, ring buffer
        # Counters (read by /status; written only here or by the control thread as noted).
        self.latency_count = 0
        self.voices_started = 0
        self.voices_stolen = 0
        self.voices_dropped = 0  # no slot even for a fade: cut (should stay 0)
        self.clipped_blocks = 0
        self.frames_processed = 0

    # Control side ----------------------------------------------------------------------

    def post(self, command: tuple) -> None:
        """Queue a command for the next block (thread-safe, never blocks)."""
        self.commands.append(command)

    def active_voices(self) -> int:
        return sum(1 for v in self.voices if v.state and v.state != FADING)

    # Audio side ------------------------------------------------------------------------

    def process(self, out: np.ndarray) -> None:
        """Fill `out` (frames, channels) float32 with the next block. Audio thread only."""
        frames = out.shape[0]
        commands = self.commands
        for _ in range(min(len(commands), MAX_COMMANDS_PER_BLOCK)):
            self._apply(commands.popleft())
        out.fill(0.0)
        clipped = False
        # A host may give a bigger block than promised: mix it in parts of <= max_frames.
        for start in range(0, frames, self.max_frames):
            part = out[start:start + self.max_frames]
            self._mix(part)
            if self.gain != 1.0:
                np.multiply(part, self.gain, out=part)
            absmax = self._absmax[:part.shape[0]]
            np.abs(part, out=absmax)
            if absmax.max() > 1.0:
                clipped = True
                np.clip(part, -1.0, 1.0, out=part)
        if clipped:
            self.clipped_blocks += 1
        self.frames_processed += frames

    def _mix(self, out: np.ndarray) -> None:
        frames = out.shape[0]
        now = time.perf_counter()
        for voice in self.voices:
            if not voice.state:
                continue
            if voice.age == 0 and voice.received:
                self.latencies[self.latency_count % LATENCY_RING] = now - voice.received
                self.latency_count += 1
            self._mix_voice(voice, out, frames)

    def _mix_voice(self, voice: Voice, out: np.ndarray, frames: int) -> None:
        gain = self._gain[:frames]
        rate = voice.rate * self.bend
        # Sustain natural: the frame (since note-on) after the last one the audio fills at
        # the current rate; the envelope fades the gain to 0 before it.
        audio_end = (None if voice.loop else
                     voice.age + math.floor((voice.note.length - 1 - voice.position) / rate) + 1)
        sounding = self._block_gain.fill(gain, voice.age, frames, voice.attack,
                                         voice.release_start, voice.release, voice.envelope,
                                         audio_end)
        if voice.state == FADING:
            fade = self._fade[:frames]
            step = 1.0 / self.fade_frames
            np.multiply(self._ramp[:frames], -step, out=fade)
            np.add(fade, voice.fade_level, out=fade)
            np.maximum(fade, 0.0, out=fade)
            np.multiply(gain, fade, out=gain)
            voice.fade_level -= frames * step
            if voice.fade_level <= 0.0:
                sounding = 0
        np.multiply(gain, voice.gain, out=gain)
        source, valid = self._read(voice, frames, rate)
        if source is None:  # the audio ran out
            voice.state = 0
            return
        sounding = min(sounding, valid)
        gain32 = self._gain32[:frames]
        np.copyto(gain32, gain, casting="same_kind")
        # One channel at a time: numpy buffers (allocates) a product broadcast over a
        # (frames, 2) array's short inner axis.
        scaled = self._scaled[:frames]
        channels_in = source.shape[1]
        if channels_in == self.channels:
            for c in range(self.channels):
                np.multiply(source[:, c], gain32, out=scaled)
                np.add(out[:, c], scaled, out=out[:, c])
        else:  # mono -> every output channel (one product); stereo -> mono gets the mean
            if channels_in == 1:
                np.multiply(source[:, 0], gain32, out=scaled)
            else:
                np.add(source[:, 0], source[:, 1], out=scaled)
                np.multiply(scaled, 0.5, out=scaled)
                np.multiply(scaled, gain32, out=scaled)
            for c in range(self.channels):
                np.add(out[:, c], scaled, out=out[:, c])
        voice.age += frames
        if sounding < frames:
            voice.state = 0

    def _read(self, voice: Voice, frames: int, rate: float
              ) -> tuple[np.ndarray | None, int]:
        """The voice's next `frames` source frames at `rate` and how many of them are real
        audio (a looping voice never runs out; otherwise zeros past the end); (None, 0)
        when the audio is used up."""
        note = voice.note
        samples = note.samples
        total = note.length
        channels = samples.shape[1]
        start = voice.position
        looping = voice.loop
        if not looping and start > total - 1:
            return None, 0
        dest = self._a[channels][:frames]
        if rate == 1.0 and start == int(start):  # whole frames: copies, no interpolation
            if looping:
                voice.position = _copy_looped(dest, note, int(start))
                return dest, frames
            i = int(start)
            n = min(frames, total - i)
            dest[:n] = samples[i:i + n]
            dest[n:] = 0.0
            voice.position = start + frames
            return dest, n
        # Linear interpolation at positions start + k * rate (through the loop, if looping).
        pos, frac, idx, idx1, scratch = (self._pos[:frames], self._frac[:frames],
                                         self._idx[:frames], self._idx1[:frames],
                                         self._scratch[:frames])
        np.multiply(self._ramp[:frames], rate, out=pos)
        window = self._loop_window(note, start, frames, rate) if looping else None
        if window is not None:  # positions from the window's first frame, floor(start)
            np.add(pos, start - math.floor(start), out=pos)
            samples = window
        else:
            np.add(pos, start, out=pos)
            if looping:
                wrap_positions(pos, note.loop, frac)
            else:
                np.minimum(pos, total - 1, out=pos)
        np.floor(pos, out=frac)
        np.copyto(idx, frac, casting="unsafe")
        np.subtract(pos, frac, out=frac)
        np.add(idx, 1, out=idx1)
        if window is None:
            if looping:
                source_indices(idx, note, scratch)
                source_indices(idx1, note, scratch)
            else:
                np.minimum(idx1, total - 1, out=idx1)
        nxt = self._b[channels][:frames]
        samples.take(idx, axis=0, out=dest, mode="clip")
        samples.take(idx1, axis=0, out=nxt, mode="clip")
        np.subtract(nxt, dest, out=nxt)
        frac32 = self._frac32[:frames]
        np.copyto(frac32, frac, casting="same_kind")
        for c in range(channels):
            np.multiply(nxt[:, c], frac32, out=nxt[:, c])
        np.add(dest, nxt, out=dest)
        end = start + frames * rate
        valid = frames
        if looping:
            loop = note.loop
            if end >= loop.end:  # keep the position inside the loop
                end = loop.start + math.fmod(end - loop.start, loop.end - loop.start)
        elif end > total - 1:  # zero what lies past the end
            valid = max(0, min(frames, int((total - 1 - start) / rate) + 1))  # k*rate <= end
            dest[valid:] = 0.0
        voice.position = end
        return dest, valid

    def _loop_window(self, note: RenderedNote, start: float, frames: int, rate: float
                     ) -> np.ndarray | None:
        """The looped stream's frames from floor(start) on that `frames` frames read at
        `rate` interpolate between, copied out in a few slices (what wrapping every
        position would cost a dozen numpy calls); None when they do not fit the window
        (a bend far up: then the positions are wrapped)."""
        first = math.floor(start)
        span = math.floor(start - first + (frames - 1) * rate) + 2
        window = self._window[note.samples.shape[1]]
        if span > len(window):
            return None
        window = window[:span]
        _copy_looped(window, note, first)
        return window

    # Commands (applied at block start, in the audio thread) -----------------------------

    def _apply(self, command: tuple) -> None:
        kind = command[0]
        if kind == "on":
            self._start(command[1])
        elif kind == "off":
            self._note_off(command[1])
        elif kind == "sustain":
            self.sustain = command[1]
            if not self.sustain:
                for v in self.voices:
                    if v.state == SUSTAINED:
                        self._release(v)
        elif kind == "bend":
            self.bend = command[1]
        elif kind == "all_off":
            for v in self.voices:
                if v.state and v.state != FADING:
                    self._fade_out(v)
        elif kind == "gain":
            self.gain = command[1]

    def _start(self, note: NoteStart) -> None:
        # A key struck again releases its earlier sounding (held or sustained) voices.
        for v in self.voices:
            if v.state in (HELD, SUSTAINED) and v.pitch == note.pitch:
                self._release(v)
        if self.active_voices() >= self.polyphony:
            self._steal()
        slot = next((v for v in self.voices if not v.state), None)
        if slot is None:  # every spare slot is still fading: cut the oldest fade
            slot = min((v for v in self.voices if v.state == FADING), key=lambda v: v.order)
            self.voices_dropped += 1
        attack, release = note.envelope.segment_lengths(note.length, self.sample_rate)
        slot.pitch = note.pitch
        slot.note = note.note
        slot.loop = note.loop
        slot.rate = note.rate
        slot.gain = note.gain
        slot.envelope = note.envelope
        slot.attack, slot.release = attack, release
        slot.shortest_hold = note.envelope.shortest_hold(attack, self.sample_rate)
        slot.release_start = (NO_RELEASE if note.duration is None else
                              max(note.duration, slot.shortest_hold))
        slot.age = 0
        slot.position = 0.0
        slot.received = note.received
        self._order += 1
        slot.order = self._order
        slot.state = HELD
        self.voices_started += 1

    def _steal(self) -> None:
        """Fade out the oldest voice, preferring released, then sustained, then held ones."""
        for state in (RELEASED, SUSTAINED, HELD):
            candidates = [v for v in self.voices if v.state == state]
            if candidates:
                victim = min(candidates, key=lambda v: v.order)
                if victim.age == 0:  # started in this same block, never heard: just free it
                    victim.state = 0
                else:
                    self._fade_out(victim)
                self.voices_stolen += 1
                return

    def _note_off(self, pitch: int) -> None:
        for v in self.voices:
            if v.state == HELD and v.pitch == pitch:
                if self.sustain:
                    v.state = SUSTAINED
                else:
                    self._release(v)

    def _release(self, voice: Voice) -> None:
        # Not before the shortest hold: a note-off in the note-on's own block would
        # release a note whose attack never rose (envelope.py).
        voice.release_start = min(voice.release_start, max(voice.age, voice.shortest_hold))
        voice.state = RELEASED

    def _fade_out(self, voice: Voice) -> None:
        """Fade from the gain the voice has now (its envelope keeps running underneath)."""
        voice.fade_level = 1.0
        voice.state = FADING


def _copy_looped(dest: np.ndarray, note: RenderedNote, position: int) -> float:
    """Fill `dest` with the looped stream's frames from `position` on, by slice copies (the
    note's frames up to the loop start, then its loop body again and again: what
    `sustain.source_indices` maps to, a few slices per block); the next position."""
    loop = note.loop
    done, frames = 0, dest.shape[0]
    while done < frames:
        if position < loop.start:
            source, stop = position, loop.start
        else:
            source, stop = note.length + position - loop.start, loop.end
        count = min(frames - done, stop - position)
        dest[done:done + count] = note.samples[source:source + count]
        done += count
        position += count
        if position >= loop.end:
            position = loop.start
    return float(position)


def velocity_gain(velocity: int, curve: float = 2.0) -> float:
    """Gain of a MIDI velocity 1..127: (velocity / 127) ** curve (0 = every note at full gain)."""
    return float((velocity / 127.0) ** curve)


__all__ = ["FADING", "HELD", "Mixer", "NoteStart", "RELEASED", "SUSTAINED", "velocity_gain"]
