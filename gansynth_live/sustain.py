"""Sustain: a loop in each rendered note, so that a note sounds for as long as it is held.

GANSynth renders fixed-length notes (1 s for the embedded model, 4 s for Magenta's). A
held note plays its rendered audio once up to the loop's end, then repeats the loop
``[start, end)`` until it is released, as a sampler does. The loop is found once per
rendered note (`find_loop`), in the note's steady part: after the attack, before the
note's own release. Its length is chosen where the waveform before ``end`` best matches
the waveform before ``start`` (normalised cross-correlation over at least two pitch
periods, so the jump is pitch-period aligned) and the level at both ends agrees.

The jump is made seamless by a *seam*: the last `seam` frames before ``end``, crossfaded
into the frames before ``start``. It is stored after the note's own frames
(`RenderedNote.samples`), so the note's audio stays untouched (``sustain natural`` plays
it exactly) and a held note costs only the seam's few milliseconds more memory than a
short one. The looped stream is::

    samples[0 : end - seam], then forever: samples[seam part], samples[start : end - seam]

`wrap_positions` and `source_indices` turn positions in that endless stream into
indices into `samples`; the live mixer (allocation-free, with ``out=`` scratch) and
offline rendering use the same two functions.

Sustain modes: ``loop`` (the default) repeats the loop while the note is held;
``natural`` plays the rendered audio once, so an instrument that decays decays and a
note held longer than the audio ends with the audio.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

SUSTAIN_MODES = ("loop", "natural")
DEFAULT_SUSTAIN_MODE = "loop"
MIN_WINDOW_SECONDS = 0.02   # the match window (and seam) is at least this long...
WINDOW_PERIODS = 2.0        # ...and at least this many pitch periods
MIN_LOOP_SECONDS = 0.25     # shortest loop considered (a short loop pulls the pitch onto
                            # multiples of 1 / its length: 0.14 s put one 20 cents flat)
MAX_LOOP_SECONDS = 2.0      # longest loop considered (longer loops repeat less audibly)
LEVEL_FRAME_SECONDS = 0.01  # frames of the level envelope that finds the steady part
RELEASE_DROP_DB = 6.0       # the steady part ends where the level stays this far below
                            # the sustain level: the note's own release
END_CANDIDATES = 6          # loop ends tried, from the end of the steady part backwards


class Loop(NamedTuple):
    """A loop in a note, in frames: ``[start, end)`` repeats; `seam` frames before `end`
    are crossfaded into the frames before `start`. `match` is the normalised
    cross-correlation of the two (1.0 = a perfect repeat)."""
    start: int
    end: int
    seam: int
    match: float

    def scaled(self, ratio: float) -> "Loop":
        """The same loop in a note resampled by `ratio` (device rate / model rate)."""
        start = int(round(self.start * ratio))
        length = int(round((self.end - self.start) * ratio))
        return Loop(start, start + length, min(int(round(self.seam * ratio)), start), self.match)


class RenderedNote(NamedTuple):
    """A note ready to play: its frames, then its loop's seam.

    Attributes:
        samples: (length + seam, channels) float32; ``samples[:length]`` is the note.
        length: frames of the rendered note.
        loop: where it loops (`Loop`), in frames of `samples`.
    """
    samples: np.ndarray
    length: int
    loop: Loop

    @property
    def audio(self) -> np.ndarray:
        """The rendered note as it came from the model (a view)."""
        return self.samples[:self.length]

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def nbytes(self) -> int:
        return self.samples.nbytes


def _level_db(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS level (dB) of consecutive `frame`-sample frames of the mono signal `x`."""
    n = len(x) // frame
    power = np.mean(np.square(x[:n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return 10.0 * np.log10(power + 1e-12)


def match_window(sample_rate: int, pitch: float | None = None) -> int:
    """Frames compared at a loop's ends (and crossfaded by its seam): at least
    `MIN_WINDOW_SECONDS` and `WINDOW_PERIODS` periods of `pitch` (MIDI), when known."""
    window = int(round(MIN_WINDOW_SECONDS * sample_rate))
    if pitch is not None:
        period = sample_rate / (440.0 * 2.0 ** ((pitch - 69.0) / 12.0))
        window = max(window, int(math.ceil(WINDOW_PERIODS * period)))
    return window


def steady_part(mono: np.ndarray, sample_rate: int, pitch: float | None = None
                ) -> tuple[int, int]:
    """(first, last) frame of a note's steady part, where its loop may lie: from one match
    window after its loudest moment in the first quarter (the end of the attack) to where
    its level falls `RELEASE_DROP_DB` below the median level after the attack for good
    (the start of its release)."""
    frame = max(1, int(round(LEVEL_FRAME_SECONDS * sample_rate)))
    level = _level_db(np.asarray(mono, np.float64), frame)
    if len(level) < 4:
        return 0, len(mono)
    peak = int(np.argmax(level[:max(1, len(level) // 4)]))
    sustain = float(np.median(level[peak:]))
    loud = np.flatnonzero(level[peak:] >= sustain - RELEASE_DROP_DB)
    last = peak + (int(loud[-1]) + 1 if len(loud) else len(level) - peak)
    first = peak * frame + match_window(sample_rate, pitch)
    return min(first, len(mono)), min(len(mono), last * frame)


def find_loop(audio: np.ndarray, sample_rate: int, pitch: float | None = None) -> Loop:
    """The loop of a rendered note (frames, channels): see the module docstring.

    `pitch` (MIDI) sets the match window to two pitch periods; None uses the minimum
    window. Works on any audio: a note too short for a proper loop loops its second half.
    """
    audio = np.asarray(audio, np.float32)
    mono = audio.mean(axis=1, dtype=np.float64) if audio.ndim == 2 else audio.astype(np.float64)
    total = len(mono)
    window = match_window(sample_rate, pitch)
    first, last = steady_part(mono, sample_rate, pitch)
    min_loop = max(int(MIN_LOOP_SECONDS * sample_rate), 2 * window)
    max_loop = int(MAX_LOOP_SECONDS * sample_rate)
    # The loop and both match windows must fit in the steady part; widen it if they don't.
    if last - first < min_loop + 2 * window:
        first, last = max(0, total // 2 - window), total
        if last - first < min_loop + 2 * window:
            min_loop = max(1, (last - first) // 2)
            window = max(1, min(window, (last - first) // 4))
    sustain_rms = np.sqrt(np.mean(np.square(mono[first:last])) + 1e-24)
    best: tuple[float, int, int, float] | None = None
    step = max(1, (last - first - min_loop) // (3 * END_CANDIDATES))
    for k in range(END_CANDIDATES):
        end = last - k * step
        longest = min(max_loop, end - first)
        if longest < min_loop:
            break
        scores, matches = _score_lengths(mono, end, window, min_loop, longest, sustain_rms)
        i = int(np.argmax(scores))
        if best is None or scores[i] > best[0]:
            best = (float(scores[i]), end, min_loop + i, float(matches[i]))
    if best is None:  # too short for any search: the second half loops
        start = total // 2
        return Loop(start, total, min(window, start), 0.0)
    _, end, length, match = best
    return Loop(end - length, end, min(window, end - length), match)


def _score_lengths(mono: np.ndarray, end: int, window: int, shortest: int, longest: int,
                   sustain_rms: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores of loop lengths shortest..longest ending at `end`, and their matches.

    match = normalised cross-correlation of the `window` frames before `end` with those
    before `end - length`; the score subtracts a penalty per dB the loop's ends differ in
    level and per dB (beyond 0.5) the loop's RMS level differs from the steady part's (a
    loop that holds a note louder or softer than it was), and adds a small bonus for
    length (a long loop repeats less audibly).
    """
    template = mono[end - window:end]
    lo = end - longest - window  # segment holding every window before a candidate start
    segment = mono[lo:end - shortest]
    n = len(segment) + window
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[:len(segment) - window + 1]  # corr[j] = <segment[j:j+window], template>
    energy = np.concatenate(([0.0], np.cumsum(np.square(segment))))
    window_energy = np.maximum(energy[window:] - energy[:-window], 1e-24)
    template_energy = max(float(np.dot(template, template)), 1e-24)
    match = corr / np.sqrt(window_energy * template_energy)
    loop_energy = energy[-1] - energy[window:]  # from each candidate start to end - shortest
    # Index j is a loop start of lo + j + window, i.e. a length of end - (lo + j + window).
    match = match[::-1]  # now index i is the length shortest + i
    window_energy = window_energy[::-1]
    lengths = np.arange(shortest, shortest + len(match))
    tail_energy = float(np.dot(mono[end - shortest:end], mono[end - shortest:end]))
    loop_rms = np.sqrt((loop_energy[::-1] + tail_energy) / lengths + 1e-24)
    rms_start = np.sqrt(window_energy / window)
    rms_end = math.sqrt(template_energy / window)
    level_diff = np.abs(20.0 * np.log10(rms_start / rms_end))
    off_sustain = np.abs(20.0 * np.log10(loop_rms / sustain_rms))
    score = (match - 0.05 * level_diff - 0.3 * np.maximum(0.0, off_sustain - 0.5)
             + 0.6 * lengths / lengths[-1])
    return score, match


def make_note(audio: np.ndarray, loop: Loop) -> RenderedNote:
    """A `RenderedNote` of `audio` (frames, channels) with `loop`'s seam after it.

    The seam crossfades the frames before `loop.end` (fading out) into those before
    `loop.start` (fading in): linear (equal gain) when they match well, so a repeat
    keeps its level; equal power when they do not, so uncorrelated sound does not dip.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = audio[:, np.newaxis]
    length = audio.shape[0]
    start, end, seam, _ = loop
    if not (0 < end <= length and 0 <= seam <= start < end):
        raise ValueError(f"loop {tuple(loop)} does not fit a note of {length} frames")
    ramp = (np.arange(seam, dtype=np.float64) + 0.5) / max(seam, 1)
    if loop.match >= 0.5:
        fade_in = ramp
        fade_out = 1.0 - ramp
    else:
        fade_in = np.sin(0.5 * np.pi * ramp)
        fade_out = np.cos(0.5 * np.pi * ramp)
    joined = (audio[end - seam:end] * fade_out[:, np.newaxis]
              + audio[start - seam:start] * fade_in[:, np.newaxis])
    samples = np.concatenate([audio, joined.astype(np.float32)])
    return RenderedNote(samples, length, loop)


def loop_note(audio: np.ndarray, sample_rate: int, pitch: float | None = None
              ) -> RenderedNote:
    """`make_note(audio, find_loop(audio, sample_rate, pitch))`."""
    return make_note(audio, find_loop(audio, sample_rate, pitch))


def wrap_positions(positions: np.ndarray, loop: Loop, scratch: np.ndarray) -> None:
    """In place: positions (>= 0, float or int) in the endless looped stream -> positions
    in ``[0, loop.end)``: ``p - P * floor(max(p - start, 0) / P)``, P the loop length.
    `scratch` has the positions' shape and dtype. No allocation (no ``where=``, whose
    masked loops allocate)."""
    length = loop.end - loop.start
    np.subtract(positions, loop.start, out=scratch)
    np.maximum(scratch, 0, out=scratch)
    np.floor_divide(scratch, length, out=scratch)
    np.multiply(scratch, length, out=scratch)
    np.subtract(positions, scratch, out=positions)


def source_indices(indices: np.ndarray, note: RenderedNote, scratch: np.ndarray) -> None:
    """In place: integer frame indices (>= 0) of the endless looped stream -> indices into
    `note.samples`: wrapped into the loop, and the frames before the loop end replaced by
    the seam. `scratch` is an integer array of the same shape."""
    loop = note.loop
    wrap_positions(indices, loop, scratch)
    # scratch = 1 where index >= end - seam, else 0 (integer arithmetic: a comparison
    # into an integer array would cast through an allocated buffer)
    np.subtract(indices, loop.end - loop.seam - 1, out=scratch)
    np.maximum(scratch, 0, out=scratch)
    np.minimum(scratch, 1, out=scratch)
    np.multiply(scratch, note.length - (loop.end - loop.seam), out=scratch)
    np.add(indices, scratch, out=indices)


def looped(note: RenderedNote, frames: int) -> np.ndarray:
    """The first `frames` frames of the note looped for ever (offline rendering)."""
    indices = np.arange(frames, dtype=np.intp)
    source_indices(indices, note, np.empty_like(indices))
    return note.samples[indices]


def check_sustain_mode(mode: str) -> str:
    """`mode` if it is one of `SUSTAIN_MODES`, else ValueError naming them."""
    if mode not in SUSTAIN_MODES:
        raise ValueError(f"sustain mode must be one of {', '.join(SUSTAIN_MODES)}, "
                         f"got {mode!r}")
    return mode


__all__ = ["DEFAULT_SUSTAIN_MODE", "Loop", "RenderedNote", "SUSTAIN_MODES",
           "check_sustain_mode", "find_loop", "loop_note", "looped", "make_note",
           "match_window", "source_indices", "steady_part", "wrap_positions"]
