"""Offline rendering: timbre schedule, pitch plans, note placement, envelopes and sustain,
atomic output, the command as a subprocess (byte-identical to the in-process render with
the same seed); with the embedded default model: held notes loop for as long as they are
held, notes the model lacks are resampled to their pitch, envelope edge values do not
click."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import gansynth_live as gl
from gansynth_live.envelope import Envelope, fade_frames
from gansynth_live.latent import slerp
from gansynth_live.midi import Note, read_midi
from gansynth_live.render import (PitchPlan, RenderError, anchor_times, describe_pitches,
                                  fit_pitch, note_latents, plan_pitch, render_midi,
                                  write_outputs)
from gansynth_live.sustain import loop_note, looped, steady_part
from render_helpers import (L, SR, TPB, click_ratio, db, default_model, models,  # noqa: F401
                            off, on, pitch_shift_cents, rms, run, song, write_midi)

F = fade_frames(SR)  # 80 samples: the shortest attack and release, the end-of-audio fade


@pytest.fixture(scope="module")
def ones_model():
    """A tiny model whose every note is all ones: the mix shows the gain curves directly."""
    model = gl.Model(gl.preset("tiny"), range(36, 85))
    model.generate = lambda z, pitches: np.ones((len(z), model.num_samples, 1), np.float32)
    return model


# Timbre schedule ------------------------------------------------------------------------

def test_anchor_times_cover_the_piece_even_when_short():
    np.testing.assert_array_equal(anchor_times(0.0, 6.0), [0.0, 6.0])
    np.testing.assert_array_equal(anchor_times(1.0, 6.0), [0.0, 6.0])
    np.testing.assert_array_equal(anchor_times(7.0, 6.0), [0.0, 6.0, 12.0])
    assert len(anchor_times(60.0, 6.0)) == 11 and anchor_times(60.0, 6.0)[-1] == 60.0
    with pytest.raises(ValueError, match="secs_per_instrument"):
        anchor_times(10.0, 0.0)
    assert len(anchor_times(99_999.0, 1.0)) == 100_000  # MAX_INSTRUMENTS
    with pytest.raises(ValueError, match="makes 100,001 instruments; at most 100,000"):
        anchor_times(100_000.0, 1.0)
    with pytest.raises(ValueError, match="makes 3,600,001 instruments"):
        anchor_times(3600.0, 0.001)  # not 3.6 M anchors, each a latent vector


def test_note_latents_slerp_between_neighbouring_anchors():
    anchors = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    times = np.array([0.0, 6.0, 12.0])
    z = note_latents([0.0, 3.0, 6.0, 7.5, 12.0, 20.0], times, anchors)
    np.testing.assert_allclose(z[0], anchors[0])
    np.testing.assert_allclose(z[1], slerp(anchors[0], anchors[1], 0.5), rtol=1e-6)
    np.testing.assert_allclose(z[2], anchors[1], rtol=1e-6)
    np.testing.assert_allclose(z[3], slerp(anchors[1], anchors[2], 0.25), rtol=1e-6)
    np.testing.assert_allclose(z[4], anchors[2], rtol=1e-6)
    np.testing.assert_allclose(z[5], anchors[2], rtol=1e-6)  # past the end: last anchor
    assert z.dtype == np.float32
    np.testing.assert_array_equal(note_latents([1.0, 2.0], [0.0], anchors[:1]), anchors[[0, 0]])


def test_fit_pitch_skips_or_folds_by_octaves():
    vocab = range(36, 85)
    assert fit_pitch(60, vocab, False) == 60
    assert fit_pitch(24, vocab, False) is None
    assert fit_pitch(24, vocab, True) == 36
    assert fit_pitch(96, vocab, True) == 84
    assert fit_pitch(90, vocab, True) == 78
    assert fit_pitch(61, [48, 60, 72], True) is None  # no octave of it in the vocabulary


def test_plan_pitch_octave_shift_first_then_resample_within_the_limit():
    vocab = range(36, 85)
    assert plan_pitch(60, vocab) == PitchPlan(60, 0)
    assert plan_pitch(90, vocab) == PitchPlan(84, 6)  # nearest model pitch, 6 semitones up
    assert plan_pitch(96, vocab) == PitchPlan(84, 12)
    assert plan_pitch(97, vocab) is None  # 13 > max_resample 12
    assert plan_pitch(97, vocab, max_resample=13) == PitchPlan(84, 13)
    assert plan_pitch(30, vocab) == PitchPlan(36, -6)  # below the range: played slower
    assert plan_pitch(90, vocab, octave_shift=True) == PitchPlan(78, 0)  # octaves first
    assert plan_pitch(90, vocab, skip_missing=True) is None
    assert plan_pitch(90, vocab, max_resample=0) is None
    even = range(48, 67, 2)
    assert plan_pitch(61, even) == PitchPlan(60, 1)  # a tie goes to the lower pitch
    assert plan_pitch(61, even, octave_shift=True) == PitchPlan(60, 1)  # no octave of 61
    assert plan_pitch(73, even, octave_shift=True) == PitchPlan(66, 7)
    assert plan_pitch(62, even, skip_missing=True) == PitchPlan(62, 0)


def test_describe_pitches_does_not_claim_a_span_the_model_lacks():
    assert describe_pitches(range(24, 85)) == "24..84"
    assert describe_pitches([48, 49, 50, 60]) == "48..50, 60"
    assert describe_pitches(range(48, 67, 2)) == "10 pitches from 48 to 66"


# Placement, envelopes and sustain (notes of all ones) ----------------------------------

def test_onsets_lengths_and_envelope_positions_after_a_tempo_change(ones_model, song):
    env = Envelope(attack_percent=1, release_percent=25)  # A = 160, R = 4000 samples
    result = render_midi(ones_model, read_midi(song).notes, envelope=env, seed=0)
    mix = result.audio[:, 0]
    assert result.gain == 1.0  # nothing would clip: no normalisation
    # Note 1: 0.0 .. 0.25 s at velocity 127.
    assert mix[0] == 0.0 and mix[80] == pytest.approx(0.5)  # linear attack, halfway
    assert mix[160] == pytest.approx(1.0) and mix[3999] == pytest.approx(1.0)
    assert mix[4000] == pytest.approx(1.0)  # release starts at the note's end ...
    assert mix[6000] == pytest.approx(0.5)  # ... linear, halfway after R / 2
    assert mix[7999] > 0.0 and np.all(mix[8000:32000] == 0.0)
    # Note 2: beat 3 = 1.0 s + 1 beat at 60 bpm = 2.0 s (1.5 s if the tempo change were lost).
    v = 64 / 127
    assert mix[31999] == 0.0 and mix[32000] == 0.0 and mix[32001] > 0.0
    assert mix[32160] == pytest.approx(v) and mix[40000] == pytest.approx(v)  # held 0.5 s
    assert mix[42000] == pytest.approx(v / 2)
    assert len(mix) == 44000  # the buffer ends exactly with the last note's release


def test_long_note_loops_until_its_release_or_ends_with_its_audio(ones_model, tmp_path):
    path = write_midi(tmp_path / "long.mid", [[(0, on(60, 127)), (6 * TPB, off(60))]])  # 3 s
    notes = read_midi(path).notes
    result = render_midi(ones_model, notes, seed=0)  # sustain loop, the default
    mix = result.audio[:, 0]
    assert result.sustain == "loop"
    assert len(mix) == 3 * L + 4000  # held 3 s, then the 0.25 s release
    np.testing.assert_allclose(mix[160:3 * L], 1.0, atol=1e-6)  # the loop keeps it going
    assert mix[3 * L + 2000] == pytest.approx(0.5)  # the release starts at the note-off
    mix = render_midi(ones_model, notes, seed=0, sustain="natural").audio[:, 0]
    assert len(mix) == L  # the model renders 1 s: played once, it cannot sound longer
    assert mix[L - F - 1] == pytest.approx(1.0)  # ... and fades out where its audio ends
    assert mix[L - F // 2] == pytest.approx(0.5) and mix[L - 1] == pytest.approx(1 / F)
    with pytest.raises(ValueError, match="sustain mode"):
        render_midi(ones_model, notes, seed=0, sustain="forever")


def test_resampled_note_played_once_fades_where_its_shorter_audio_ends(ones_model, tmp_path):
    path = write_midi(tmp_path / "high.mid", [[(0, on(96, 127)), (6 * TPB, off(96))]])
    notes = read_midi(path).notes
    result = render_midi(ones_model, notes, seed=0, sustain="natural")
    mix = result.audio[:, 0]
    assert (result.resampled, result.largest_resample, list(result.note_pitch)) == (1, 12, [84])
    assert len(mix) == L // 2  # an octave up: the 1 s note played twice as fast
    assert mix[L // 2 - F // 2] == pytest.approx(0.5, abs=0.01)
    assert mix[L // 2 - 1] == pytest.approx(1 / F, abs=0.01)
    mix = render_midi(ones_model, notes, seed=0).audio[:, 0]  # looped, it lasts as held
    assert len(mix) == 3 * L + 4000
    np.testing.assert_allclose(mix[L:3 * L], 1.0, atol=0.01)


def test_overlapping_same_pitch_both_sound(ones_model, tmp_path):
    path = write_midi(tmp_path / "overlap.mid",
                      [[(0, on(60, 127)), (TPB // 5, on(60, 127)),  # second at 0.1 s
                        (TPB // 5, off(60)), (TPB // 5, off(60))]])  # ends 0.2 s and 0.3 s
    env = Envelope(attack_percent=0, release_percent=0)  # both the 5 ms minimum: 80 samples
    result = render_midi(ones_model, read_midi(path).notes, envelope=env, seed=0)
    mix = result.audio[:, 0]
    assert len(result.notes) == 2 and len(mix) == 4800 + F
    assert result.gain == 0.5  # the overlap peaks at 2: normalised to 1
    assert mix[0] == 0.0 and mix[F // 2] == pytest.approx(0.25)  # a 5 ms attack, not a step
    assert mix[100] == 0.5 and mix[1700] == 1.0 and mix[4000] == 0.5
    assert mix[4800 + F // 2] == pytest.approx(0.25)  # and a 5 ms release


def test_release_100_percent_is_not_silent(ones_model, tmp_path):
    path = write_midi(tmp_path / "r.mid", [[(0, on(60, 127)), (TPB, off(60))]])  # 0.5 s
    env = Envelope(attack_percent=0, release_percent=100)
    for sustain in ("loop", "natural"):
        mix = render_midi(ones_model, read_midi(path).notes, envelope=env, seed=0,
                          sustain=sustain).audio[:, 0]
        assert mix[F:L // 2] == pytest.approx(1.0)  # held at full level
        assert mix[L // 2 + L // 4] == pytest.approx(0.75)  # then a 1 s release ...
        # ... cut short (faded) where the audio ends when it is played once.
        assert len(mix) == (L // 2 + L if sustain == "loop" else L)


def test_normalised_only_when_clipping_or_asked(ones_model, tmp_path):
    chord = write_midi(tmp_path / "chord.mid", [[(0, on(60, 127)), (0, on(64, 127)),
                                                 (0, on(67, 127)), (TPB, off(60)),
                                                 (0, off(64)), (0, off(67))]])
    result = render_midi(ones_model, read_midi(chord).notes, seed=0)
    assert result.gain == pytest.approx(1 / 3) and np.max(np.abs(result.audio)) == 1.0
    quiet = write_midi(tmp_path / "quiet.mid", [[(0, on(60, 32)), (TPB, off(60))]])
    result = render_midi(ones_model, read_midi(quiet).notes, seed=0)
    assert result.gain == 1.0 and np.max(result.audio) == pytest.approx(32 / 127)
    result = render_midi(ones_model, read_midi(quiet).notes, seed=0, normalize=True)
    assert np.max(result.audio) == pytest.approx(1.0)


def test_no_playable_notes_raises(ones_model, tmp_path):
    path = write_midi(tmp_path / "low.mid", [[(0, on(20)), (TPB, off(20))]])
    with pytest.raises(RenderError, match=r"no playable notes: 1 notes, 1 not among the "
                                          r"model's pitches \(36..84\) nor within 12"):
        render_midi(ones_model, read_midi(path).notes, seed=0)
    assert len(render_midi(ones_model, read_midi(path).notes, seed=0, max_resample=16).audio)


def test_limits_are_checked_before_the_mix_is_allocated(ones_model):
    long_note = [Note(0.0, 1.0, 60, 100), Note(3599.0, 3601.0, 62, 100)]
    with pytest.raises(RenderError, match=r"the notes last until 3,601 s \(1 h\); "
                                          r"gansynth-generate renders at most 3,600 s"):
        render_midi(ones_model, long_note, seed=0)
    many = [Note(i * 0.01, i * 0.01 + 0.01, 60, 100) for i in range(100_001)]
    with pytest.raises(RenderError, match=r"100,001 notes; gansynth-generate renders at "
                                          r"most 100,000"):
        render_midi(ones_model, many, seed=0)


# The tiny real model ----------------------------------------------------------------------

def test_mix_is_the_generated_notes_shaped_looped_resampled_and_placed(models, tmp_path):
    model = models["mono_model"]
    path = write_midi(tmp_path / "three.mid", [
        [(0, on(48, 100)), (TPB, off(48)), (TPB, on(55, 50)), (TPB, off(55))],
        [(0, on(48, 100)), (TPB, off(48)), (TPB * 3, on(60, 127)), (TPB * 4, off(60)),
         (0, on(90, 90)), (TPB * 3, off(90))]])
    calls = []
    generate = model.generate
    model.generate = lambda z, p: calls.append(len(z)) or generate(z, p)
    try:
        result = render_midi(model, read_midi(path).notes, seed=3, batch_size=8)
    finally:
        del model.generate
    assert sum(calls) == 4  # the two identical notes (same start, same pitch) made once
    assert [n.pitch for n in result.notes] == [48, 48, 55, 60, 90]
    assert list(result.note_pitch) == [48, 48, 55, 60, 84]  # 90 is made from 84 ...
    assert list(result.note_resample) == [0, 0, 0, 0, 6]  # ... 6 semitones up
    assert (result.resampled, result.largest_resample, result.shifted) == (1, 6, 0)
    env = Envelope()
    audio = model.generate(result.note_z[[0, 2, 3, 4]], result.note_pitch[[0, 2, 3, 4]])
    audio = list(audio[[0, 0, 1, 2, 3]])
    # The resampled note: 2**(6/12) times faster, i.e. from SR to SR / 2**(6/12) samples/s.
    audio[4] = soxr.resample(audio[4], SR, SR / 2 ** 0.5, quality="HQ").reshape(-1, 1)
    assert len(audio[4]) == round(L / 2 ** 0.5)
    expected = np.zeros_like(result.audio)
    for note, note_audio in zip(result.notes, audio):
        start, held = round(note.start * SR), round(note.end * SR) - round(note.start * SR)
        gain = env.note_gain(held, L, SR, loop=True) * note.velocity / 127
        # Each note's own loop (found at the pitch it plays), repeated while it is held.
        played = looped(loop_note(note_audio, SR, note.pitch), len(gain))
        expected[start:start + len(gain)] += played * gain[:, None]
    expected *= result.gain
    np.testing.assert_allclose(result.audio, expected, atol=2e-5)
    assert [round(n.start * SR) for n in result.notes] == [0, 0, 16000, 32000, 64000]
    assert len(result.audio) == 64000 + 24000 + 4000  # the 1.5 s note 90 outlasts its audio
    # Each note's z follows the schedule: a new instrument every 6 s, slerped by start time.
    np.testing.assert_allclose(result.anchor_times, [0.0, 6.0])
    np.testing.assert_allclose(result.note_z[3], slerp(result.anchors[0], result.anchors[1],
                                                       2.0 / 6.0), rtol=1e-5)


def test_write_outputs_leaves_nothing_when_a_write_fails(tmp_path):
    def boom(path):
        raise OSError("disk full")

    out_dir = tmp_path / "new"
    with pytest.raises(OSError, match="disk full"):
        write_outputs(out_dir, {"a.wav": lambda p: p.write_bytes(b"1"), "b.wav": boom})
    assert not out_dir.exists()
    out_dir.mkdir()
    (out_dir / "a.wav").write_bytes(b"old")
    with pytest.raises(OSError):
        write_outputs(out_dir, {"a.wav": lambda p: p.write_bytes(b"new"), "b.wav": boom})
    assert os.listdir(out_dir) == ["a.wav"] and (out_dir / "a.wav").read_bytes() == b"old"


def test_command_as_a_subprocess_matches_the_in_process_render(models, song, tmp_path, capsys):
    args = ["--ckpt_dir", models["mono"], "--midi_file", song, "--seed", 11]
    rc, _, _ = run(args + ["--output_dir", tmp_path / "a"], capsys)
    assert rc == 0
    script = Path(sys.executable).with_name("gansynth-generate")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gansynth_live.render"]
    proc = subprocess.run(cmd + [str(a) for a in args] + ["--output_dir", str(tmp_path / "b"),
                                                          "--quiet"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # --quiet
    wav = (tmp_path / "b" / "generated_clip.wav").read_bytes()
    assert wav == (tmp_path / "a" / "generated_clip.wav").read_bytes()
    assert sf.info(tmp_path / "b" / "generated_clip.wav").frames == 44000


# The embedded default model -----------------------------------------------------------------

def test_a_held_note_loops_for_as_long_as_it_is_held(default_model):
    """A 10 s note of a model whose notes last 1 s: in sustain loop it sounds at its own
    sustain level for 10 s, then releases; in sustain natural it ends with its audio."""
    model, pitch = default_model, 60
    notes = [Note(0.0, 10.0, pitch, 127)]
    result = render_midi(model, notes, seed=0)
    clip = result.audio[:, 0]
    assert result.gain == 1.0
    note = model.generate(result.note_z[:1], [pitch])[0, :, 0]  # the unlooped note
    first, last = steady_part(note, SR, pitch)
    steady = rms(note[first:last])
    windows = [db(rms(clip[k * SR:(k + 1) * SR]), steady) for k in range(1, 10)]
    assert np.all(np.abs(windows) < 3.0), windows  # 1 s .. 10 s: as loud as its steady part
    release = 4000  # 25 % of the model's 1 s
    assert len(clip) == 10 * SR + release  # stops after its release ...
    assert db(rms(clip[-release // 4:]), steady) < -12.0  # ... fading out
    assert db(rms(clip[10 * SR - release // 4:10 * SR]), steady) > -3.0  # not before the note-off

    result = render_midi(model, notes, seed=0, sustain="natural")
    assert len(result.audio) == L  # played once: over after the model's 1 s note
    np.testing.assert_allclose(result.audio[160:L // 2, 0], note[160:L // 2], atol=2e-3)


def test_notes_above_the_model_range_all_sound_at_their_pitch(default_model):
    model = default_model
    notes = [Note(0.5 * i, 0.5 * i + 0.2, 90 + i, 100) for i in range(7)]  # 90..96 > 84
    result = render_midi(model, notes, seed=0)
    clip = result.audio[:, 0]
    assert (result.resampled, result.largest_resample, result.skipped_out_of_range) == \
        (7, 12, 0)
    assert list(result.note_pitch) == [84] * 7 and list(result.note_resample) == list(range(6, 13))
    for i, note in enumerate(result.notes):
        start = round(note.start * SR)
        generated = model.generate(result.note_z[i:i + 1], [84])[0, :, 0]
        onset = rms(clip[start:start + 800])  # the first 50 ms of the note
        assert onset > 0.1 * rms(generated[:800]), (note.pitch, onset)
        if start:
            assert rms(clip[start - 800:start]) < 0.01 * onset  # the previous note is over
        # At its pitch: the generated 84 moved up by the resampling, not by another amount.
        assert pitch_shift_cents(generated[800:4000], clip[start + 400:start + 3200]) == \
            100 * (note.pitch - 84)

    skipped = render_midi(model, notes + [Note(4.0, 4.5, 60, 100)], seed=0, skip_missing=True)
    assert (skipped.skipped_out_of_range, skipped.resampled, len(skipped.notes)) == (7, 0, 1)
    shifted = render_midi(model, notes, seed=0, octave_shift=True)
    assert (shifted.shifted, shifted.largest_octave_shift, shifted.resampled) == (7, 1, 0)
    assert list(shifted.note_pitch) == list(range(78, 85))


@pytest.mark.parametrize("sustain", ["loop", "natural"])
@pytest.mark.parametrize("params", [{"attack_percent": 0}, {"attack_percent": 100},
                                    {"release_percent": 0}, {"release_percent": 100}],
                         ids=lambda p: "_".join(f"{k.split('_')[0]}{v:g}" for k, v in p.items()))
def test_envelope_edge_values_do_not_click(default_model, params, sustain):
    """No sample of the clip jumps more than the generated note's own waveform does
    (largest |second difference| <= 1.5 x the note's 99.9th percentile), with the 0 %
    attack or release (5 ms) and the 100 % ones. Pitch 48, seed 2: a note whose waveform
    is large where it starts and where the note-off falls (checked below), so a step
    there would show."""
    model, pitch, held = default_model, 48, 2.5
    envelope = Envelope(**params)
    result = render_midi(model, [Note(0.0, held, pitch, 127)], envelope=envelope, seed=2,
                         sustain=sustain)
    clip = result.audio[:, 0]
    assert result.gain == 1.0
    note = model.generate(result.note_z[:1], [pitch])[0, :, 0]
    assert click_ratio(clip, note) <= 1.5
    _, release = envelope.segment_lengths(L, SR)
    if sustain == "loop":
        assert len(clip) == held * SR + release
    else:
        assert len(clip) == L  # held longer than the 1 s note: it ends with its audio
    stream = looped(loop_note(note[:, None], SR, pitch), int(held * SR))[:, 0]
    assert rms(clip) > 0.3 * rms(stream[:len(clip)])  # not silent (the old release 100 % was)
    # The measure sees a step at these places: the note started at full gain, and the
    # looped note stopped dead at its note-off.
    step_on = np.concatenate([np.zeros(100, np.float32), note])
    step_off = np.concatenate([stream, np.zeros(100, np.float32)])
    assert click_ratio(step_on, note) > 1.5 and click_ratio(step_off, note) > 1.5
