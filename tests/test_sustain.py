"""Acceptance tests of sustain (gansynth_live.sustain) with real generated audio, played
through the live mixer block by block as the audio callback runs it (48 kHz, 256-frame
blocks, the engine's max_frames of 4096).

Notes come from the embedded default model (1 s at 16 kHz), and from a 4 s model: there
is no trained 4 s model in the repository, so it is Magenta's 4 s architecture
(`mel_prog_hires`: 128 x 1024 spectrogram, 64000 samples at 16 kHz) with tiny widths and
seeded random weights. Each note is made playable as the live server makes it
(`renderer.playable_note`: loop found at the model rate, then the note resampled and the
loop scaled to 48 kHz) and played by a `Mixer`:

- sustain loop, held 60 s: it sounds until note-off and is silent after its release;
  every 1 s window from 1 s to 60 s is within 3 dB of the unlooped note's steady part;
  its pitch (pYIN median, seconds 10-13 and 50-53) is within 10 cents of the unlooped
  steady part's; no click at any loop wrap (the largest |second difference| within one
  seam of each wrap is at most 1.5x the unlooped note's own 99.9th percentile);
- the same with the 4 s model (not the pitch: see `test_four_second_model_held_60_s`);
- a stereo note loops with the same frames on both channels, no click in either;
- sustain natural ends with the rendered audio (1 s), without a click;
- the envelope's edge values (attack and release 0 and 100 %) make no click and no
  silence.

Run with ``pytest -s`` to see the measured numbers. The mixer takes about 0.75 s per
60 s of one 48 kHz voice on the 2-core development machine, so even the 60 s runs use the
callback's real 256-frame blocks (no bigger blocks needed); the file takes 25-45 s.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.envelope import Envelope
from gansynth_live.live.renderer import playable_note, resample
from gansynth_live.live.voices import Mixer, NoteStart, velocity_gain
from gansynth_live.sustain import Loop, find_loop, looped, make_note, match_window, steady_part

SR = 48000               # device rate
BLOCK = 256              # frames per audio callback
MAX_FRAMES = 4096        # the engine's mixer size (max(blocksize, 4096))
MIXER_GAIN = 0.5
VELOCITY = 100
GAIN = MIXER_GAIN * velocity_gain(VELOCITY)  # output / GAIN = the note's own level
PITCHES = (24, 36, 48, 60, 72, 84)
HOLD_SECONDS = 60
RMS_TOLERANCE_DB = 3.0
CENTS_TOLERANCE = 10.0
CLICK_RATIO = 1.5        # seam / note's own 99.9th percentile of |second difference|
PYIN_RATE = 16000        # pYIN runs on 16 kHz copies: 3x fewer frames, same pitch
PYIN_SECONDS = ((10, 13), (50, 53))
# The stereo note's pitch: at 36 the two latents' loop ends differ enough that a wrap
# without the seam's crossfade clicks (at 60 a hard wrap of this loop happens not to).
STEREO_PITCH = 36
# Magenta's 4 s architecture (mel_prog_hires: 64000 samples at 16 kHz) with tiny widths:
# builds and renders in seconds on a CPU.
FOUR_SECOND_CONFIG = gl.preset("mel_prog_hires").replace(latent_size=16, fmap_max=8)


# Model audio (once per module) --------------------------------------------------------------

@pytest.fixture(scope="module")
def default_model_notes():
    """(model, {pitch: (16000, 1) audio}, a second `STEREO_PITCH` note for the stereo
    test): one batch, fixed seeds."""
    model = gl.load_model()
    z = np.concatenate([model.random_z(len(PITCHES), seed=0), model.random_z(1, seed=1)])
    audio = model.generate(z, list(PITCHES) + [STEREO_PITCH])
    assert audio.shape[1:] == (model.num_samples, 1) and model.sample_rate == 16000
    return model, dict(zip(PITCHES, audio[:len(PITCHES)])), audio[len(PITCHES)]


@pytest.fixture(scope="module")
def four_second_notes():
    model = gl.Model(FOUR_SECOND_CONFIG, tuple(range(24, 85)), name="tiny-4s")
    assert model.num_samples == 4 * model.sample_rate
    audio = model.generate(model.random_z(len(PITCHES), seed=0), list(PITCHES))
    return model, dict(zip(PITCHES, audio))


# Playing and measuring ---------------------------------------------------------------------

def play(note, pitch: int, note_frames: int, held: int, total: int, *, loop: bool = True,
         envelope: Envelope | None = None) -> tuple[np.ndarray, Mixer]:
    """Note-on at frame 0, note-off at frame `held` (a block boundary), `total` frames of
    the mixer's output in 256-frame blocks, divided by the mixer and velocity gain (float64)."""
    assert held % BLOCK == 0
    mixer = Mixer(SR, note.channels, MAX_FRAMES, gain=MIXER_GAIN)
    mixer.post(("on", NoteStart(pitch, note, 1.0, velocity_gain(VELOCITY),
                                envelope or Envelope(), note_frames, loop)))
    blocks = -(-total // BLOCK)
    out = np.empty((blocks * BLOCK, note.channels), np.float32)
    for k in range(blocks):
        if k * BLOCK == held:
            mixer.post(("off", pitch))
        mixer.process(out[k * BLOCK:(k + 1) * BLOCK])
    assert mixer.clipped_blocks == 0  # else dividing by the gain would not give the note back
    return out[:total].astype(np.float64) / GAIN, mixer


def second_difference(x: np.ndarray) -> np.ndarray:
    """|x[t-1] - 2 x[t] + x[t+1]| per channel, 0 at both ends (same length as x)."""
    d2 = np.zeros(x.shape, np.float64)
    d2[1:-1] = np.abs(np.diff(np.asarray(x, np.float64), 2, axis=0))
    return d2


def click_reference(audio: np.ndarray) -> np.ndarray:
    """Per channel: the 99.9th percentile of the unlooped note's |second difference|."""
    return np.percentile(second_difference(audio)[1:-1], 99.9, axis=0)


def seam_half_width(loop, pitch: int) -> int:
    """Frames either side of a wrap that the click measure looks at: one seam, and never
    less than the seam the loop finder designs (its match window at the device rate), so
    that a note whose seam went missing is measured as widely."""
    return max(loop.seam, match_window(SR, pitch))


def wrap_frames(loop, until: int, half_width: int) -> np.ndarray:
    """Output frames where a held voice (rate 1, note-on at 0) jumps from the loop's end back
    to its start: end, end + P, end + 2P, ... (P = end - start), those whose window of
    +-`half_width` ends before `until`."""
    period = loop.end - loop.start
    count = max(0, (until - half_width - loop.end) // period + 1)
    return loop.end + period * np.arange(count)


def seam_click(out: np.ndarray, loop, pitch: int, until: int) -> np.ndarray:
    """Per channel: the largest |second difference| of `out` within +-`seam_half_width` of
    every wrap before `until` (this covers both joins: into the seam and out of it)."""
    half = seam_half_width(loop, pitch)
    wraps = wrap_frames(loop, until, half)
    assert len(wraps), "the note never wrapped"
    d2 = second_difference(out)
    index = wraps[:, None] + np.arange(-half, half + 1)[None, :]
    return d2[index.ravel()].max(axis=0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def window_levels_db(mono: np.ndarray, reference: float, first_s: int, last_s: int
                     ) -> np.ndarray:
    """dB of each 1 s window's RMS from `first_s` to `last_s`, relative to `reference`."""
    windows = mono[first_s * SR:last_s * SR].reshape(last_s - first_s, SR)
    return 20.0 * np.log10(np.sqrt(np.mean(np.square(windows), axis=1)) / reference)


def steady_rms(mono: np.ndarray, pitch: int) -> tuple[float, tuple[int, int]]:
    first, last = steady_part(mono, SR, pitch)
    return rms(mono[first:last]), (first, last)


def pyin_median(mono: np.ndarray, f0: float, semitones: float, resolution: float
                ) -> tuple[float, int, int]:
    """(median f0 of the voiced frames or NaN, voiced frames, frames) of 48 kHz `mono`,
    pYIN on a 16 kHz copy, searching `semitones` either side of `f0`."""
    import librosa
    y = resample(np.asarray(mono, np.float32)[:, None], SR, PYIN_RATE)[:, 0]
    # A tone's pitch hardly moves in 32 ms (one hop): a slow transition rate keeps the
    # Viterbi band within a narrow search range (resolution 0.01: 1-cent bins).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, voiced, _ = librosa.pyin(y, fmin=f0 * 2 ** (-semitones / 12),
                                    fmax=f0 * 2 ** (semitones / 12), sr=PYIN_RATE,
                                    frame_length=2048, resolution=resolution,
                                    max_transition_rate=2.0 if resolution < 0.1 else 35.92)
    return (float(np.median(f[voiced])) if voiced.any() else float("nan"),
            int(voiced.sum()), len(voiced))


def largest_rise_db(mono: np.ndarray, frame: int = SR // 50) -> float:
    """The largest rise in level (dB) from one 20 ms frame to the next: a loop whose ends
    differ in level jumps by that much at every wrap (a re-attack)."""
    n = len(mono) // frame
    level = 10 * np.log10(np.mean(np.square(mono[:n * frame].reshape(n, frame)), axis=1)
                          + 1e-12)
    return float(np.max(np.diff(level)))


def cents(f: float, reference: float) -> float:
    return 1200.0 * float(np.log2(f / reference))


# 1, 2: a note held 60 s ------------------------------------------------------------------------

def check_held_note(model_name: str, model, audio: np.ndarray, pitch: int, *,
                    measure_pitch: bool) -> None:
    """Play `audio` (the model's note) held 60 s in sustain loop and check it (see the
    module docstring); prints its numbers."""
    note_frames = int(round(model.num_samples * SR / model.sample_rate))
    note = playable_note(audio, pitch, model.sample_rate, SR)
    loop = note.loop
    assert note.length == note_frames
    held = HOLD_SECONDS * SR
    _, release = Envelope().segment_lengths(note_frames, SR)
    out, mixer = play(note, pitch, note_frames, held, held + release + SR // 4)
    mono = out[:, 0]
    unlooped = note.audio[:, 0].astype(np.float64)

    # It sounds until note-off (every 10 ms of the last second), and stops after its release.
    last_second = np.abs(mono[held - SR:held]).reshape(100, -1).max(axis=1)
    silent_after = not mono[held + release:].any()
    # Level: every 1 s window from 1 s to 60 s against the unlooped note's steady part.
    reference_rms, steady = steady_rms(unlooped, pitch)
    levels = window_levels_db(mono, reference_rms, 1, HOLD_SECONDS)
    # Level jumps at the wraps, against the unlooped steady part's own (+3 dB).
    rise = largest_rise_db(mono[SR:held])
    own_rise = largest_rise_db(unlooped[steady[0]:steady[1]])
    # Clicks at the loop's wraps, against the unlooped note's own second differences.
    click = float(seam_click(out, loop, pitch, held)[0] / click_reference(note.audio)[0])
    line = (f"{model_name} pitch {pitch}: loop {loop.start}..{loop.end} "
            f"({(loop.end - loop.start) / SR:.3f} s, seam {loop.seam}) match {loop.match:.3f}; "
            f"steady {steady[0]}..{steady[1]}; RMS {levels.min():+.2f}..{levels.max():+.2f} dB; "
            f"largest 20 ms rise {rise:.1f} dB (unlooped {own_rise:.1f}); "
            f"click ratio {click:.2f} over "
            f"{len(wrap_frames(loop, held, seam_half_width(loop, pitch)))} wraps")
    # Pitch: pYIN on the unlooped steady part (a coarse search +-1 octave, then 1-cent bins
    # +-1 semitone around it) and on seconds 10-13 and 50-53 of the held note.
    pitch_errors = []
    if measure_pitch:
        nominal = 440.0 * 2 ** ((pitch - 69) / 12)
        steady_audio = unlooped[steady[0]:steady[1]]
        coarse, _, _ = pyin_median(steady_audio, nominal, 12, 0.1)
        if np.isnan(coarse):
            line += "; pYIN: the unlooped note is unvoiced, pitch not checked"
        elif np.isnan(pyin_median(unlooped[loop.start:loop.end], coarse, 1, 0.01)[0]):
            # 1-cent pYIN finds no voiced frame where the loop lies, in the note itself
            # (seen at C1, 32.7 Hz: 4 periods per 2048-sample frame): compare the held
            # note with that part of the note in pYIN's default 10-cent bins instead.
            region, _, _ = pyin_median(unlooped[loop.start:loop.end], nominal, 12, 0.1)
            line += f"; pYIN (10-cent bins) loop region {cents(region, nominal):+.1f} c"
            for a, b in PYIN_SECONDS:
                f0, voiced, frames = pyin_median(mono[a * SR:b * SR], nominal, 12, 0.1)
                error = cents(f0, region) if voiced else float("nan")
                pitch_errors.append(error)
                line += f"; {a}-{b} s {error:+.1f} c ({voiced}/{frames})"
        else:
            ref, voiced, frames = pyin_median(steady_audio, coarse, 1, 0.01)
            line += (f"; pYIN unlooped {cents(ref, nominal):+.1f} c vs nominal "
                     f"({voiced}/{frames} voiced)")
            for a, b in PYIN_SECONDS:
                f0, voiced, frames = pyin_median(mono[a * SR:b * SR], coarse, 1, 0.01)
                error = cents(f0, ref) if voiced else float("nan")
                pitch_errors.append(error)
                line += f"; {a}-{b} s {error:+.1f} c ({voiced}/{frames})"
    print(line)

    assert last_second.min() > 0.0, f"silent before note-off: {line}"
    assert silent_after and not any(v.state for v in mixer.voices), \
        f"still sounding after the release: {line}"
    assert np.all(np.abs(levels) <= RMS_TOLERANCE_DB), (
        f"1 s windows at {np.flatnonzero(np.abs(levels) > RMS_TOLERANCE_DB) + 1} s are more "
        f"than {RMS_TOLERANCE_DB} dB off the steady part: {line}")
    assert rise <= own_rise + 3.0, f"the level jumps at a loop wrap: {line}"
    assert click <= CLICK_RATIO, f"click at a loop wrap: {line}"
    for error in pitch_errors:
        assert abs(error) <= CENTS_TOLERANCE, f"pitch moved in the loop (or unvoiced): {line}"


@pytest.mark.parametrize("pitch", PITCHES)
def test_default_model_note_held_60_s(default_model_notes, pitch):
    """If the loop stopped looping, the note would end after 1 s (silent before note-off,
    levels -inf). Without the seam's crossfade the wraps click at pitches 24, 36 and 48
    (measured: 120x, 16x and 9x the note's own 99.9th percentile); at 60, 72 and 84 these
    loops' ends match so closely that even a hard jump stays within 1.1x."""
    model, notes, _ = default_model_notes
    check_held_note("default", model, notes[pitch], pitch, measure_pitch=True)


@pytest.mark.parametrize("pitch", PITCHES)
def test_four_second_model_held_60_s(four_second_notes, pitch):
    """The pitch is not measured: a model with random weights makes loud noise-like audio
    (clipped at +-1, no harmonic structure), whose pYIN estimate means nothing. For the
    same reason the click check here guards against gross errors only: a hard jump from
    noise to noise is just another noise sample (without the crossfade: 1.2x at most)."""
    model, notes = four_second_notes
    check_held_note("4 s", model, notes[pitch], pitch, measure_pitch=False)


# 3: stereo -----------------------------------------------------------------------------------

def test_stereo_note_loops_the_same_frames_on_both_channels(default_model_notes):
    """Two default-model notes of one pitch (two latents) as L/R: one loop, found on their
    mean, wraps both channels at the same frames, and neither channel clicks."""
    model, notes, other = default_model_notes
    pitch = STEREO_PITCH
    stereo = np.concatenate([notes[pitch], other], axis=1)  # (16000, 2)
    note = playable_note(stereo, pitch, model.sample_rate, SR)
    loop = note.loop
    on_mean = find_loop(stereo.mean(axis=1, keepdims=True), model.sample_rate, pitch)
    per_channel = [find_loop(stereo[:, c:c + 1], model.sample_rate, pitch) for c in (0, 1)]
    assert loop[:3] == on_mean.scaled(SR / model.sample_rate, len(note.audio))[:3]
    held = 10 * SR
    _, release = Envelope().segment_lengths(SR, SR)
    total = held + release + SR // 4
    out, mixer = play(note, pitch, SR, held, total)
    # Sample for sample: the envelope times the looped stream, on both channels.
    gain = Envelope().note_gain(held, SR, SR, True)
    wanted = np.zeros((total, 2))
    wanted[:len(gain)] = looped(note, len(gain)).astype(np.float64) * gain[:, None]
    worst = np.abs(out - wanted).max(axis=0)
    click = seam_click(out, loop, pitch, held) / click_reference(note.audio)
    print(f"stereo pitch {pitch}: loop {loop.start}..{loop.end} (seam {loop.seam}) match "
          f"{loop.match:.3f}; per-channel loops at 16 kHz {[tuple(l[:2]) for l in per_channel]}, "
          f"on the mean {tuple(on_mean[:2])}; largest difference from the looped stream "
          f"{worst.max():.2e}; click ratio L {click[0]:.2f} R {click[1]:.2f}")
    assert np.all(worst < 1e-5 / GAIN), "a channel does not play the looped stream"
    assert not out[held + release:].any() and not any(v.state for v in mixer.voices)
    assert np.all(click <= CLICK_RATIO), f"click at a loop wrap: L {click[0]:.2f} R {click[1]:.2f}"


# 4: sustain natural ------------------------------------------------------------------------

def test_sustain_natural_ends_with_the_rendered_note(default_model_notes):
    """Held 60 s in sustain natural, the note plays its 1 s once and ends without a click
    (largest |second difference| over its last 10 ms). This model's notes have decayed to
    almost nothing by their end, so the end would not click even without the mixer's 5 ms
    fade there; the check guards against anything added at the end (a wrap, a jump)."""
    model, notes, _ = default_model_notes
    pitch = 60
    note = playable_note(notes[pitch], pitch, model.sample_rate, SR)
    held = HOLD_SECONDS * SR
    out, mixer = play(note, pitch, note.length, held, held + SR // 4, loop=False)
    mono = out[:, 0]
    sounding = np.flatnonzero(mono)
    last = int(sounding[-1]) + 1 if len(sounding) else 0
    tail = slice(note.length - SR // 100 - 1, note.length + 2)  # the last 10 ms and after
    click = float(second_difference(out[tail])[1:-1, 0].max() / click_reference(note.audio)[0])
    print(f"natural pitch 60: sounds until frame {last} of {note.length}; voice done "
          f"{not any(v.state for v in mixer.voices)}; end click ratio {click:.2f}")
    assert note.length - SR // 100 < last <= note.length, "does not end with its audio"
    assert not any(v.state for v in mixer.voices)
    assert click <= CLICK_RATIO, f"click at the end: ratio {click:.2f}"


# 5: envelope edge values ---------------------------------------------------------------------

# Note-offs at 2 s and at 5 later block boundaries 11 blocks (59 ms) apart: a release cut
# short would click only where the waveform is far from 0, so one note-off could miss it.
NOTE_OFFS = tuple(2 * SR + k * 11 * BLOCK for k in range(6))


@pytest.mark.parametrize("attack,release", [(0, 0), (0, 100), (100, 0), (100, 100)])
def test_envelope_edge_values_live(default_model_notes, attack, release):
    """Pitch 60 held 2 s (and a little longer, see NOTE_OFFS) in sustain loop, then
    released: no click anywhere in the output, sounding until note-off, not silent, and
    silent after the release."""
    model, notes, _ = default_model_notes
    pitch = 60
    note = playable_note(notes[pitch], pitch, model.sample_rate, SR)
    envelope = Envelope(attack_percent=attack, release_percent=release)
    _, release_frames = envelope.segment_lengths(note.length, SR)
    reference = click_reference(note.audio)[0]
    note_rms = rms(note.audio[:, 0])
    clicks, levels, before_off = [], [], []
    for held in NOTE_OFFS:
        out, mixer = play(note, pitch, note.length, held, held + release_frames + SR // 4,
                          envelope=envelope)
        clicks.append(float(second_difference(out)[:, 0].max() / reference))
        levels.append(rms(out[:held + release_frames, 0]) / note_rms)
        before_off.append(rms(out[held - SR // 2:held, 0]) / note_rms)
        assert not out[held + release_frames:].any() and not any(v.state for v in mixer.voices)
    print(f"envelope attack {attack} release {release}: click ratio {min(clicks):.2f}.."
          f"{max(clicks):.2f} over {len(NOTE_OFFS)} note-offs, RMS {min(levels):.3f} of the "
          f"unlooped note's ({min(before_off):.3f} in the 0.5 s before note-off)")
    assert max(clicks) <= CLICK_RATIO, f"click: ratios {np.round(clicks, 2)}"
    assert min(levels) > 0.01, f"silent: RMS {min(levels):.4f} of the note's"
    assert min(before_off) > 0.5, "no longer sounding at note-off"


# Edge cases of the loop finder (synthetic audio, no model) -------------------------------

@pytest.mark.parametrize("frames", [1, 2, 7, 100, 1000, 1065, 2000, 5000, 16000])
@pytest.mark.parametrize("kind", ["noise", "silence", "sine"])
def test_any_note_of_at_least_one_frame_gets_a_playable_loop(frames, kind):
    t = np.arange(frames) / 16000
    audio = {"noise": np.random.default_rng(frames).uniform(-0.5, 0.5, frames),
             "silence": np.zeros(frames),
             "sine": 0.5 * np.sin(2 * np.pi * 261.6 * t)}[kind].astype(np.float32)[:, None]
    note = make_note(audio, find_loop(audio, 16000, 60))
    held = looped(note, 3 * frames + 10)
    assert held.shape == (3 * frames + 10, 1) and np.all(np.isfinite(held))


def test_empty_and_non_finite_notes_are_refused_by_name():
    with pytest.raises(ValueError, match="empty note"):
        find_loop(np.zeros((0, 1), np.float32), 16000, 60)
    with pytest.raises(ValueError, match="NaN or infinite"):
        find_loop(np.full((16000, 1), np.nan, np.float32), 16000, 60)


@pytest.mark.parametrize("rate", [11025, 22050, 44100, 47999, 48000, 96000])
def test_a_scaled_loop_fits_the_resampled_note(rate):
    """Rounding start and length apart could put the end past the resampled note."""
    audio = np.random.default_rng(rate).uniform(-0.5, 0.5, (16000, 1)).astype(np.float32)
    for loop in (Loop(960, 16000, 320, 0.9), Loop(8000, 16000, 320, 0.9),
                 find_loop(audio, 16000, 60)):
        resampled = resample(audio, 16000, rate)
        scaled = loop.scaled(rate / 16000, len(resampled))
        make_note(resampled, scaled)  # raises if it does not fit
        assert scaled.end <= len(resampled)


def test_a_decaying_note_holds_its_level_without_a_jump_at_the_wraps():
    """20 dB/s of decay: the loop body is flattened, so the held note neither pumps back
    up at every wrap nor dies away."""
    t = np.arange(16000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 261.6 * t) * 10 ** (-20 * t / 20)).astype(np.float32)
    loop = find_loop(audio[:, None], 16000, 60)
    note = make_note(audio[:, None], loop)
    held = looped(note, 16000 * 6)[:, 0].astype(np.float64)
    unflattened = np.concatenate([audio[:loop.start]] + [audio[loop.start:loop.end]] * 20)
    rise = largest_rise_db(np.repeat(held[16000:], 3))  # (frames counted at 48 kHz)
    assert rise < 2.0 and rise < largest_rise_db(np.repeat(unflattened[16000:96000], 3)) / 3
    levels = [10 * np.log10(np.mean(np.square(held[k * 16000:(k + 1) * 16000])))
              for k in range(1, 6)]
    assert max(levels) - min(levels) < 0.5
