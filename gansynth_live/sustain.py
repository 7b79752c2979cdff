"""Sustain: a loop in each rendered note, so that a note sounds for as long as it is held.

GANSynth renders fixed-length notes (1 s for the embedded model, 4 s for Magenta's). A
held note plays its rendered audio up to the loop's start, then repeats the loop
``[start, end)`` until it is released, as a sampler does. The loop is found once per
rendered note (`find_loop`), in the note's steady part: after the attack, before the
note's own release. Its length is chosen where the waveform before ``end`` best matches
the waveform before ``start`` (normalised cross-correlation over at least two pitch
periods, so the jump is pitch-period aligned), near the steady part's level, and long
(a short loop repeats audibly and pulls the pitch onto multiples of 1 / its length).

The loop is stored as its own copy, the *loop body*, after the note's frames
(`RenderedNote.samples`), so the note's audio stays untouched (``sustain natural``
plays it exactly). Two things make the body seamless:

- level: a note that decays within the loop would jump back up at every wrap (a
  re-attack); the body is multiplied by an exponential gain that cancels the decay of
  the line fitted to its level (at most `MAX_COMPENSATION_DB`; a loop that swells is
  left as it is), so a held note holds the level it had where the loop begins;
- the jump: the body's last `seam` frames are crossfaded into the frames before
  ``start``, so its end runs into its own beginning.

The looped stream is ``samples[0 : start]``, then the body for ever: `wrap_positions`
and `source_indices` turn positions in it into indices into `samples`; the live mixer
(allocation-free, with ``out=`` scratch) and offline rendering use the same two
functions. Every note carries its body whether or not it is ever held (0.4 to 1 s).

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
MIN_LOOP_SECONDS = 0.4      # shortest loop considered (a short loop pulls the pitch onto
                            # multiples of 1 / its length: 0.14-0.25 s put some 20 cents off)
MAX_LOOP_SECONDS = 1.0      # longest loop considered (longer loops repeat less audibly,
                            # but every note stores its loop body)
MAX_COMPENSATION_DB = 6.0   # the most a loop body's decay is evened out (12 dB held some
                            # notes 3-6 dB under their level: the loop began in a dip)
LEVEL_FRAME_SECONDS = 0.01  # frames of the level envelope that finds the steady part
RELEASE_DROP_DB = 6.0       # the steady part ends where the level stays this far below
                            # the sustain level: the note's own release
END_CANDIDATES = 8          # loop ends tried, spread over the steady part from its end
FINALISTS = 3               # loop lengths per end whose held level is measured exactly


class Loop(NamedTuple):
    """A loop in a note, in frames: ``[start, end)`` repeats; its last `seam` frames are
    crossfaded into the frames before `start`. `match` is the normalised
    cross-correlation of the two (1.0 = a perfect repeat)."""
    start: int
    end: int
    seam: int
    match: float

    def scaled(self, ratio: float, frames: int) -> "Loop":
        """The same loop in the note resampled by `ratio` (device rate / model rate) to
        `frames` frames (rounding never puts its end past them)."""
        end = min(int(round(self.end * ratio)), int(frames))
        start = max(0, end - int(round((self.end - self.start) * ratio)))
        seam = min(int(round(self.seam * ratio)), start, end - start)
        return Loop(start, end, seam, self.match)


class RenderedNote(NamedTuple):
    """A note ready to play: its frames, then its loop body.

    Attributes:
        samples: (length + loop length, channels) float32; ``samples[:length]`` is the
            note, the rest its loop body (see the module docstring).
        length: frames of the rendered note.
        loop: where it loops (`Loop`), in frames of the note.
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
    """(first, last) frame of a note's steady part, where its loop may lie: from two match
    windows after its loudest moment in the first quarter (the end of the attack) to
    where its level falls `RELEASE_DROP_DB` below the median level after the attack for
    good (the start of its release)."""
    frame = max(1, int(round(LEVEL_FRAME_SECONDS * sample_rate)))
    level = _level_db(np.asarray(mono, np.float64), frame)
    if len(level) < 4:
        return 0, len(mono)
    peak = int(np.argmax(level[:max(1, len(level) // 4)]))
    sustain = float(np.median(level[peak:]))
    loud = np.flatnonzero(level[peak:] >= sustain - RELEASE_DROP_DB)
    last = peak + (int(loud[-1]) + 1 if len(loud) else len(level) - peak)
    first = peak * frame + 2 * match_window(sample_rate, pitch)  # past the attack's peak
    return min(first, len(mono)), min(len(mono), last * frame)


def find_loop(audio: np.ndarray, sample_rate: int, pitch: float | None = None) -> Loop:
    """The loop of a rendered note (frames, channels): see the module docstring.

    `pitch` (MIDI) sets the match window to two pitch periods; None uses the minimum
    window. Any note of at least one frame gets a loop: when its steady part is too
    short to search, its second half loops (ValueError for no frames at all).
    """
    audio = np.asarray(audio, np.float32)
    mono = audio.mean(axis=1, dtype=np.float64) if audio.ndim == 2 else audio.astype(np.float64)
    total = len(mono)
    if not np.all(np.isfinite(mono)):
        raise ValueError("a note with NaN or infinite samples cannot loop")
    if total == 0:
        raise ValueError("an empty note has no loop")
    window = match_window(sample_rate, pitch)
    first, last = steady_part(mono, sample_rate, pitch)
    first = max(first, window)  # the window before a loop start lies inside the note
    min_loop = max(int(MIN_LOOP_SECONDS * sample_rate), 2 * window)
    max_loop = int(MAX_LOOP_SECONDS * sample_rate)
    if last - first < min_loop:  # no steady part to speak of: search the second half
        first, last = max(window, total // 2), total
    if last - first < min_loop:  # too short for any search: the second half loops
        start = total // 2
        return Loop(start, total, min(window, start, (total - start) // 2), 0.0)
    levels = _LevelTrend(mono, max(1, window // 2))
    sustain_db = 10.0 * np.log10(np.mean(np.square(mono[first:last])) + 1e-24)
    period = None if pitch is None else _period(mono[first:last], sample_rate, pitch)
    best: tuple[float, int, int, float] | None = None
    step = max(1, (last - first - min_loop) // END_CANDIDATES)
    for k in range(END_CANDIDATES):
        end = last - k * step
        longest = min(max_loop, end - first)
        if longest < min_loop:
            break
        scores, matches, held_penalty = _score_lengths(mono, end, window, min_loop, longest,
                                                       levels, sustain_db, period)
        # The held level was estimated; for the best few, measure it on the flattened body.
        for i in np.argsort(scores)[-FINALISTS:]:
            start = end - (min_loop + int(i))
            body = mono[start:end] * _flattening_gain(mono[start:end], levels.frame)
            held_db = 10.0 * np.log10(np.mean(np.square(body)) + 1e-24)
            score = scores[i] + held_penalty[i] - _held_penalty(held_db, sustain_db)
            if best is None or score > best[0]:
                best = (float(score), end, min_loop + int(i), float(matches[i]))
    _, end, length, match = best
    return Loop(end - length, end, min(window, end - length), match)


class _LevelTrend:
    """Least-squares lines through a signal's level (dB per `frame`-sample frame) over any
    stretch, each in O(1) from prefix sums: what a loop body's level does, and what
    `_flattening_gain` makes of it."""

    def __init__(self, mono: np.ndarray, frame: int):
        self.frame = frame
        level = _level_db(mono, frame)
        x = np.arange(len(level), dtype=np.float64)
        self._sums = [np.concatenate(([0.0], np.cumsum(v)))
                      for v in (np.ones_like(x), x, x * x, level, x * level)]

    def _totals(self, first: np.ndarray, last: np.ndarray) -> list[np.ndarray]:
        a = np.clip(-(-np.asarray(first) // self.frame), 0, len(self._sums[0]) - 1)
        b = np.clip(np.asarray(last) // self.frame, a, len(self._sums[0]) - 1)
        return [s[b] - s[a] for s in self._sums] + [a]

    def fit(self, first, last) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(level at `first` in dB, change in dB from `first` to `last`, mean level in dB)
        of the lines fitted to samples [first, last) (arrays of stretches welcome)."""
        n, sx, sxx, sy, sxy, a = self._totals(first, last)
        n = np.maximum(n, 1)
        denominator = n * sxx - sx * sx
        slope = np.where(denominator > 0,
                         (n * sxy - sx * sy) / np.where(denominator > 0, denominator, 1), 0.0)
        at_first = sy / n + slope * (np.asarray(first) / self.frame - 0.5 - sx / n)
        return at_first, slope * (np.asarray(last) - np.asarray(first)) / self.frame, sy / n


def _period(mono: np.ndarray, sample_rate: int, pitch: float) -> float:
    """The note's pitch period in samples as played (GANSynth's notes are often some
    cents off): the autocorrelation peak within 6 % of `pitch`'s period."""
    nominal = sample_rate / (440.0 * 2.0 ** ((pitch - 69.0) / 12.0))
    lo, hi = int(nominal * 0.94), int(math.ceil(nominal * 1.06)) + 1
    if len(mono) < 2 * hi or lo < 2:
        return nominal
    size = 1 << (2 * len(mono) - 1).bit_length()
    spectrum = np.fft.rfft(mono, size)
    corr = np.fft.irfft(spectrum * np.conj(spectrum), size)[:hi + 2]
    corr /= (len(mono) - np.arange(len(corr)))  # unbiased
    k = lo + int(np.argmax(corr[lo:hi]))
    y0, y1, y2 = corr[k - 1], corr[k], corr[k + 1]
    bend = y0 - 2 * y1 + y2
    return float(k + (0.5 * (y0 - y2) / bend if bend < 0 else 0.0))


def _score_lengths(mono: np.ndarray, end: int, window: int, shortest: int, longest: int,
                   levels: _LevelTrend, sustain_db: float, period: float | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of loop lengths shortest..longest ending at `end`, their matches, and the
    part of the scores that the estimated held level took off.

    match = normalised cross-correlation of the `window` frames before `end` with those
    before `end - length`; the score subtracts a penalty per dB (beyond 0.5) the loop
    would hold the note away from its steady part's level (the body is flattened to the
    level its trend line has at its start), a steep one per dB of trend beyond what the
    flattening may undo, and one per dB (beyond 1) the two windows still differ in level
    after it (a jump at every wrap), and adds a bonus for length (a long loop repeats less
    audibly, and a short one pulls the pitch onto multiples of 1 / its length).
    """
    template = mono[end - window:end]
    lo = end - longest - window  # segment holding every window before a candidate start
    segment = mono[lo:end - shortest]
    n = len(segment) + window
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[:len(segment) - window + 1]  # corr[j] = <segment[j:j+window], template>
    energy = np.concatenate(([0.0], np.cumsum(np.square(segment))))
    # Differences of a running sum lose windows far quieter than the whole: floor them
    # at a millionth of the mean window (near silence must not look like a match).
    floor = 1e-6 * energy[-1] * window / len(segment) + 1e-24
    window_energy = np.maximum(energy[window:] - energy[:-window], floor)
    template_energy = max(float(np.dot(template, template)), floor)
    match = np.clip(corr / np.sqrt(window_energy * template_energy), -1.0, 1.0)
    # Index j is a loop start of lo + j + window, i.e. a length of end - (lo + j + window).
    match = match[::-1]  # now index i is the length shortest + i
    lengths = np.arange(shortest, shortest + len(match))
    at_start_db, trend_db, mean_db = levels.fit(end - lengths, np.full(len(lengths), end))
    # Flattening lifts the loop's level from its mean to its trend's start: its power
    # level (what an RMS meter shows) rises by as much.
    loop_energy = energy[-1] - energy[window:][::-1]  # start .. end - shortest
    tail = mono[end - shortest:end]
    loop_db = 10.0 * np.log10((loop_energy + float(np.dot(tail, tail))) / lengths + 1e-24)
    lift = np.where(trend_db < 0, np.maximum(at_start_db - mean_db, 0.0), 0.0)
    held_penalty = _held_penalty(loop_db + lift, sustain_db)
    too_steep = np.maximum(0.0, -trend_db - MAX_COMPENSATION_DB)
    # The wrap joins the window before the end, raised by the flattening, to the window
    # before the start: what they still differ by is a jump at every wrap.
    start_db = 10.0 * np.log10(window_energy[::-1] / window)
    end_db = 10.0 * np.log10(template_energy / window) - np.clip(
        trend_db, -MAX_COMPENSATION_DB, 0.0)
    jump = np.abs(start_db - end_db)
    score = (match - held_penalty - 0.25 * too_steep
             - 0.25 * np.maximum(0.0, jump - 1.0) + 1.0 * lengths / lengths[-1])
    if period is not None:  # a whole number of periods: the loop does not bend the pitch
        score += 0.2 * np.cos(2.0 * np.pi * lengths / period)
    return score, match, held_penalty


def _held_penalty(held_db, sustain_db: float):
    """What a loop holding the note at `held_db` costs, against its steady part's level."""
    return 0.6 * np.maximum(0.0, np.abs(held_db - sustain_db) - 0.5)


def _flattening_gain(mono: np.ndarray, frame: int) -> np.ndarray:
    """Per-sample gain that cancels the decay of `mono` (a loop body): the line fitted to
    its level (`_LevelTrend`: dB per `frame` samples) inverted, 0 dB at the start, at
    most `MAX_COMPENSATION_DB` at the end; 1 where the level rises (a swell wraps to a
    softer start: a dip, not a re-attack). A fit, not the two ends' levels: a GANSynth
    note's level wanders several dB from one 20 ms frame to the next."""
    n = len(mono)
    frame = max(1, min(frame, n // 4))
    _, trend, _ = _LevelTrend(mono, frame).fit(0, n)
    rise = float(np.clip(-trend, 0.0, MAX_COMPENSATION_DB))
    return 10.0 ** (rise * np.arange(n) / max(n, 1) / 20.0)


def make_note(audio: np.ndarray, loop: Loop) -> RenderedNote:
    """A `RenderedNote` of `audio` (frames, channels) with `loop`'s body after it.

    The body is ``audio[start:end]`` times a gain that cancels its level trend
    (`_flattening_gain`), its last `seam` frames crossfaded into the frames before
    `start`: linearly (equal gain) when they match well, so a repeat keeps its level;
    with equal power when they do not, so uncorrelated sound does not dip.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = audio[:, np.newaxis]
    length = audio.shape[0]
    start, end, seam, _ = loop
    if not (0 <= seam <= start < end <= length and seam <= end - start):
        raise ValueError(f"loop {tuple(loop)} does not fit a note of {length} frames")
    body = audio[start:end].astype(np.float64)
    body *= _flattening_gain(body.mean(axis=1), max(1, seam // 2))[:, np.newaxis]
    ramp = (np.arange(seam, dtype=np.float64) + 0.5) / max(seam, 1)
    if loop.match >= 0.5:
        fade_in, fade_out = ramp, 1.0 - ramp
    else:
        fade_in, fade_out = np.sin(0.5 * np.pi * ramp), np.cos(0.5 * np.pi * ramp)
    if seam:
        body[-seam:] = (body[-seam:] * fade_out[:, np.newaxis]
                        + audio[start - seam:start] * fade_in[:, np.newaxis])
    samples = np.concatenate([audio, body.astype(np.float32)])
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
    `note.samples`: wrapped into the loop, and the loop read from its body. `scratch` is
    an integer array of the same shape."""
    loop = note.loop
    wrap_positions(indices, loop, scratch)
    # scratch = 1 where index >= start, else 0 (integer arithmetic: a comparison into an
    # integer array would cast through an allocated buffer)
    np.subtract(indices, loop.start - 1, out=scratch)
    np.maximum(scratch, 0, out=scratch)
    np.minimum(scratch, 1, out=scratch)
    np.multiply(scratch, note.length - loop.start, out=scratch)
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
