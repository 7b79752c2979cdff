"""Offline rendering: timbre schedule, note placement and envelopes, atomic output, the
command as a subprocess (byte-identical to the in-process render with the same seed)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import gansynth_live as gl
from gansynth_live.envelope import Envelope
from gansynth_live.latent import slerp
from gansynth_live.midi import read_midi
from gansynth_live.render import (RenderError, anchor_times, fit_pitch, note_latents,
                                  render_midi, write_outputs)
from render_helpers import L, SR, TPB, models, off, on, run, song, write_midi  # noqa: F401


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


# Placement and envelopes (notes of all ones) ----------------------------------------------

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


def test_long_note_fades_out_at_the_end_of_its_audio(ones_model, tmp_path):
    path = write_midi(tmp_path / "long.mid", [[(0, on(60, 127)), (6 * TPB, off(60))]])  # 3 s
    mix = render_midi(ones_model, read_midi(path).notes, seed=0).audio[:, 0]
    assert len(mix) == L  # the model renders 1 s: the note cannot sound longer
    assert mix[12000] == pytest.approx(1.0) and mix[14000] == pytest.approx(0.5)


def test_overlapping_same_pitch_both_sound(ones_model, tmp_path):
    path = write_midi(tmp_path / "overlap.mid",
                      [[(0, on(60, 127)), (TPB // 5, on(60, 127)),  # second at 0.1 s
                        (TPB // 5, off(60)), (TPB // 5, off(60))]])  # ends 0.2 s and 0.3 s
    env = Envelope(attack_percent=0, release_percent=0)
    result = render_midi(ones_model, read_midi(path).notes, envelope=env, seed=0)
    mix = result.audio[:, 0]
    assert len(result.notes) == 2 and len(mix) == 4800
    assert result.gain == 0.5  # the overlap peaks at 2: normalised to 1
    assert mix[100] == 0.5 and mix[1700] == 1.0 and mix[4000] == 0.5


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
    with pytest.raises(RenderError, match="no playable notes"):
        render_midi(ones_model, read_midi(path).notes, seed=0)


# The real model ---------------------------------------------------------------------------

def test_mix_is_the_generated_notes_shaped_and_placed(models, tmp_path):
    model = models["mono_model"]
    path = write_midi(tmp_path / "three.mid", [
        [(0, on(48, 100)), (TPB, off(48)), (TPB, on(55, 50)), (TPB, off(55))],
        [(0, on(48, 100)), (TPB, off(48)), (TPB * 3, on(60, 127)), (TPB // 4, off(60))]])
    calls = []
    generate = model.generate
    model.generate = lambda z, p: calls.append(len(z)) or generate(z, p)
    try:
        result = render_midi(model, read_midi(path).notes, seed=3, batch_size=8)
    finally:
        del model.generate
    assert sum(calls) == 3  # the two identical notes (same start, same pitch) made once
    env = Envelope()
    audio = model.generate(result.note_z[[0, 2, 3]], result.note_pitch[[0, 2, 3]])
    audio = audio[[0, 0, 1, 2]]
    expected = np.zeros_like(result.audio)
    for note, note_audio in zip(result.notes, audio):
        start, held = round(note.start * SR), round(note.end * SR) - round(note.start * SR)
        gain = env.note_gain(held, L) * note.velocity / 127
        expected[start:start + len(gain)] += note_audio[:len(gain)] * gain[:, None]
    expected *= result.gain
    np.testing.assert_allclose(result.audio, expected, atol=2e-5)
    assert [round(n.start * SR) for n in result.notes] == [0, 0, 16000, 32000]
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
