"""Attack/release gain envelopes made of quadratic Bezier curves (GANSynth-Stereo's parameters).

Parameters (as in GANSynth-Stereo):

- ``attack_percent``, ``release_percent``: 0..100, the length of the attack and of the
  release in percent of the model's rendered note length ``L`` (``Model.num_samples``,
  4 s for the standard model). GANSynth-Stereo plays every note for exactly ``L``
  samples, so "percent of the note" and "percent of ``L``" are the same thing there.
- ``attack_slope``, ``release_slope``: 0..1; 0.5 is a straight line, higher changes
  faster (the attack rises sooner, the release falls sooner).

Slope mapping (GANSynth-Stereo): ``expand(s) = (2s)**2 / 2`` for ``s <= 0.5``, else
``1 - (2(1-s))**2 / 2``. The attack is the quadratic Bezier curve with control points
x = [0, 1-a, 1], y = [0, a, 1], ``a = expand(attack_slope)``; the release has
x = [0, r, 1], y = [1, r, 0], ``r = expand(1 - release_slope)``. Both curves are used
as functions of x (time), not of the curve parameter: x(t) is solved for t, then y(t)
is evaluated with the ``bezier`` package. For slope 0.5 the control point is the
midpoint of the chord, so the curve is exactly linear.

Semantics of a note (the same offline and live, and causal: everything is known at
note-on or at note-off, so the live server applies it as the note plays):

- ``L`` = the model's rendered note length (samples at the playing rate: 1 s for the
  embedded model, 4 s for Magenta's). The percentages are shares of ``L``, whatever
  the note's held length: ``A = round(attack_percent / 100 * L)``,
  ``R = round(release_percent / 100 * L)``, each at least ``F`` = `FADE_SECONDS` (5 ms),
  so that no note starts or stops with a click (attack 0 and release 0 mean "as short as
  clickless").
- ``d`` = held length (note-on to note-off, or to the sustain pedal's release), but at
  least ``H = min(A, 50 ms)`` (`SHORTEST_HOLD_SECONDS`): a drum pad sends its note-off
  with its note-on, a sequencer may send notes of length 0, and a note released at 0
  would be silent (its attack never rose); held ``H``, it reaches full level under any
  attack up to 50 ms, and a longer attack's first 50 ms. The release starts at ``d``: gain(t) = attack(t / A) for t < A, then 1, until t = d; from
  d on gain(t) = level(d) * release((t - d) / R), where level(d) is the gain reached at
  d. A note released during its attack fades from where it got to (no jump), so attack
  and release may add up to more than 100 %.
- Sustain ``loop`` (`gansynth_live.sustain`): the note's audio never runs out; it sounds
  for ``d + R`` samples.
- Sustain ``natural``: the rendered audio is played once; where it ends (``L``, or
  earlier when played faster) the gain also fades to 0 over the last ``F`` samples. The
  note sounds for ``min(d + R, L)`` samples. A release longer than what is left of the
  audio is cut short by the audio's end, never started early: no setting silences a note.

Real-time use: `Envelope` is immutable and holds lookup tables (each curve sampled on
a fixed grid of x); `BlockGain` owns scratch arrays sized for the largest audio block
and fills a caller's buffer with a voice's gains for the next block using only numpy
calls with ``out=`` arguments: no allocation, no locks.
"""
from __future__ import annotations

import math

import bezier
import numpy as np

TABLE_SIZE = 8193  # points per curve table (x = 0, 1/8192, ..., 1)
FADE_SECONDS = 0.005  # the shortest attack and release, and the fade where audio ends
SHORTEST_HOLD_SECONDS = 0.05  # the release starts no sooner (and no later than the attack's end)
DEFAULTS = {"attack_percent": 1.0, "attack_slope": 0.5,
            "release_percent": 25.0, "release_slope": 0.5}


def expand_slope(slope: float) -> float:
    """GANSynth-Stereo's slope remapping of `slope` in [0, 1] to a control value in [0, 1]."""
    if slope <= 0.5:
        return (2.0 * slope) ** 2 / 2.0
    return 1.0 - (2.0 * (1.0 - slope)) ** 2 / 2.0


def fade_frames(sample_rate: int) -> int:
    """`FADE_SECONDS` in samples at `sample_rate` (at least 1)."""
    return max(1, int(round(FADE_SECONDS * sample_rate)))


def _curve_as_function_of_x(nodes: np.ndarray, size: int) -> np.ndarray:
    """y at x = linspace(0, 1, size) of the quadratic Bezier curve with `nodes` (2 x 3).

    The x nodes must be [0, c, 1] with c in [0, 1], so x(t) = (1 - 2c) t^2 + 2c t is
    monotone on [0, 1] and has one root t(x); it is solved in closed form (the stable
    form 2x / (b + sqrt(b^2 + 4ax)), fine for a = 0) and y is evaluated at those t.
    """
    curve = bezier.Curve(np.asfortranarray(nodes, dtype=np.float64), degree=2)
    c = float(nodes[0, 1])
    x = np.linspace(0.0, 1.0, size)
    a, b = 1.0 - 2.0 * c, 2.0 * c
    root = np.sqrt(np.maximum(b * b + 4.0 * a * x, 0.0))
    denom = b + root
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(denom > 0.0, 2.0 * x / np.where(denom > 0.0, denom, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    points = curve.evaluate_multi(t)
    if not np.allclose(points[0], x, rtol=0.0, atol=1e-9):  # the solve must invert x(t)
        raise AssertionError("Bezier curve x(t) inversion failed")
    return np.ascontiguousarray(points[1], dtype=np.float64)


def _check(name: str, value: float, low: float, high: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {low:g}..{high:g}, got {value!r}") from None
    if not (low <= value <= high):  # also rejects NaN
        raise ValueError(f"{name} must be in {low:g}..{high:g}, got {value:g}")
    return value


class Envelope:
    """An attack/release envelope: validated parameters plus precomputed curve tables.

    Raises ValueError naming the parameter and its range for a bad value. Instances are
    immutable, so a voice can keep the one it started with while the user changes the
    envelope for later notes.

    Attributes:
        attack_table, release_table: float64 arrays of `TABLE_SIZE` values, the curve's y
            at x = i / (TABLE_SIZE - 1); attack goes 0 -> 1, release 1 -> 0.
    """

    __slots__ = ("attack_percent", "attack_slope", "release_percent", "release_slope",
                 "attack_table", "release_table", "_attack_diff", "_release_diff")

    def __init__(self, attack_percent: float = DEFAULTS["attack_percent"],
                 attack_slope: float = DEFAULTS["attack_slope"],
                 release_percent: float = DEFAULTS["release_percent"],
                 release_slope: float = DEFAULTS["release_slope"]):
        set_ = object.__setattr__
        set_(self, "attack_percent", _check("attack_percent", attack_percent, 0.0, 100.0))
        set_(self, "attack_slope", _check("attack_slope", attack_slope, 0.0, 1.0))
        set_(self, "release_percent", _check("release_percent", release_percent, 0.0, 100.0))
        set_(self, "release_slope", _check("release_slope", release_slope, 0.0, 1.0))
        a = expand_slope(self.attack_slope)
        r = expand_slope(1.0 - self.release_slope)
        attack = _curve_as_function_of_x(np.array([[0.0, 1.0 - a, 1.0], [0.0, a, 1.0]]),
                                         TABLE_SIZE)
        release = _curve_as_function_of_x(np.array([[0.0, r, 1.0], [1.0, r, 0.0]]),
                                          TABLE_SIZE)
        attack[0], attack[-1], release[0], release[-1] = 0.0, 1.0, 1.0, 0.0  # exact ends
        for name, table in (("attack_table", attack), ("release_table", release)):
            table.setflags(write=False)
            set_(self, name, table)
        # Forward differences (last one 0) for linear interpolation without a second gather.
        for name, table in (("_attack_diff", attack), ("_release_diff", release)):
            diff = np.zeros_like(table)
            diff[:-1] = np.diff(table)
            diff.setflags(write=False)
            set_(self, name, diff)

    def __setattr__(self, name, value):
        raise AttributeError("Envelope is immutable; make a new one")

    def __repr__(self) -> str:
        return (f"Envelope(attack_percent={self.attack_percent:g}, "
                f"attack_slope={self.attack_slope:g}, release_percent={self.release_percent:g}, "
                f"release_slope={self.release_slope:g})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Envelope) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash(tuple(self.params().values()))

    def params(self) -> dict[str, float]:
        """The four parameters by name (the CLI flag / OSC argument names)."""
        return {"attack_percent": self.attack_percent, "attack_slope": self.attack_slope,
                "release_percent": self.release_percent, "release_slope": self.release_slope}

    # The curves --------------------------------------------------------------------------

    def attack_curve(self, x) -> np.ndarray:
        """Attack gain at relative positions `x` (array-like, clipped to 0..1): 0 -> 1."""
        return _interp(self.attack_table, self._attack_diff, x)

    def release_curve(self, x) -> np.ndarray:
        """Release gain at relative positions `x` (array-like, clipped to 0..1): 1 -> 0."""
        return _interp(self.release_table, self._release_diff, x)

    # Note geometry (samples) ---------------------------------------------------------------

    def segment_lengths(self, rendered_length: int, sample_rate: int) -> tuple[int, int]:
        """(attack length A, release length R) in samples for notes `rendered_length` long
        at `sample_rate`: shares of the rendered length, each at least `fade_frames`."""
        rendered_length = int(rendered_length)
        if rendered_length <= 0:
            raise ValueError(f"rendered_length must be positive, got {rendered_length}")
        fade = fade_frames(sample_rate)
        attack = int(round(self.attack_percent / 100.0 * rendered_length))
        release = int(round(self.release_percent / 100.0 * rendered_length))
        return max(attack, fade), max(release, fade)

    def shortest_hold(self, attack_length: int, sample_rate: int) -> int:
        """H: the fewest samples a note is held, however soon its note-off comes."""
        return min(int(attack_length), int(round(SHORTEST_HOLD_SECONDS * sample_rate)))

    def release_start(self, held_length: int, attack_length: int, sample_rate: int) -> int:
        """d: where the release of a note held `held_length` samples starts."""
        return max(int(held_length), self.shortest_hold(attack_length, sample_rate))

    def sounding_length(self, held_length: int, rendered_length: int, sample_rate: int,
                        loop: bool, audio_frames: int | None = None) -> int:
        """Samples the note is heard for: d + R when it loops, else min(d + R, the audio's
        length: `audio_frames`, by default L)."""
        attack, release = self.segment_lengths(rendered_length, sample_rate)
        sounding = self.release_start(held_length, attack, sample_rate) + release
        if loop:
            return sounding
        return min(sounding, int(rendered_length if audio_frames is None else audio_frames))

    def level_at(self, position: int, attack_length: int) -> float:
        """Gain reached at `position` samples after note-on while the note is held."""
        if attack_length <= 0 or position >= attack_length:
            return 1.0
        if position <= 0:
            return 0.0
        x = position * (TABLE_SIZE - 1) / attack_length
        i = int(x)
        return float(self.attack_table[i]) + (x - i) * float(self._attack_diff[i])

    def note_gain(self, held_length: int, rendered_length: int, sample_rate: int,
                  loop: bool, audio_frames: int | None = None) -> np.ndarray:
        """The gain of a whole note: float64 array of `sounding_length(...)` samples.

        `held_length` is the note's duration in samples (note-on to note-off, >= 0),
        `rendered_length` the model's note length L at `sample_rate`, `loop` whether the
        note's audio loops (sustain loop) or ends (sustain natural) after `audio_frames`
        (default L; a note resampled to another pitch is shorter or longer). Computed by
        `BlockGain`, the code the live mixer runs, in one block.
        """
        rendered_length = int(rendered_length)
        audio_end = None if loop else int(rendered_length if audio_frames is None
                                          else audio_frames)
        n = self.sounding_length(held_length, rendered_length, sample_rate, loop, audio_end)
        attack, release = self.segment_lengths(rendered_length, sample_rate)
        out = np.empty(n, np.float64)
        if n:
            BlockGain(self, n, fade_frames(sample_rate)).fill(
                out, 0, n, attack, self.release_start(held_length, attack, sample_rate),
                release, audio_end=audio_end)
        return out


def _interp(table: np.ndarray, diff: np.ndarray, x) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0) * (len(table) - 1)
    idx = np.floor(x).astype(np.intp)
    return table[idx] + (x - idx) * diff[idx]


class BlockGain:
    """Allocation-free gain rendering for one voice's next block (the live mixer's tool).

    Owns scratch arrays for blocks of up to `max_frames`; `fill` writes gains into a
    caller's float64 (or float32) buffer using numpy ``out=`` calls only. One instance
    per mixer (not thread-safe); it can serve voices with different envelopes. `fade`
    is `fade_frames` at the playing rate: the fade where a note's audio ends.
    """

    __slots__ = ("envelope", "max_frames", "fade", "_ramp", "_x", "_frac", "_tmp", "_idx")

    def __init__(self, envelope: Envelope, max_frames: int, fade: int):
        if int(max_frames) <= 0:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        if int(fade) <= 0:
            raise ValueError(f"fade must be positive, got {fade}")
        self.envelope = envelope
        self.max_frames = int(max_frames)
        self.fade = int(fade)
        self._ramp = np.arange(self.max_frames, dtype=np.float64)
        self._x = np.empty(self.max_frames, np.float64)
        self._frac = np.empty(self.max_frames, np.float64)
        self._tmp = np.empty(self.max_frames, np.float64)
        self._idx = np.empty(self.max_frames, np.intp)

    def _lookup(self, table: np.ndarray, diff: np.ndarray, out: np.ndarray, first: float,
                count: int, length: int) -> None:
        """out[:count] = curve((first + i) / length), i = 0..count-1, by table lookup."""
        x, frac, tmp, idx = self._x[:count], self._frac[:count], self._tmp[:count], self._idx[:count]
        scale = (len(table) - 1) / length
        np.add(self._ramp[:count], first, out=x)
        np.multiply(x, scale, out=x)
        np.clip(x, 0.0, len(table) - 1, out=x)
        np.floor(x, out=frac)
        np.copyto(idx, frac, casting="unsafe")
        np.subtract(x, frac, out=frac)
        np.take(diff, idx, out=tmp, mode="clip")  # mode="raise" would buffer (allocate)
        np.multiply(tmp, frac, out=tmp)
        np.take(table, idx, out=x, mode="clip")
        np.add(x, tmp, out=out[:count])

    def fill(self, out: np.ndarray, position: int, count: int, attack_length: int,
             release_start: int | None, release_length: int,
             envelope: Envelope | None = None, audio_end: float | None = None) -> int:
        """Write the gains of samples position .. position+count-1 of a note into out[:count].

        Args:
            out: float buffer with at least `count` elements (written, never resized).
            position: samples since note-on of the first sample of the block.
            count: frames in the block (<= max_frames).
            attack_length, release_length: A and R (`Envelope.segment_lengths`).
            release_start: sample (since note-on) where the release starts (the note-off),
                or None while the note is held and its release is not known yet. A
                release start in a later block is fine.
            envelope: the voice's envelope (default: the one given at construction).
            audio_end: sample (since note-on) where the note's audio runs out (sustain
                natural; may be fractional when played at another rate), or None when
                it loops. The gain fades to 0 over the `fade` samples before it.

        Returns:
            The number of samples of the block that still sound (== count unless the
            note ends inside this block; 0 means the voice is finished). Samples past
            the end are set to 0.
        """
        env = envelope or self.envelope
        if count > self.max_frames:
            raise ValueError(f"block of {count} frames > max_frames {self.max_frames}")
        end = position + count
        held_end = end if release_start is None else min(end, release_start)
        # Held part: attack then sustain at 1.
        n_held = max(0, held_end - position)
        if n_held:
            n_attack = max(0, min(held_end, attack_length) - position)
            if n_attack:
                self._lookup(env.attack_table, env._attack_diff, out, position, n_attack,
                             attack_length)
            out[n_attack:n_held] = 1.0
        sounding = count
        if release_start is not None:
            # Release part: scaled by the level reached at release_start.
            rel_from = max(position, release_start)
            rel_to = min(end, release_start + release_length)
            n_rel = max(0, rel_to - rel_from)
            offset = rel_from - position
            if n_rel:
                level = env.level_at(release_start, attack_length)
                seg = out[offset:offset + n_rel]
                self._lookup(env.release_table, env._release_diff, seg,
                             rel_from - release_start, n_rel, release_length)
                if level != 1.0:
                    np.multiply(seg, level, out=seg)
            sounding = n_held + n_rel
        if audio_end is not None and audio_end - self.fade < end:
            # The audio's end: gain *= (audio_end - t) / fade, clipped to 0..1.
            sounding = min(sounding, max(0, int(math.ceil(audio_end - position))))
            tail = self._x[:count]
            np.subtract(audio_end - position, self._ramp[:count], out=tail)
            np.multiply(tail, 1.0 / self.fade, out=tail)
            np.clip(tail, 0.0, 1.0, out=tail)
            np.multiply(out[:count], tail, out=out[:count])
        out[sounding:count] = 0.0
        return sounding


def note_gain(held_length: int, rendered_length: int, sample_rate: int, loop: bool,
              envelope: Envelope | None = None) -> np.ndarray:
    """`Envelope.note_gain` with the default envelope when none is given."""
    return (envelope or Envelope()).note_gain(held_length, rendered_length, sample_rate, loop)


__all__ = ["BlockGain", "DEFAULTS", "Envelope", "FADE_SECONDS", "TABLE_SIZE", "expand_slope",
           "fade_frames", "note_gain"]
