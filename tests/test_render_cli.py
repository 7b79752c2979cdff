"""gansynth-generate as a command: outputs, repeatability, sustain, drums and pitch flags
(resampling, octave shift, skipping) with their summary lines, bad input."""
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

import gansynth_live.render as render
from render_helpers import (L, SR, TPB, default_model, models, off, on, run,  # noqa: F401
                            song, tempo, write_midi)

# The command line -----------------------------------------------------------------------

def test_cli_renders_repeatably_and_the_latents_file_reproduces(models, song, tmp_path, capsys):
    common = ["--ckpt_dir", models["mono"], "--midi_file", song, "--secs_per_instrument", 1]
    rc, out, _ = run(common + ["--output_dir", tmp_path / "a", "--seed", 5], capsys)
    assert rc == 0 and "seed 5" in out
    assert sorted(os.listdir(tmp_path / "a")) == ["generated_clip.wav", "latents.npz"]
    info = sf.info(tmp_path / "a" / "generated_clip.wav")
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert info.frames == 44000  # 2.5 s + 0.25 s release (release_percent 25 of 1 s)
    audio, _ = sf.read(tmp_path / "a" / "generated_clip.wav")
    assert np.all(audio[8000:32001] == 0.0) and np.any(audio[32001:32100] != 0.0)

    rc, _, _ = run(common + ["--output_dir", tmp_path / "b", "--seed", 5], capsys)
    assert rc == 0
    wav = (tmp_path / "a" / "generated_clip.wav").read_bytes()
    assert (tmp_path / "b" / "generated_clip.wav").read_bytes() == wav
    with np.load(tmp_path / "a" / "latents.npz") as a, np.load(tmp_path / "b" / "latents.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
        assert a["anchors"].shape == (4, 16)  # 2.5 s at 1 s per instrument: 0, 1, 2, 3 s
        assert list(a["note_pitch"]) == [60, 64] and str(a["mode"]) == "midi"
        assert str(a["sustain"]) == "loop" and list(a["note_resample"]) == [0, 0]

    rc, _, _ = run(["--ckpt_dir", models["mono"], "--midi_file", song, "--output_dir",
                    tmp_path / "c", "--latents", tmp_path / "a" / "latents.npz"], capsys)
    assert rc == 0 and (tmp_path / "c" / "generated_clip.wav").read_bytes() == wav

    rc, _, _ = run(common + ["--output_dir", tmp_path / "d", "--seed", 6], capsys)
    assert rc == 0 and (tmp_path / "d" / "generated_clip.wav").read_bytes() != wav


def test_cli_stereo_model_writes_two_channels(models, tmp_path, capsys):
    path = write_midi(tmp_path / "s.mid", [[(0, on(60)), (TPB, off(60))]])
    rc, _, _ = run(["--ckpt_dir", models["stereo"], "--output_dir", tmp_path / "out",
                    "--midi_file", path, "--format", "float", "--seed", 1], capsys)
    assert rc == 0
    audio, sr = sf.read(tmp_path / "out" / "generated_clip.wav", dtype="float32")
    assert sr == SR and audio.shape == (8000 + 4000, 2)
    assert sf.info(tmp_path / "out" / "generated_clip.wav").subtype == "FLOAT"
    assert not np.array_equal(audio[:, 0], audio[:, 1])  # two generated channels


def test_cli_drums_and_out_of_range_notes(models, tmp_path, capsys):
    path = write_midi(tmp_path / "mixed.mid", [
        [(0, on(60)), (TPB, off(60)), (0, on(24)), (TPB, off(24)), (0, on(100)), (TPB, off(100))],
        [(0, on(36, ch=9)), (TPB // 2, off(36, ch=9)), (0, on(38, ch=9)), (TPB // 2, off(38, ch=9))]])
    rc, out, _ = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "a",
                      "--midi_file", path, "--seed", 1], capsys)
    assert rc == 0
    assert "skipped 2 drum notes" in out
    # 24 is 12 below the model's lowest pitch 36: resampled; 100 is 16 above 84: skipped.
    assert "resampled 1 note from the nearest model pitch (up to 12 semitones)" in out
    assert ("skipped 1 note not among the model's pitches (36..84) nor within 12 semitones "
            "of one (a larger --max_resample resamples them; --octave_shift moves them by "
            "octaves)") in out
    with np.load(tmp_path / "a" / "latents.npz") as npz:
        assert list(npz["note_pitch"]) == [60, 36] and list(npz["note_resample"]) == [0, -12]
        assert list(npz["note_source_pitch"]) == [60, 24]
    rc, out, _ = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "m",
                      "--midi_file", path, "--seed", 1, "--max_resample", 16], capsys)
    assert rc == 0 and "resampled 2 notes from the nearest model pitch (up to 16 semitones)" in out
    assert not _summary(out, "skipped 1")
    rc, out, _ = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "b",
                      "--midi_file", path, "--seed", 1, "--octave_shift", "--include_drums"],
                     capsys)
    assert rc == 0 and "moved 2 notes by octaves to a model pitch (up to 2 octaves)" in out
    assert not _summary(out, "resampled", "skipped")  # drums included, 100 moved to 76
    with np.load(tmp_path / "b" / "latents.npz") as npz:
        pitches = sorted(zip(npz["note_start"], npz["note_source_pitch"], npz["note_pitch"]))
    assert pitches == [(0.0, 36, 36), (0.0, 60, 60), (0.25, 38, 38), (0.5, 24, 36),
                       (1.0, 100, 76)]


def test_cli_random_notes_without_midi(models, tmp_path, capsys):
    rc, _, _ = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "a",
                    "--num_notes", 3, "--seed", 2], capsys)
    assert rc == 0
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["generated_0.wav", "generated_1.wav", "generated_2.wav", "latents.npz"]
    assert sf.info(tmp_path / "a" / "generated_0.wav").frames == L
    rc, _, _ = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "b",
                    "--latents", tmp_path / "a" / "latents.npz"], capsys)
    assert rc == 0
    for name in names[:3]:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


def _bad_model(tmp_path):
    path = tmp_path / "broken_model"
    path.mkdir()
    (path / "config.json").write_text("{not json")
    return path


@pytest.mark.parametrize("case,expect", [
    ("missing_midi", "no such file"),
    ("empty_midi", "not a valid MIDI file"),
    ("corrupt_midi", "not a valid MIDI file"),
    ("no_notes", "no playable notes"),
    ("drums_only", "no playable notes"),
    ("out_of_range_only", "no playable notes"),
    ("unreadable_model", "cannot load model"),
    ("missing_model", "cannot load model"),
    ("damaged_model", "cannot load model"),
    ("attack_percent", "--attack_percent"),
    ("batch_size", "--batch_size"),
    ("secs_per_instrument", "--secs_per_instrument"),
    ("release_slope", "--release_slope"),
    ("nan_slope", "--attack_slope"),
    ("format", "--format"),
    ("seed", "--seed"),
    ("negative_seed", "--seed: must be in 0..9223372036854775807, got -1"),
    ("seed_beyond_int64", "--seed: must be in 0..9223372036854775807, got 9223372036854775808"),
    ("too_many_random_notes", "--num_notes/--num-notes: must be in 1..10000, got 10001"),
    ("output_is_a_file", "not a directory"),
    ("bad_latents", "latents file"),
    ("sustain", "--sustain"),
    ("max_resample", "--max_resample"),
    ("far_only_skip_missing", "without --skip_missing they are resampled"),
])
def test_bad_input_one_line_error_and_nothing_written(models, tmp_path, capsys, case, expect):
    midi = write_midi(tmp_path / "ok.mid", [[(0, on(60)), (TPB, off(60))]])
    out_dir = tmp_path / "out"
    args = {"--ckpt_dir": models["mono"], "--output_dir": out_dir, "--midi_file": midi}
    if case == "missing_midi":
        args["--midi_file"] = tmp_path / "nope.mid"
    elif case == "empty_midi":
        (tmp_path / "empty.mid").write_bytes(b"")
        args["--midi_file"] = tmp_path / "empty.mid"
    elif case == "corrupt_midi":
        (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01garbage")
        args["--midi_file"] = tmp_path / "bad.mid"
    elif case == "no_notes":
        args["--midi_file"] = write_midi(tmp_path / "n.mid", [[(0, tempo(90))]])
    elif case == "drums_only":
        args["--midi_file"] = write_midi(tmp_path / "d.mid", [[(0, on(36, ch=9)),
                                                              (TPB, off(36, ch=9))]])
    elif case == "out_of_range_only":
        args["--midi_file"] = write_midi(tmp_path / "r.mid", [[(0, on(100)), (TPB, off(100))]])
    elif case == "unreadable_model":
        args["--ckpt_dir"] = _bad_model(tmp_path)
    elif case == "missing_model":
        args["--ckpt_dir"] = tmp_path / "no_model"
    elif case == "damaged_model":  # made the loader raise AttributeError: a traceback
        shutil.copytree(models["mono"], tmp_path / "damaged")
        config = json.loads((tmp_path / "damaged" / "config.json").read_text())
        (tmp_path / "damaged" / "config.json").write_text(
            json.dumps({**config, "pitch_counts": [1, 2]}))
        args["--ckpt_dir"] = tmp_path / "damaged"
    elif case == "attack_percent":
        args["--attack_percent"] = 150
    elif case == "batch_size":
        args["--batch_size"] = 0
    elif case == "secs_per_instrument":
        args["--secs_per_instrument"] = 0
    elif case == "release_slope":
        args["--release_slope"] = -0.1
    elif case == "nan_slope":
        args["--attack_slope"] = "nan"
    elif case == "format":
        args["--format"] = "mp3"
    elif case == "seed":
        args["--seed"] = "abc"
    elif case == "negative_seed":  # numpy's "expected non-negative integer", after loading
        args["--seed"] = -1
    elif case == "seed_beyond_int64":
        args["--seed"] = 2**63
    elif case == "too_many_random_notes":  # all held in memory until written
        del args["--midi_file"]
        args["--num_notes"] = 10_001
    elif case == "output_is_a_file":
        out_dir.write_text("x")
    elif case == "sustain":
        args["--sustain"] = "forever"
    elif case == "max_resample":
        args["--max_resample"] = -1
    elif case == "far_only_skip_missing":
        args["--midi_file"] = write_midi(tmp_path / "f.mid", [[(0, on(90)), (TPB, off(90))]])
        args["--skip_missing"] = ""
    elif case == "bad_latents":
        (tmp_path / "l.npz").write_bytes(b"garbage")
        args["--latents"] = tmp_path / "l.npz"
    argv = [str(v) for kv in args.items() for v in kv if v != ""]
    rc, out, err = run(argv, capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansynth-generate: error:"), err
    assert expect in lines[0]
    if case == "output_is_a_file":
        assert out_dir.read_text() == "x"
    else:
        assert not out_dir.exists()


def test_existing_output_dir_is_left_as_it_was_on_error(models, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    empty = tmp_path / "e.mid"
    empty.write_bytes(b"")
    rc, _, _ = run(["--ckpt_dir", models["mono"], "--output_dir", out_dir, "--midi_file",
                    empty], capsys)
    assert rc == 1 and os.listdir(out_dir) == ["keep.txt"]


# Sustain and pitches the model lacks, with the default model ----------------------------

def _summary(out, *starts):
    """The summary lines of `out` that start with one of `starts`."""
    return [line for line in out.splitlines() if line.startswith(starts)]


@pytest.fixture
def default_cli(default_model, monkeypatch):
    """The command without --ckpt_dir, with the default model loaded once for all tests."""
    monkeypatch.setattr(render, "load_model", lambda path: default_model)


def test_cli_summary_counts_resampled_skipped_and_shifted_notes(default_cli, tmp_path, capsys):
    # 90..96: above the default model's 24..84; 60 is one of its pitches.
    events = [(0, on(60)), (TPB, off(60))]
    for pitch in range(90, 97):
        events += [(0, on(pitch)), (TPB // 2, off(pitch))]
    path = write_midi(tmp_path / "high.mid", [events])
    common = ["--midi_file", path, "--seed", 3]
    rc, out, _ = run(common + ["--output_dir", tmp_path / "a"], capsys)
    assert rc == 0 and "rendered 8 notes" in out and "sustain loop" in out
    assert "resampled 7 notes from the nearest model pitch (up to 12 semitones)" in out
    assert not _summary(out, "skipped", "moved")
    audio, _ = sf.read(tmp_path / "a" / "generated_clip.wav")
    for k in range(7):  # every note sounds: energy in the first 50 ms after its start
        start = SR // 2 + k * SR // 4
        assert np.sqrt(np.mean(audio[start:start + 800] ** 2)) > 1e-3, 90 + k

    rc, out, _ = run(common + ["--output_dir", tmp_path / "b", "--skip_missing"], capsys)
    assert rc == 0 and "rendered 1 notes" in out and not _summary(out, "resampled", "moved")
    assert ("skipped 7 notes not among the model's pitches (24..84) (without --skip_missing "
            "they are resampled from the nearest model pitch)") in out

    rc, out, _ = run(common + ["--output_dir", tmp_path / "c", "--octave_shift"], capsys)
    assert rc == 0 and "rendered 8 notes" in out and not _summary(out, "resampled", "skipped")
    assert "moved 7 notes by octaves to a model pitch (up to 1 octave)" in out
    with np.load(tmp_path / "c" / "latents.npz") as npz:
        assert list(npz["note_pitch"]) == [60] + list(range(78, 85))


def test_cli_sustain_natural_is_recorded_and_ends_with_the_audio(default_cli, tmp_path, capsys):
    path = write_midi(tmp_path / "long.mid", [[(0, on(60)), (TPB * 6, off(60))]])  # 3 s
    lengths = {}
    for mode in ("loop", "natural"):
        rc, out, _ = run(["--midi_file", path, "--seed", 1, "--sustain", mode,
                          "--output_dir", tmp_path / mode], capsys)
        assert rc == 0 and f"sustain {mode}" in out
        lengths[mode] = sf.info(tmp_path / mode / "generated_clip.wav").frames
        with np.load(tmp_path / mode / "latents.npz") as npz:
            assert str(npz["sustain"]) == mode
    assert lengths == {"loop": 3 * SR + 4000, "natural": L}


def test_cli_non_contiguous_pitches_are_named_as_they_are(models, tmp_path, capsys):
    """A model of the even pitches 48..66: 61 lies inside that span but is not one of them."""
    path = write_midi(tmp_path / "odd.mid", [[(0, on(61)), (TPB, off(61))]])
    rc, out, _ = run(["--ckpt_dir", models["even"], "--output_dir", tmp_path / "a",
                      "--midi_file", path, "--seed", 1], capsys)
    assert rc == 0 and "resampled 1 note from the nearest model pitch (up to 1 semitone)" in out
    with np.load(tmp_path / "a" / "latents.npz") as npz:
        assert list(npz["note_pitch"]) == [60] and list(npz["note_resample"]) == [1]
    rc, _, err = run(["--ckpt_dir", models["even"], "--output_dir", tmp_path / "b",
                      "--midi_file", path, "--seed", 1, "--skip_missing"], capsys)
    assert rc == 1 and "not among the model's pitches (10 pitches from 48 to 66)" in err
    assert "outside" not in err and "48..66" not in err


# Found early, shown while running ---------------------------------------------------------

def _no_model(path):
    raise AssertionError("the model was loaded before the output directory was checked")


@pytest.mark.parametrize("case", ["below_a_file", "read_only"])
def test_an_unusable_output_dir_is_found_before_the_model_loads(song, tmp_path, capsys,
                                                                  monkeypatch, case):
    monkeypatch.setattr(render, "load_model", _no_model)
    if case == "below_a_file":
        (tmp_path / "file").write_text("x")
        out_dir, why = tmp_path / "file" / "out", f"cannot be created: {tmp_path / 'file'} is"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        (tmp_path / "ro").mkdir(mode=0o555)
        out_dir, why = tmp_path / "ro" / "out", "is not writable (in"
    rc, _, err = run(["--output_dir", out_dir, "--midi_file", song], capsys)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"gansynth-generate: error: --output_dir {out_dir} ")
    assert why in lines[0]
    assert not out_dir.exists()


def test_progress_lines_when_stderr_is_not_a_terminal(models, song, tmp_path, capsys,
                                                      monkeypatch):
    """A log file or a batch job sees how far the render got (a terminal gets a bar)."""
    monkeypatch.setattr(render, "PROGRESS_INTERVAL_S", 0.0)  # a line per batch
    rc, _, err = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "a",
                      "--midi_file", song, "--seed", 1, "--batch_size", 1], capsys)
    assert rc == 0
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("gansynth-generate: generated 1/2 notes (50%), 0:")
    assert "elapsed, about 0:" in lines[0] and lines[0].endswith(" left")
    assert lines[1].startswith("gansynth-generate: generated 2/2 notes (100%), 0:")
    rc, _, err = run(["--ckpt_dir", models["mono"], "--output_dir", tmp_path / "b",
                      "--midi_file", song, "--seed", 1, "--quiet"], capsys)
    assert rc == 0 and err == ""


def test_progress_waits_its_interval_between_lines():
    import io

    stream = io.StringIO()  # not a terminal
    progress = render.Progress(1000, stream=stream)
    for _ in range(1000):
        progress.update(1)  # far faster than PROGRESS_INTERVAL_S
    assert stream.getvalue() == ""  # a quick render prints nothing
    progress.last_line -= render.PROGRESS_INTERVAL_S
    progress.done -= 1
    progress.update(1)
    assert stream.getvalue().startswith("gansynth-generate: generated 1000/1000 notes (100%)")
