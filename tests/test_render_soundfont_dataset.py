"""training/render_soundfont_dataset.py: the soundfont recipe end to end, on a few notes.

TimGM6mb (small, fast to load) stands in for FluidR3; at 16 kHz its notes at pitch 120
render silent, which exercises the silent-note skipping.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from training import render_soundfont_dataset as rsd
from training.dataset import quantize_int16
from training.soundfont import TIMGM6MB, render_note

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "training", "render_soundfont_dataset.py")
# pitches 60, 90, 120 (120 is silent in TimGM6mb at 16 kHz)
RECIPE = ["--soundfont", TIMGM6MB, "--programs", "piano=0", "violin=40",
          "--pitches", "60", "120", "--pitch_step", "30", "--seconds", "0.5"]

pytestmark = pytest.mark.skipif(not os.path.exists(TIMGM6MB), reason="TimGM6mb not installed")


def run_recipe(out_dir, hash_seed: str, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, SCRIPT, "--out_dir", str(out_dir), *RECIPE, *extra],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same recipe run twice: as a script in a child process (fixed hash seed), and
    in this process (its own hash seed), one note at a time."""
    root = tmp_path_factory.mktemp("recipe")
    first = run_recipe(root / "a" / "ds", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert rsd.main(["--out_dir", str(root / "b" / "ds"), *RECIPE, "--jobs", "1"]) == 0
    return root / "a", root / "b", first


def folder_bytes(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_dataset_written_and_parses_back(two_runs):
    from training.dataset import read_dataset

    a, _, run = two_runs
    assert sorted(os.listdir(a / "ds")) == ["data.tfrecord", "dataset.json", "meta.json"]
    info = json.loads((a / "ds" / "dataset.json").read_text())
    assert info["sample_rate"] == 16000 and info["length"] == 8000 and info["channels"] == 1
    assert info["pitch_range"] == [60, 120]
    assert info["instruments"] == ["piano", "violin"] and info["num_notes"] == 4
    notes = list(read_dataset(a / "ds").as_numpy_iterator())
    assert sorted(int(p) for _, p in notes) == [60, 60, 90, 90]
    for audio, _ in notes:
        assert audio.shape == (8000, 1) and audio.dtype == np.float32
        assert np.abs(audio).max() > 0.01
    assert "summary: 4 notes (2 silent skipped), 2 instruments" in run.stdout


def test_wavs_are_the_rendered_notes(two_runs):
    a, _, _ = two_runs
    wavs = a / "ds.wavs"
    assert sorted(os.listdir(wavs)) == ["piano_60.wav", "piano_90.wav",
                                        "violin_60.wav", "violin_90.wav"]
    info = sf.info(str(wavs / "violin_60.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 8000, "PCM_16")
    data, _ = sf.read(str(wavs / "violin_60.wav"), dtype="int16")
    want = quantize_int16(render_note(40, 60, num_samples=8000, hold_fraction=0.75))
    np.testing.assert_array_equal(data, want)


def test_silent_notes_are_skipped_and_listed(two_runs):
    a, _, run = two_runs
    assert "skipped 2 silent note(s)" in run.stdout
    assert "piano_120 (program 0, peak -inf dBFS)" in run.stdout
    assert "violin_120" in run.stdout
    assert not any("120" in name for name in os.listdir(a / "ds.wavs"))
    meta = json.loads((a / "ds" / "meta.json").read_text())
    assert sorted(meta) == ["piano_60", "piano_90", "violin_60", "violin_90"]


def test_byte_for_byte_reproducible(two_runs):
    a, b, _ = two_runs
    assert folder_bytes(a / "ds.wavs") == folder_bytes(b / "ds.wavs")
    assert folder_bytes(a / "ds") == folder_bytes(b / "ds")


def test_refuses_existing_output_before_rendering(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "data.tfrecord").write_bytes(b"precious")
    assert rsd.main(["--out_dir", str(out), *RECIPE]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert not (tmp_path / "ds.wavs").exists()

    wavs = tmp_path / "mine"
    wavs.mkdir()
    (wavs / "x_60.wav").write_bytes(b"")
    assert rsd.main(["--out_dir", str(tmp_path / "new"), "--wav_dir", str(wavs), *RECIPE]) == 1
    assert "--wav_dir" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ds", "mine"]  # no new or partial folders


def test_arguments():
    args = rsd.parse_args(["--out_dir", "data/x"])
    assert args.program_map == rsd.DEFAULT_PROGRAMS and len(args.program_map) == 16
    assert args.wav_dir == os.path.join("data", "x.wavs")
    assert args.num_samples == 16000 and args.pitches == [24, 84]
    jobs = rsd.note_jobs(args.program_map, 24, 84, 1)
    assert len(jobs) == 976 and len({j.filename for j in jobs}) == 976
    assert rsd.parse_program("french_horn=60") == ("french_horn", 60)
    for bad in ("violin", "violin=x", "violin=128", "../x=1", "=3"):
        with pytest.raises(Exception):
            rsd.parse_program(bad)
    with pytest.raises(SystemExit):
        rsd.parse_args(["--out_dir", "x", "--programs", "a=1", "a=2"])
    with pytest.raises(SystemExit):
        rsd.parse_args(["--out_dir", "x", "--pitches", "84", "24"])
