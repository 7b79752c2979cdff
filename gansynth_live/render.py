"""Offline rendering: `gansynth-generate` turns a MIDI file (or nothing) into WAV files.

    gansynth-generate --ckpt_dir MODEL --output_dir OUT --midi_file song.mid \\
        [--batch_size 8] [--secs_per_instrument 6] [--seed N] [--sustain loop|natural] \\
        [--attack_percent 1 --attack_slope 0.5 --release_percent 25 --release_slope 0.5] \\
        [--max_resample 12 | --skip_missing] [--octave_shift] \\
        [--ganspace c1,c2,... | --ganspace_at TIME:c1,c2,... ...] [--ganspace_only]

With a MIDI file: one clip, `generated_clip.wav`, in which the timbre moves through the
piece (a new random instrument every `secs_per_instrument` seconds, each note's latent
vector slerped between its two neighbours by its start time), every note shaped by the
Bezier envelope of `gansynth_live.envelope` and scaled by velocity / 127. The note rules
are the live server's: the envelope's percentages are shares of the model's note length,
the release starts at the note-off, and with sustain ``loop`` (the default) a note held
longer than the model's note repeats a loop of its rendered audio (`gansynth_live.sustain`)
until its note-off and release; with ``natural`` it plays the rendered audio once. A pitch
the model lacks is made from the nearest pitch it has, resampled (`plan_pitch`).
Without one: `--num_notes` random notes at pitches drawn from the model's training
distribution, each its own `generated_<i>.wav` (Magenta's behaviour).
Either way `latents.npz` holds every latent vector used; `--latents latents.npz`
renders them again (exactly, with the same batch size).

GANSpace timbre (`gansynth_live.ganspace`): `--ganspace c1,c2,...` moves every note along
the model's directions, `--ganspace_at TIME:c1,c2,...` (repeated) along a path through
the piece (`gansynth_live.timbre_path`); each note edits its latent by the coefficients
at its start, or with `--ganspace_only` is the pure coefficient point.

Bad input is one error line, found before the slow parts: the arguments are parsed, the
output directory probed and the MIDI file read and checked against the limits below
(`MAX_PIECE_SECONDS`, `MAX_NOTES`, `MAX_INSTRUMENTS`) before TensorFlow is imported and
the model loaded, so `--help` and a bad file answer in about a second.

Also runnable as `python -m gansynth_live.render`.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence, TextIO

import numpy as np
import soundfile as sf
import soxr

from gansynth_live.envelope import DEFAULTS as ENVELOPE_DEFAULTS
from gansynth_live.envelope import Envelope
from gansynth_live.ganspace import check_coefficients
from gansynth_live.latent import slerp
from gansynth_live.midi import (MAX_RESAMPLE, MidiFileError, MidiScore, Note, nearest_pitch,
                                read_midi)
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.user_files import npz_array_bytes
from gansynth_live.validation import MAX_SEED, flag, integer, number
from gansynth_live.sustain import (DEFAULT_SUSTAIN_MODE, SUSTAIN_MODES, check_sustain_mode,
                                   loop_note, looped)
from gansynth_live.timbre_path import TimbrePath, parse_coefficients, parse_point

if TYPE_CHECKING:  # the model imports TensorFlow: only once the arguments are checked
    from gansynth_live.model import Model

PROG = "gansynth-generate"
CLIP_FILE = "generated_clip.wav"
LATENTS_FILE = "latents.npz"
MAX_VELOCITY = 127.0

# What a MIDI file or the flags may make a render allocate, checked before it is: the mix
# is held in memory (4 bytes x channels x sample rate per second: 230 MB for an hour of
# 16 kHz mono), each note keeps its latent vector, each instrument its anchor.
MAX_PIECE_SECONDS = 3600.0
MAX_NOTES = 100_000
MAX_INSTRUMENTS = 100_000
MAX_RANDOM_NOTES = 10_000  # 640 MB of 1 s notes at 16 kHz, 2.6 GB of Magenta's 4 s ones
MAX_LATENTS_BYTES = 256 * 2**20  # a --latents file's arrays, read from their headers
PROGRESS_INTERVAL_S = 10.0  # a progress line this often when stderr is not a terminal


class RenderError(Exception):
    """Bad input to the renderer (the message is shown to the user as is)."""


def load_model(path: os.PathLike | str | None) -> Model:
    """`gansynth_live.load_model`, imported here so that TensorFlow loads only when a
    model is needed (after the arguments, the output directory and the MIDI file passed).

    The model directory is user input: whatever a damaged one makes the loader raise is
    an error about that directory (a ModelLoadError already names it), never a traceback.
    """
    from gansynth_live.model_dir import load_model as load

    try:
        return load(path)
    except ValueError:  # ModelLoadError, and configs refused by their own checks
        raise
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise RenderError(f"cannot load model {path or 'the embedded default'}: "
                          f"{type(e).__name__}: {e}") from None


# Timbre schedule ------------------------------------------------------------------------

def anchor_times(end: float, secs_per_instrument: float) -> np.ndarray:
    """Times (s) of the random instruments: 0, spi, 2 spi, ... up to the first >= `end`.

    Returns max(1, ceil(end / spi)) + 1 times, so there are always at least two anchors
    and every time in [0, end] lies between two of them (no division by zero for
    pieces shorter than 2 * spi, unlike Magenta's get_random_instruments).
    """
    n = instrument_count(end, secs_per_instrument)
    return np.arange(n, dtype=np.float64) * secs_per_instrument


def instrument_count(end: float, secs_per_instrument: float) -> int:
    """How many anchors `anchor_times` makes; ValueError past `MAX_INSTRUMENTS`."""
    if not (secs_per_instrument > 0 and math.isfinite(secs_per_instrument)):
        raise ValueError(f"secs_per_instrument must be a positive number, "
                         f"got {secs_per_instrument}")
    n = max(1, math.ceil(max(0.0, end) / secs_per_instrument)) + 1
    if n > MAX_INSTRUMENTS:
        raise ValueError(f"--secs_per_instrument {secs_per_instrument:g} over {end:.1f} s "
                         f"makes {n:,} instruments; at most {MAX_INSTRUMENTS:,}")
    return n


def check_piece(notes: Sequence[Note]) -> None:
    """Refuse (RenderError) more notes or a longer piece than a render may hold."""
    if len(notes) > MAX_NOTES:
        raise RenderError(f"{len(notes):,} notes; gansynth-generate renders at most "
                          f"{MAX_NOTES:,}")
    end = max((n.end for n in notes), default=0.0)
    if end > MAX_PIECE_SECONDS:
        raise RenderError(f"the notes last until {_duration(end)}; gansynth-generate renders "
                          f"at most {_duration(MAX_PIECE_SECONDS)} (a wrong tempo or time "
                          f"division, or a note never switched off?)")


def _duration(seconds: float) -> str:
    """'3,601 s (1 h)', '33,554,430 s (388 days)': for an error message."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds:,.0f} s ({seconds / size:.3g} {unit})"
    return f"{seconds:,.0f} s"


def note_latents(starts: Sequence[float], times: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Each note's latent vector: the slerp of the two anchors around its start time.

    Args:
        starts: note start times (s), shape (N,).
        times: increasing anchor times (s), shape (K,), K >= 1.
        anchors: anchor vectors (K, D).

    Returns:
        float32 (N, D). Times before the first / after the last anchor take that anchor.
    """
    starts = np.asarray(starts, np.float64).reshape(-1)
    times = np.asarray(times, np.float64).reshape(-1)
    anchors = np.asarray(anchors)
    if anchors.ndim != 2 or len(anchors) != len(times) or len(times) == 0:
        raise ValueError(f"need K >= 1 anchor times and (K, D) anchors, got {times.shape} "
                         f"and {anchors.shape}")
    if np.any(np.diff(times) <= 0):
        raise ValueError("anchor times must be strictly increasing")
    if len(times) == 1:
        return np.repeat(anchors.astype(np.float32), len(starts), axis=0)
    k = np.clip(np.searchsorted(times, starts, side="right") - 1, 0, len(times) - 2)
    frac = np.clip((starts - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0)
    return slerp(anchors[k], anchors[k + 1], frac).astype(np.float32)


# Notes ----------------------------------------------------------------------------------

def fit_pitch(pitch: int, vocabulary: Sequence[int], octave_shift: bool) -> int | None:
    """`pitch` if the model has it; else, with `octave_shift`, the nearest octave of it
    that the model has (ties go down); else None."""
    vocab = set(vocabulary)
    if pitch in vocab:
        return pitch
    if not octave_shift:
        return None
    candidates = [p for p in vocab if (p - pitch) % 12 == 0]
    if not candidates:
        return None
    return min(candidates, key=lambda p: (abs(p - pitch), p))


class PitchPlan(NamedTuple):
    """How a MIDI pitch is played: generate `model_pitch`, then resample the audio by
    `resample` semitones (0: play it as generated; +n: n semitones higher)."""
    model_pitch: int
    resample: int


def plan_pitch(pitch: int, vocabulary: Sequence[int], *, octave_shift: bool = False,
               max_resample: int = MAX_RESAMPLE, skip_missing: bool = False
               ) -> PitchPlan | None:
    """How to play `pitch` with a model whose pitches are `vocabulary`, or None (skip).

    In this order: the pitch itself if the model has it; with `octave_shift`, the
    nearest octave of it the model has (`fit_pitch`); unless `skip_missing`, the
    nearest pitch the model has, resampled, if it is at most `max_resample` semitones
    away (ties go to the lower pitch, played faster, as the live server's stand-ins do).
    """
    fitted = fit_pitch(pitch, vocabulary, octave_shift)
    if fitted is not None:
        return PitchPlan(fitted, 0)
    if skip_missing or max_resample <= 0:
        return None
    nearest = nearest_pitch(pitch, vocabulary, max_resample)
    return None if nearest is None else PitchPlan(nearest, int(pitch - nearest))


def describe_pitches(pitches: Sequence[int]) -> str:
    """The model's pitches in words: "24..84", "48..60, 64" or, for many separate runs,
    "31 pitches from 24 to 84"."""
    runs: list[list[int]] = []
    for p in sorted(pitches):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    if len(runs) > 4:
        return f"{len(pitches)} pitches from {runs[0][0]} to {runs[-1][1]}"
    return ", ".join(f"{a}..{b}" if b > a else f"{a}" for a, b in runs)


def resample_semitones(audio: np.ndarray, sample_rate: int, semitones: int) -> np.ndarray:
    """(frames, channels) audio played `semitones` higher (faster; lower and slower for a
    negative shift): resampled with soxr from `sample_rate` to
    sample_rate / 2**(semitones / 12) samples per second, to be played at `sample_rate`."""
    audio = np.asarray(audio, np.float32)
    if semitones == 0:
        return audio
    out = soxr.resample(audio, sample_rate, sample_rate / 2.0 ** (semitones / 12.0),
                        quality="HQ")
    return np.ascontiguousarray(np.reshape(out, (-1, audio.shape[1])), np.float32)


@dataclasses.dataclass
class RenderResult:
    """What a render made.

    Attributes:
        audio: (samples, channels) float32 mix (MIDI mode) -- or a list of per-note
            (num_samples, channels) arrays in random mode.
        sample_rate: the model's rate.
        note_z: (N, D) float32 latent vector of every rendered note.
        note_pitch: (N,) pitches generated (after octave shifting; the model pitch a
            resampled note is made from).
        notes: the rendered notes (MIDI mode; start/end in seconds, source pitch).
        anchors, anchor_times: the timbre schedule (MIDI mode).
        gain: the factor the mix was multiplied by to avoid clipping (1.0 if none).
        note_resample: (N,) semitones each note's audio was resampled by (MIDI mode).
        sustain: the sustain mode (MIDI mode).
        resampled, shifted, skipped_out_of_range: note counts: made from the nearest
            model pitch by resampling, moved by octaves, skipped (no model pitch to make
            them from).
        largest_resample, largest_octave_shift: the largest resampling (semitones,
            absolute) and octave shift (octaves, absolute) used.
        timbre, ganspace_only: the GANSpace timbre path and whether its notes were pure
            coefficient points (else edits of their latents); None without one.
        note_ganspace: (N, k) float32 GANSpace coefficients of every note, or None.
    """

    audio: np.ndarray | list
    sample_rate: int
    note_z: np.ndarray
    note_pitch: np.ndarray
    notes: list[Note] = dataclasses.field(default_factory=list)
    anchors: np.ndarray | None = None
    anchor_times: np.ndarray | None = None
    gain: float = 1.0
    skipped_out_of_range: int = 0
    shifted: int = 0
    resampled: int = 0
    largest_resample: int = 0
    largest_octave_shift: int = 0
    note_resample: np.ndarray | None = None
    sustain: str = DEFAULT_SUSTAIN_MODE
    timbre: TimbrePath | None = None
    ganspace_only: bool = False
    note_ganspace: np.ndarray | None = None


class Progress:
    """Notes generated out of `total`, on `stream` (stderr): a tqdm bar on a terminal;
    anywhere else (a log file, a pipe, a batch job) a line every `PROGRESS_INTERVAL_S`
    seconds with the elapsed time and an estimate of what is left, and a last line if
    any was printed. Nothing when not `enabled`."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.start = self.last_line = time.monotonic()
        self.lines = 0
        self.enabled = enabled and total > 0
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="note", desc="generating", file=self.stream,
                            leave=False)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        if self.enabled and (now - self.last_line >= PROGRESS_INTERVAL_S
                             or (self.done >= self.total and self.lines)):
            self.last_line = now
            self.lines += 1
            elapsed = now - self.start
            left = (f", about {_clock(elapsed / self.done * (self.total - self.done))} left"
                    if 0 < self.done < self.total else "")
            print(f"{PROG}: generated {self.done}/{self.total} notes "
                  f"({100 * self.done // self.total}%), {_clock(elapsed)} elapsed{left}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    """0:07, 3:22, 1:02:03."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _edited(model: Model, z: np.ndarray, pitches: np.ndarray, coefficients: np.ndarray
            ) -> np.ndarray:
    """The notes of latents `z` edited by their rows of `coefficients`. A row of zeros is
    the latent's own note: the plain graph makes it so bit for bit, whatever kernels the
    edit's graph would run on a device."""
    edited = coefficients.any(axis=1)
    if not edited.any():
        return model.generate(z, pitches)
    if edited.all():
        return model.generate(z, pitches, ganspace=coefficients)
    audio = np.empty((len(z), model.num_samples, model.channels), np.float32)
    audio[~edited] = model.generate(z[~edited], pitches[~edited])
    audio[edited] = model.generate(z[edited], pitches[edited], ganspace=coefficients[edited])
    return audio


def _generate_unique(model: Model, z: np.ndarray, pitches: np.ndarray, batch_size: int,
                     consume: Callable[[int, np.ndarray], None], progress: bool,
                     coefficients: np.ndarray | None = None, ganspace_only: bool = False
                     ) -> None:
    """Generate every distinct note once, `batch_size` at a time, calling
    consume(index_of_the_unique_item_in_input_order, audio (num_samples, channels)).

    With `coefficients` ((N, k) GANSpace coefficients) each note is its latent edited by
    its row, or with `ganspace_only` the pure coefficient point (its latent unused).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.max_batch = batch_size
    shown = Progress(len(z), progress)
    try:
        for begin in range(0, len(z), batch_size):
            batch = slice(begin, begin + batch_size)
            if coefficients is None:
                audio = model.generate(z[batch], pitches[batch])
            elif ganspace_only:
                audio = model.generate(None, pitches[batch], ganspace=coefficients[batch])
            else:
                audio = _edited(model, z[batch], pitches[batch], coefficients[batch])
            for offset, note_audio in enumerate(audio):
                consume(begin + offset, note_audio)
            shown.update(len(audio))
    finally:
        shown.close()


def render_midi(model: Model, notes: Sequence[Note], *, envelope: Envelope | None = None,
                anchors: np.ndarray | None = None, times: np.ndarray | None = None,
                seed: int | None = None, secs_per_instrument: float = 6.0,
                batch_size: int = 8, sustain: str = DEFAULT_SUSTAIN_MODE,
                octave_shift: bool = False, max_resample: int = MAX_RESAMPLE,
                skip_missing: bool = False, normalize: bool = False,
                progress: bool = False, timbre: TimbrePath | None = None,
                ganspace_only: bool = False) -> RenderResult:
    """Render `notes` with `model` into one mix.

    Args:
        model: the generator.
        notes: notes in seconds (e.g. `read_midi(...).notes`). A pitch the model lacks is
            made by `plan_pitch`: moved by octaves (`octave_shift`), else resampled from
            the nearest model pitch (up to `max_resample` semitones), else skipped
            (counted); `skip_missing` skips instead of resampling.
        envelope: attack/release shape (default `Envelope()`); its rules are
            `gansynth_live.envelope`'s, the live server's.
        anchors, times: the timbre schedule; when None, ``anchor_times(end, spi)`` with
            anchors ``model.random_z(len(times), seed)``.
        batch_size: notes per generator call.
        sustain: "loop" (a note sounds until its note-off plus its release, repeating the
            loop of its rendered audio, `gansynth_live.sustain`) or "natural" (the
            rendered audio once).
        normalize: peak-normalise the mix to 1.0 always (otherwise only if it would clip).
        timbre: a GANSpace timbre path: each note's latent is edited by the GANSpace
            coefficients at its start (`TimbrePath.at`), or with `ganspace_only` the note
            is that pure coefficient point. Needs `model.ganspace`.

    Returns:
        RenderResult with audio (samples, channels) float32; its length is
        max(note start + sounding length), so the last note always fits.

    Raises RenderError when no note is playable, or when the notes are more or last
    longer than a render may hold (`check_piece`: MAX_NOTES, MAX_PIECE_SECONDS).
    """
    envelope = envelope or Envelope()
    check_sustain_mode(sustain)
    if ganspace_only and timbre is None:
        raise ValueError("ganspace_only needs a timbre path")
    loop = sustain == "loop"
    max_resample = int(max_resample)
    if max_resample < 0:
        raise ValueError(f"max_resample must be >= 0, got {max_resample}")
    sr, length = model.sample_rate, model.num_samples
    kept, plans, skipped = [], [], 0
    for note in notes:
        plan = plan_pitch(note.pitch, model.pitches, octave_shift=octave_shift,
                          max_resample=max_resample, skip_missing=skip_missing)
        if plan is None:
            skipped += 1
            continue
        kept.append(note)
        plans.append(plan)
    if not kept:
        raise RenderError(f"no playable notes: {len(notes)} notes, {skipped} not among the "
                          f"model's pitches ({describe_pitches(model.pitches)})"
                          + ("" if skip_missing else
                             f" nor within {max_resample} semitones of one"))
    check_piece(kept)  # before the mix, the latent vectors and the anchors are allocated
    end = max(n.end for n in kept)
    if anchors is None:
        times = anchor_times(end, secs_per_instrument)
        anchors = model.random_z(len(times), seed)
    z = note_latents([n.start for n in kept], times, anchors)
    coefficients = None if timbre is None else timbre.at([n.start for n in kept])
    pitch_arr = np.asarray([p.model_pitch for p in plans], np.int32)
    resample = np.asarray([p.resample for p in plans], np.int32)
    octaves = [abs(p.model_pitch - n.pitch) // 12 for p, n in zip(plans, kept)
               if p.resample == 0 and p.model_pitch != n.pitch]
    resampled = resample[resample != 0]

    # Sample geometry of every note, then a buffer that fits the last one. A note played
    # once ends with its audio, whose length a resampling changes (longer when played
    # lower): the bound leaves a frame for rounding, and the mix is trimmed to the end
    # of the last note placed.
    starts = np.array([int(round(n.start * sr)) for n in kept], np.int64)
    helds = np.array([max(0, int(round(n.end * sr)) - s) for n, s in zip(kept, starts)], np.int64)
    sounding = np.array([envelope.sounding_length(h, length, sr, loop=True) for h in helds],
                        np.int64)
    if not loop:
        audio_bound = np.ceil(length / 2.0 ** (resample / 12.0)).astype(np.int64) + 1
        sounding = np.minimum(sounding, audio_bound)
    mix = np.zeros((int(np.max(starts + sounding)), model.channels), np.float32)
    written = 0

    # Generate each distinct (latent, pitch, coefficients) once (a pure coefficient point
    # has no latent); place every note that uses it.
    keys: dict[tuple[bytes, int, bytes], int] = {}
    users: list[list[int]] = []
    for i in range(len(kept)):
        key = (b"" if ganspace_only else z[i].tobytes(), int(pitch_arr[i]),
               b"" if coefficients is None else coefficients[i].tobytes())
        if key not in keys:
            keys[key] = len(users)
            users.append([])
        users[keys[key]].append(i)
    unique = [u[0] for u in users]

    def place(u: int, audio: np.ndarray) -> None:
        nonlocal written
        sources: dict[int, object] = {}  # resampling -> the audio (natural) or looped note
        for i in users[u]:
            shift = int(resample[i])
            if shift not in sources:
                played = resample_semitones(audio, sr, shift)
                sources[shift] = (loop_note(played, sr, int(pitch_arr[i]) + shift)
                                  if loop else played)
            source = sources[shift]
            held = int(helds[i])
            if loop:
                gain = envelope.note_gain(held, length, sr, loop=True)
                samples = looped(source, len(gain))
            else:
                gain = envelope.note_gain(held, length, sr, loop=False,
                                          audio_frames=len(source))
                samples = source[:len(gain)]
            n = len(gain)
            if n == 0:
                continue
            g = (gain * (kept[i].velocity / MAX_VELOCITY)).astype(np.float32)
            mix[starts[i]:starts[i] + n] += samples * g[:, np.newaxis]
            written = max(written, int(starts[i]) + n)

    _generate_unique(model, z[unique], pitch_arr[unique], batch_size, place, progress,
                     None if coefficients is None else coefficients[unique], ganspace_only)
    mix, gain = _normalized(mix[:written], normalize)
    return RenderResult(mix, sr, z, pitch_arr, kept, np.asarray(anchors, np.float32),
                        np.asarray(times, np.float64), gain,
                        skipped_out_of_range=skipped, shifted=len(octaves),
                        resampled=len(resampled),
                        largest_resample=int(np.max(np.abs(resampled), initial=0)),
                        largest_octave_shift=max(octaves, default=0),
                        note_resample=resample, sustain=sustain, timbre=timbre,
                        ganspace_only=ganspace_only, note_ganspace=coefficients)


def render_random(model: Model, num_notes: int, *, seed: int | None = None,
                  z: np.ndarray | None = None, pitches: np.ndarray | None = None,
                  batch_size: int = 8, normalize: bool = False, progress: bool = False,
                  timbre: TimbrePath | None = None, ganspace_only: bool = False
                  ) -> RenderResult:
    """`num_notes` random notes, each its own clip (Magenta's no-MIDI behaviour).

    z ~ N(0, 1) and pitches drawn from the model's training pitch distribution, both
    from `seed`, unless `z` and `pitches` are given. audio is a list of
    (num_samples, channels) arrays, unshaped (no envelope), each normalised only if
    asked (`normalize`); model output never clips. `timbre`, `ganspace_only`: as
    `render_midi`'s, every note taking the path's coefficients at time 0 (random notes
    have no times: `--ganspace` makes a path of one point).
    """
    if ganspace_only and timbre is None:
        raise ValueError("ganspace_only needs a timbre path")
    if z is None:
        if num_notes < 1:
            raise ValueError(f"num_notes must be >= 1, got {num_notes}")
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((num_notes, model.latent_size)).astype(np.float32)
        counts = np.array([model.pitch_counts.get(p, 0) for p in model.pitches], np.float64)
        if counts.sum() <= 0:
            counts[:] = 1.0
        pitches = rng.choice(np.asarray(model.pitches), size=num_notes, p=counts / counts.sum())
    z = np.asarray(z, np.float32)
    pitches = np.asarray(pitches, np.int32)
    coefficients = None if timbre is None else timbre.at(np.zeros(len(z)))
    clips: list[np.ndarray] = [np.empty(0)] * len(z)

    def keep(i: int, audio: np.ndarray) -> None:
        clips[i] = _normalized(audio.astype(np.float32), normalize)[0]

    _generate_unique(model, z, pitches, batch_size, keep, progress, coefficients, ganspace_only)
    return RenderResult(clips, model.sample_rate, z, pitches, timbre=timbre,
                        ganspace_only=ganspace_only, note_ganspace=coefficients)


def _normalized(audio: np.ndarray, always: bool) -> tuple[np.ndarray, float]:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0 or (always and peak > 0.0):
        gain = 1.0 / peak
        audio *= np.float32(gain)
        np.clip(audio, -1.0, 1.0, out=audio)  # float rounding of peak * (1 / peak)
        return audio, gain
    return audio, 1.0


# Output ---------------------------------------------------------------------------------

def write_wav(path: os.PathLike | str, audio: np.ndarray, sample_rate: int, fmt: str) -> None:
    """Write (samples, channels) audio in [-1, 1] as 'pcm16' (x * 32767, rounded) or 'float'."""
    audio = np.asarray(audio, np.float32)
    if fmt == "pcm16":
        data = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        sf.write(os.fspath(path), data, sample_rate, subtype="PCM_16", format="WAV")
    elif fmt == "float":
        sf.write(os.fspath(path), audio, sample_rate, subtype="FLOAT", format="WAV")
    else:
        raise ValueError(f"format must be 'pcm16' or 'float', got {fmt!r}")


def write_outputs(output_dir: Path, writers: dict[str, Callable[[Path], None]]) -> list[Path]:
    """Write every file into a hidden temporary directory inside `output_dir`, then
    rename them into place; on any error nothing is left behind (and `output_dir` is
    removed again if this call created it). Returns the final paths."""
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gansynth-generate-", dir=output_dir))
    done: list[Path] = []
    try:
        for name, write in writers.items():
            write(tmp / name)
        for name in writers:
            os.replace(tmp / name, output_dir / name)
            done.append(output_dir / name)
    except BaseException:
        for path in done:  # a rename failed midway: take back the ones already moved
            path.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return done


def _latents_writer(result: RenderResult, mode: str, seed: int | None, model: Model,
                    envelope: Envelope | None, secs_per_instrument: float
                    ) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = {
            "mode": np.array(mode),
            "seed": np.array(-1 if seed is None else seed, np.int64),
            "model": np.array(model.name),
            "sample_rate": np.array(model.sample_rate),
            "note_z": result.note_z.astype(np.float32),
            "note_pitch": np.asarray(result.note_pitch, np.int32),
        }
        if mode == "midi":
            data.update(
                anchors=np.asarray(result.anchors, np.float32),
                anchor_times=np.asarray(result.anchor_times, np.float64),
                secs_per_instrument=np.array(secs_per_instrument, np.float64),
                note_start=np.array([n.start for n in result.notes], np.float64),
                note_end=np.array([n.end for n in result.notes], np.float64),
                note_velocity=np.array([n.velocity for n in result.notes], np.int32),
                note_source_pitch=np.array([n.pitch for n in result.notes], np.int32),
                note_resample=np.asarray(result.note_resample, np.int32),
                sustain=np.array(result.sustain),
                **{k: np.array(v, np.float64) for k, v in envelope.params().items()})
        if result.timbre is not None:
            data.update(ganspace_times=result.timbre.times.astype(np.float64),
                        ganspace_points=result.timbre.points.astype(np.float32),
                        ganspace_only=np.array(result.ganspace_only),
                        note_ganspace=np.asarray(result.note_ganspace, np.float32))
        with open(path, "wb") as f:
            np.savez(f, **data)
    return write


def load_latents(path: os.PathLike | str, latent_size: int, mode: str) -> dict[str, np.ndarray]:
    """Read a latents.npz written by this command, checked against the model and mode."""
    try:
        size = npz_array_bytes(path)
        if size > MAX_LATENTS_BYTES:
            raise RenderError(f"latents file {path} holds {size / 2**20:,.0f} MiB of arrays; "
                              f"at most {MAX_LATENTS_BYTES // 2**20} MiB")
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise RenderError(f"latents file {path}: no such file") from None
    except RenderError:
        raise
    except Exception as e:  # noqa: BLE001 - np.load raises many kinds for a bad file
        raise RenderError(f"latents file {path} is unreadable: {e}") from None
    needed = ["mode", "note_z", "note_pitch"] + (["anchors", "anchor_times"]
                                                  if mode == "midi" else [])
    missing = [k for k in needed if k not in data]
    if missing:
        raise RenderError(f"latents file {path} lacks {', '.join(missing)}")
    if str(data["mode"]) != mode:
        raise RenderError(f"latents file {path} is from a {data['mode']} render; "
                          f"this is a {mode} render")
    key = "anchors" if mode == "midi" else "note_z"
    z = data[key]
    if z.ndim != 2 or z.shape[1] != latent_size or not np.all(np.isfinite(z)):
        raise RenderError(f"latents file {path}: {key} has shape {z.shape}; the model needs "
                          f"(n, {latent_size}) finite values")
    if mode == "midi":
        times = data["anchor_times"]
        if times.shape != (len(z),) or np.any(np.diff(times) <= 0):
            raise RenderError(f"latents file {path}: anchor_times must be {len(z)} "
                              f"increasing times")
    return data


def saved_timbre(data: dict[str, np.ndarray], path: os.PathLike | str
                 ) -> tuple[TimbrePath | None, bool]:
    """The GANSpace timbre path of a loaded latents file and whether its notes were pure
    coefficient points; (None, False) for a render without one (and for files written
    before GANSpace)."""
    keys = ("ganspace_times", "ganspace_points", "ganspace_only")
    missing = [k for k in keys if k not in data]
    if len(missing) == len(keys):
        return None, False
    if missing:
        raise RenderError(f"latents file {path} lacks {', '.join(missing)}")
    try:
        only = data["ganspace_only"]
        if only.shape != () or only.dtype != bool:
            raise ValueError("ganspace_only must be true or false")
        timbre = TimbrePath(data["ganspace_times"].astype(np.float64),
                            data["ganspace_points"].astype(np.float32))
    except ValueError as e:
        raise RenderError(f"latents file {path}: GANSpace path: {e}") from None
    return timbre, bool(only)


def check_timbre(timbre: TimbrePath, model: Model, source: str, ckpt_dir: str | None
                 ) -> None:
    """RenderError naming `source` (the flag or file the path came from) unless `model`
    has GANSpace directions and every point has at most as many coefficients, each in
    ganspace.COEFFICIENT_RANGE."""
    if model.ganspace is None:
        command = "gansynth-ganspace" + (f" --model {shlex.quote(ckpt_dir)}" if ckpt_dir else "")
        raise RenderError(f"{source}: model {model.name} has no GANSpace directions; compute "
                          f"them with {command}")
    k = model.ganspace.num_components
    for time, point in zip(timbre.times, timbre.points):
        given = np.trim_zeros(point, "b")  # the path pads shorter points with zeros
        try:
            check_coefficients(given if len(given) else point[:1], k)
        except ValueError as e:
            where = f" at {time:g} s" if len(timbre.times) > 1 else ""
            raise RenderError(f"{source}{where}: {e} (model {model.name} has {k} GANSpace "
                              f"directions)") from None


# Command line ---------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Python 3.11's argparse takes "--ganspace -1,2" for a missing value followed by
        # an option "-1,2", as only "-1" and "-1.5" look like numbers to it. Newer
        # versions' rule (a minus, then a digit) is safe here: every option starts "--".
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parsed(parse: Callable[[str], object]):
    """An argparse type from a parser that raises ValueError: its words become the
    flag's error."""
    def wrapped(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return wrapped


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Render a MIDI file (or random notes) with a GANSynth "
                                       "model into WAV files.")

    def add(name: str, to=p, **kw):  # `to`: the parser, or a group of it
        to.add_argument(f"--{name}", *([f"--{name.replace('_', '-')}"] if "_" in name else []),
                        dest=name, **kw)

    add("ckpt_dir", metavar="MODEL", help="project model dir, postprocessed training dir or "
        "Magenta GANSynth dir (default: the embedded default model)")
    add("output_dir", metavar="DIR", required=True, help="where the WAV files and "
        f"{LATENTS_FILE} go (created if missing)")
    add("midi_file", metavar="FILE", help="MIDI file to render; without it, --num_notes random "
        "notes, one WAV each")
    add("batch_size", type=flag(integer, int, low=1), default=8, metavar="N",
        help="notes per generator call (default 8)")
    add("secs_per_instrument", type=flag(number, above=0.0), default=6.0,
        metavar="S", help="seconds between random instruments (default 6)")
    add("seed", type=flag(integer, int, low=0, high=MAX_SEED),
        help=f"random seed, 0..{MAX_SEED} (default: a fresh one, printed and saved)")
    for name, high in (("attack_percent", 100.0), ("attack_slope", 1.0),
                       ("release_percent", 100.0), ("release_slope", 1.0)):
        add(name, type=flag(number, low=0.0, high=high), default=ENVELOPE_DEFAULTS[name],
            metavar="X", help=f"0..{high:g} (default {ENVELOPE_DEFAULTS[name]:g})")
    add("format", choices=("pcm16", "float"), default="pcm16",
        help="WAV sample format (default pcm16)")
    add("normalize", action="store_true", help="always peak-normalise (default: only if the "
        "mix would clip)")
    add("sustain", choices=SUSTAIN_MODES, default=DEFAULT_SUSTAIN_MODE,
        help="loop: a note sounds until its note-off plus its release, repeating a loop of "
        "its rendered audio; natural: the rendered audio once (default "
        f"{DEFAULT_SUSTAIN_MODE})")
    add("max_resample", type=flag(integer, int, low=0, high=127), default=MAX_RESAMPLE,
        metavar="N", help="a pitch the model lacks is made from the nearest pitch it has, "
        f"resampled, up to N semitones away (default {MAX_RESAMPLE}); farther "
        "notes are skipped")
    add("skip_missing", action="store_true", help="skip notes whose pitch the model lacks "
        "instead of resampling them")
    add("octave_shift", action="store_true", help="move notes whose pitch the model lacks "
        "by octaves to a pitch it has (tried before resampling)")
    add("include_drums", action="store_true", help="keep MIDI channel 10 (skipped by default)")
    add("num_notes", type=flag(integer, int, low=1, high=MAX_RANDOM_NOTES), default=8,
        metavar="N", help="random notes to render without --midi_file, one WAV each, "
        f"at most {MAX_RANDOM_NOTES:,} (they are held in memory until written; default 8)")
    add("latents", metavar="FILE", help=f"render the latent vectors of a {LATENTS_FILE} again "
        "(its anchors for a MIDI file, its notes without one) and its GANSpace path, unless "
        "--ganspace or --ganspace_at replaces it")
    timbre = p.add_mutually_exclusive_group()
    add("ganspace", to=timbre, type=_parsed(parse_coefficients), metavar="C1,C2,...",
        help="GANSpace coefficients (each -3..3, in standard deviations along the model's "
        "directions 1, 2, ...) for every note: an edit of its latent (default: none)")
    add("ganspace_at", to=timbre, type=_parsed(parse_point), action="append",
        metavar="TIME:C1,C2,...", help="a point of a GANSpace timbre path: the coefficients "
        "at TIME seconds; repeat it; a note takes the coefficients at its start, linearly "
        "interpolated between the points around it (needs --midi_file)")
    add("ganspace_only", action="store_true", help="with --ganspace or --ganspace_at: each "
        "note is the pure coefficient point (the pitch's average timbre moved by the "
        "coefficients) instead of an edit of its latent; the instruments are not used")
    add("quiet", action="store_true", help="no progress bar or summary")
    add("verbose", action="store_true", help="show TensorFlow's start-up log (hidden by "
        "default)")
    return p


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _notes(count: int) -> str:
    return _plural(count, "note")


def _skip_hint(args: argparse.Namespace) -> str:
    """What would play the skipped notes."""
    if args.skip_missing:
        return " (without --skip_missing they are resampled from the nearest model pitch)"
    hints = ["a larger --max_resample resamples them"]
    if not args.octave_shift:
        hints.append("--octave_shift moves them by octaves")
    return f" ({'; '.join(hints)})"


def check_output_dir(output_dir: Path) -> None:
    """Refuse (RenderError naming --output_dir) a directory that cannot be created or
    written, before any work: a probe directory is made and removed where the files
    will go (or in the nearest existing parent), which also catches read-only file
    systems and permissions that os.access misjudges (root, ACLs)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise RenderError(f"--output_dir {output_dir} exists and is not a directory")
    existing = output_dir
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RenderError(f"--output_dir {output_dir} cannot be created: {existing} is not a "
                          f"directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".gansynth-generate-probe-", dir=existing))
    except OSError as e:
        where = "" if existing == output_dir else f" (in {existing})"
        raise RenderError(f"--output_dir {output_dir} is not writable{where}: "
                          f"{e.strerror or e}") from None


def _quiet_tensorflow(verbose: bool) -> None:
    """Before TensorFlow is imported: its C++ log (oneDNN, CPU features, CUDA plugin
    registration, at every level up to error) and Python warnings only with --verbose.
    Real failures still reach the user, as exceptions this command reports."""
    import_tensorflow(verbose)
    logging.getLogger("tensorflow").setLevel(logging.INFO if verbose else logging.ERROR)


def timbre_flags(parser: argparse.ArgumentParser, args: argparse.Namespace
                 ) -> TimbrePath | None:
    """The timbre path --ganspace or --ganspace_at ask for, or None; a combination of
    flags that makes no sense is a usage error (parser.error exits)."""
    if args.ganspace_only and args.ganspace is None and not args.ganspace_at \
            and not args.latents:
        parser.error("--ganspace_only needs --ganspace, --ganspace_at or a --latents file "
                     "with a GANSpace path")
    if args.ganspace_at and not args.midi_file:
        parser.error("--ganspace_at needs --midi_file (random notes have no start times; "
                     "--ganspace applies to them)")
    if args.ganspace is not None:
        return TimbrePath.from_points([(0.0, args.ganspace)])
    if args.ganspace_at:
        try:
            return TimbrePath.from_points(args.ganspace_at)
        except ValueError as e:
            parser.error(f"--ganspace_at: {e}")
    return None


def _describe_timbre(timbre: TimbrePath, ganspace_only: bool) -> str:
    """'GANSpace coefficients 1.5,-0.5 editing each note's latent', for the summary."""
    if len(timbre.times) == 1:
        what = "GANSpace coefficients " + ",".join(f"{c:g}" for c in timbre.points[0])
    else:
        what = (f"a GANSpace path through {len(timbre.times)} points "
                f"({timbre.times[0]:g} s to {timbre.times[-1]:g} s)")
    return what + (" as pure coefficient points (no latents)" if ganspace_only
                   else " editing each note's latent")


def _run(args: argparse.Namespace, timbre: TimbrePath | None) -> list[Path]:
    """The command, once its flags are parsed; `timbre` is `timbre_flags`' path."""
    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    # Everything that can be checked without the model first: seconds, not minutes, to
    # an error (TensorFlow alone takes several seconds to import).
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir)
    envelope = Envelope(args.attack_percent, args.attack_slope, args.release_percent,
                        args.release_slope)
    score: MidiScore | None = None
    if args.midi_file:
        score = read_midi(args.midi_file, include_drums=args.include_drums)
        if not score.notes:
            extra = (f" ({score.drum_notes_skipped} drum notes on channel 10 skipped; "
                     f"--include_drums keeps them)" if score.drum_notes_skipped else "")
            raise RenderError(f"no playable notes in {args.midi_file}{extra}")
        try:
            check_piece(score.notes)
            if not args.latents:
                instrument_count(max(n.end for n in score.notes), args.secs_per_instrument)
        except (RenderError, ValueError) as e:
            raise RenderError(f"{args.midi_file}: {e}") from None
    if args.ckpt_dir and not os.path.exists(args.ckpt_dir):  # the words of ModelLoadError
        raise RenderError(f"cannot load model {args.ckpt_dir}: no such file or directory")
    _quiet_tensorflow(args.verbose)
    model = load_model(args.ckpt_dir)
    mode = "midi" if score else "random"
    latents = load_latents(args.latents, model.latent_size, mode) if args.latents else None
    seed = args.seed
    if latents is not None and seed is None and int(latents.get("seed", -1)) >= 0:
        seed = int(latents["seed"])
    if seed is None and latents is None:
        seed = secrets.randbits(31)
    # The flags' path, else the latents file's (as its instruments are reused).
    ganspace_only = args.ganspace_only
    source = "--ganspace" if args.ganspace is not None else "--ganspace_at"
    if timbre is None and latents is not None:
        timbre, saved_only = saved_timbre(latents, args.latents)
        ganspace_only = ganspace_only or saved_only
        source = f"latents file {args.latents}"
    if ganspace_only and timbre is None:
        raise RenderError(f"--ganspace_only: latents file {args.latents} holds no GANSpace "
                          f"path (give --ganspace or --ganspace_at)")
    if timbre is not None:
        check_timbre(timbre, model, source, args.ckpt_dir)

    if score:
        try:
            result = render_midi(
                model, score.notes, envelope=envelope,
                anchors=None if latents is None else latents["anchors"],
                times=None if latents is None else latents["anchor_times"], seed=seed,
                secs_per_instrument=args.secs_per_instrument, batch_size=args.batch_size,
                sustain=args.sustain, octave_shift=args.octave_shift,
                max_resample=args.max_resample, skip_missing=args.skip_missing,
                normalize=args.normalize, progress=not args.quiet, timbre=timbre,
                ganspace_only=ganspace_only)
        except RenderError as e:
            drums = (f", {score.drum_notes_skipped} drum notes skipped"
                     if score.drum_notes_skipped else "")
            raise RenderError(f"{args.midi_file}: {e}{drums}{_skip_hint(args)}") from None
        writers = {CLIP_FILE: lambda p: write_wav(p, result.audio, result.sample_rate,
                                                  args.format)}
    else:
        result = render_random(
            model, args.num_notes, seed=seed,
            z=None if latents is None else latents["note_z"],
            pitches=None if latents is None else latents["note_pitch"],
            batch_size=args.batch_size, normalize=args.normalize, progress=not args.quiet,
            timbre=timbre, ganspace_only=ganspace_only)
        writers = {f"generated_{i}.wav": (lambda p, a=a: write_wav(p, a, result.sample_rate,
                                                                   args.format))
                   for i, a in enumerate(result.audio)}
    writers[LATENTS_FILE] = _latents_writer(result, mode, seed, model, envelope,
                                            args.secs_per_instrument)
    paths = write_outputs(output_dir, writers)

    if score:
        seconds = len(result.audio) / result.sample_rate
        say(f"rendered {len(result.notes)} notes ({len(result.note_z)} latent vectors, "
            f"{len(result.anchors)} instruments) into {paths[0]}: {seconds:.2f} s, "
            f"{model.channels} ch, {model.sample_rate} Hz, sustain {result.sustain}")
        if score.drum_notes_skipped:
            say(f"skipped {score.drum_notes_skipped} drum notes (channel 10; --include_drums "
                f"keeps them)")
        if result.resampled:
            say(f"resampled {_notes(result.resampled)} from the nearest model pitch (up to "
                f"{_plural(result.largest_resample, 'semitone')})")
        if result.shifted:
            say(f"moved {_notes(result.shifted)} by octaves to a model pitch (up to "
                f"{_plural(result.largest_octave_shift, 'octave')})")
        if result.skipped_out_of_range:
            why = ("" if args.skip_missing else
                   f" nor within {args.max_resample} semitones of one")
            say(f"skipped {_notes(result.skipped_out_of_range)} not among the model's pitches "
                f"({describe_pitches(model.pitches)}){why}{_skip_hint(args)}")
        if result.gain != 1.0:
            say(f"normalised the mix by {20 * math.log10(result.gain):+.1f} dB")
    else:
        say(f"rendered {len(result.audio)} random notes into {output_dir}/generated_*.wav")
    if timbre is not None:
        say(f"timbre: {_describe_timbre(timbre, ganspace_only)}")
    say(f"latent vectors in {output_dir / LATENTS_FILE}"
        + (f" (seed {seed})" if seed is not None else ""))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """The `gansynth-generate` command; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        timbre = timbre_flags(parser, args)
    except SystemExit as e:  # --help, or a usage error already printed on one line
        return e.code if isinstance(e.code, int) else 2
    try:
        _run(args, timbre)
    except (RenderError, MidiFileError, ValueError, OSError) as e:  # ModelLoadError too
        message = str(e).replace("\n", " ")
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return 1
    except MemoryError as e:  # the limits above make this rare: a small machine
        print(f"{PROG}: error: out of memory{': ' + str(e) if str(e) else ''} (a smaller "
              f"--batch_size needs less)", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
