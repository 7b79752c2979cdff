"""training/make_dataset.py and training/dataset.py on real (FluidSynth-rendered) notes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

tf = pytest.importorskip("tensorflow")

from training import dataset as ds  # noqa: E402
from training import make_dataset  # noqa: E402
from training.soundfont import render_note  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR, LENGTH = 16000, 64000
PIANO, VIOLIN = 0, 40

# How a standard NSynth reader (Magenta, TFDS) parses a record.
NSYNTH_SPEC = {
    "note_str": tf.io.FixedLenFeature([], tf.string),
    "pitch": tf.io.FixedLenFeature([], tf.int64),
    "velocity": tf.io.FixedLenFeature([], tf.int64),
    "audio": tf.io.FixedLenFeature([LENGTH], tf.float32),
    "qualities": tf.io.FixedLenFeature([10], tf.int64),
    "instrument": tf.io.FixedLenFeature([], tf.int64),
    "instrument_str": tf.io.FixedLenFeature([], tf.string),
    "instrument_source": tf.io.FixedLenFeature([], tf.int64),
    "instrument_source_str": tf.io.FixedLenFeature([], tf.string),
    "instrument_family": tf.io.FixedLenFeature([], tf.int64),
    "instrument_family_str": tf.io.FixedLenFeature([], tf.string),
    "sample_rate": tf.io.FixedLenFeature([], tf.int64),
}


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="session")
def rendered():
    """int16 mono notes rendered once: (program, pitch) -> [64000]."""
    if not os.path.exists("/usr/share/sounds/sf2/TimGM6mb.sf2"):
        pytest.skip("TimGM6mb soundfont not installed")
    return {(prog, pitch): ds.quantize_int16(render_note(prog, pitch))
            for prog in (PIANO, VIOLIN) for pitch in (48, 60, 72)}


def write_wav(path, samples, rate=SR, subtype="PCM_16"):
    sf.write(str(path), samples, rate, subtype=subtype)


def good_folder(folder, rendered):
    folder.mkdir(exist_ok=True)
    for (prog, pitch), x in rendered.items():
        write_wav(folder / f"{'piano' if prog == PIANO else 'violin'}_{pitch}.wav", x)
    return folder


def parse_records(path, spec=NSYNTH_SPEC):
    return [{k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()}
            for r in tf.data.TFRecordDataset(str(path))]


def run_main(*args):
    return make_dataset.main([str(a) for a in args])


def as_float(x):
    return x.astype(np.float32) / np.float32(32767)


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("name, expected", [
    ("cello_60.wav", ("cello", 60)),
    ("cello_060.wav", ("cello", 60)),
    ("my_inst_2_61.WAV", ("my_inst_2", 61)),
    ("noise.wav", None),
    ("_60.wav", None),
    ("cello_60b.wav", None),
])
def test_parse_note_name(name, expected):
    assert ds.parse_note_name(name) == expected


# ----------------------------------------------------------------------------- good runs

def test_cli_subprocess_writes_nsynth_records(tmp_path, rendered):
    in_dir = good_folder(tmp_path / "in", rendered)
    (in_dir / "readme.txt").write_text("notes about the samples")
    (in_dir / "takes").mkdir()
    out_dir = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "training/make_dataset.py", "--in_dir", in_dir, "--out_dir", out_dir],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "readme.txt: not a .wav file" in proc.stderr
    assert "takes: subdirectory" in proc.stderr
    assert "6 notes, 2 instrument(s)" in proc.stdout
    assert sorted(os.listdir(out_dir)) == ["data.tfrecord", "dataset.json", "meta.json"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]

    records = parse_records(out_dir / "data.tfrecord")
    assert len(records) == 6
    expected = sorted(rendered.items(), key=lambda kv: (kv[0][0] != PIANO, kv[0][1]))
    for rec, ((prog, pitch), x) in zip(records, expected):
        name = "piano" if prog == PIANO else "violin"
        np.testing.assert_array_equal(rec["audio"], as_float(x))
        assert rec["pitch"] == pitch
        assert rec["note_str"] == f"{name}_{pitch}".encode()
        assert rec["instrument_str"] == name.encode()
        assert rec["instrument"] == (0 if prog == PIANO else 1)
        assert rec["velocity"] == 100 and rec["sample_rate"] == SR
        assert rec["instrument_source"] == 0 and rec["instrument_family"] == 0
        assert rec["instrument_source_str"] == b"acoustic"
        assert rec["instrument_family_str"] == b"unknown"
        assert list(rec["qualities"]) == [0] * 10

    meta = json.loads((out_dir / "meta.json").read_text())
    assert meta["violin_60"] == {"instrument_str": "violin", "pitch": 60, "instrument_source": 0,
                                 "instrument_family": 0, "qualities": [0] * 10}
    assert sorted(meta) == sorted(f"{i}_{p}" for i in ("piano", "violin") for p in (48, 60, 72))
    info = json.loads((out_dir / "dataset.json").read_text())
    assert info["sample_rate"] == SR and info["length"] == LENGTH and info["channels"] == 1
    assert info["pitch_range"] == [24, 84]
    assert info["notes_per_pitch"] == {"48": 2, "60": 2, "72": 2}
    assert info["notes_per_instrument"] == {"piano": 3, "violin": 3}
    assert info["tfrecord_files"] == ["data.tfrecord"]

    elements = list(ds.read_dataset(out_dir))
    assert len(elements) == 6
    audio, pitch = elements[0]
    assert audio.shape == (LENGTH, 1) and audio.dtype == tf.float32 and pitch.dtype == tf.int32
    np.testing.assert_array_equal(audio.numpy()[:, 0], as_float(rendered[(PIANO, 48)]))
    assert [int(p) for _, p in elements] == [48, 60, 72] * 2


def test_refuses_to_overwrite(tmp_path, rendered, capsys):
    in_dir = good_folder(tmp_path / "in", rendered)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "data.tfrecord").write_bytes(b"precious")
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir) == 1
    err = capsys.readouterr().err
    assert "already holds data.tfrecord" in err and "refusing to overwrite" in err
    assert (out_dir / "data.tfrecord").read_bytes() == b"precious"
    assert os.listdir(out_dir) == ["data.tfrecord"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert run_main("--in_dir", in_dir, "--out_dir", other) == 1
    assert "is not empty" in capsys.readouterr().err


def test_empty_existing_out_dir_and_sharding(tmp_path, rendered, capsys):
    in_dir = good_folder(tmp_path / "in", rendered)
    out_dir = tmp_path / "out"
    out_dir.mkdir()  # an empty folder is fine
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir, "--shard_size", 2) == 0
    shards = [f"data-{i:05d}-of-00003.tfrecord" for i in range(3)]
    assert sorted(os.listdir(out_dir)) == sorted(shards + ["meta.json", "dataset.json"])
    assert [len(parse_records(out_dir / s)) for s in shards] == [2, 2, 2]
    assert json.loads((out_dir / "dataset.json").read_text())["tfrecord_files"] == shards
    assert [int(p) for _, p in ds.read_dataset(out_dir)] == [48, 60, 72] * 2
    out = capsys.readouterr().out
    assert all(s in out for s in shards)


# ----------------------------------------------------------------------------- bad files

def make_bad_files(folder, rendered):
    """Write one of each bad case; returns {filename: expected reason fragment}."""
    piano60 = rendered[(PIANO, 60)]
    (folder / "text_60.wav").write_text("this is not audio at all, just some text\n" * 10)
    write_wav(folder / "trunc_60.wav", piano60)
    data = (folder / "trunc_60.wav").read_bytes()
    (folder / "trunc_60.wav").write_bytes(data[:len(data) // 2])
    write_wav(folder / "rate_60.wav", np.zeros(176400, np.int16), rate=44100)
    write_wav(folder / "deep_60.wav", piano60, subtype="PCM_24")
    write_wav(folder / "float_60.wav", as_float(piano60), subtype="FLOAT")
    write_wav(folder / "stereo_60.wav", np.stack([piano60, piano60], axis=1))
    write_wav(folder / "short_60.wav", piano60[:32000])
    write_wav(folder / "noise.wav", piano60)
    write_wav(folder / "high_100.wav", piano60)
    write_wav(folder / "x_062.wav", piano60)
    write_wav(folder / "x_62.wav", piano60)
    return {
        "text_60.wav": "not a WAV file",
        "trunc_60.wav": "truncated WAV",
        "rate_60.wav": "wrong sample rate: 44100 Hz, need 16000 Hz",
        "deep_60.wav": "wrong bit depth: PCM_24",
        "float_60.wav": "wrong bit depth: FLOAT",
        "stereo_60.wav": "wrong channel count: 2, need 1 (mono)",
        "short_60.wav": "wrong length: 32000 frames, need 64000",
        "noise.wav": "name has no pitch",
        "high_100.wav": "pitch 100 outside the pitch range 24..84",
        "x_62.wav": "duplicate of x_062.wav",
    }


def test_every_bad_file_is_reported_and_nothing_written(tmp_path, rendered, capsys):
    in_dir = good_folder(tmp_path / "in", rendered)
    expected = make_bad_files(in_dir, rendered)
    (in_dir / "readme.txt").write_text("hello")
    out_dir = tmp_path / "out"
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir) == 1
    err = capsys.readouterr().err
    for name, reason in expected.items():
        assert f"{name}: {reason}" in err, name
    assert "readme.txt: not a .wav file" in err
    assert f"{len(expected)} bad file(s)" in err
    assert "piano_60.wav" not in err  # good files are not blamed
    assert not out_dir.exists()
    assert sorted(os.listdir(tmp_path)) == ["in"]


@pytest.mark.parametrize("bad", ["text_60.wav", "trunc_60.wav", "rate_60.wav", "deep_60.wav",
                                 "float_60.wav", "stereo_60.wav", "short_60.wav", "noise.wav",
                                 "high_100.wav", "x_62.wav"])
def test_each_bad_file_alone_fails(tmp_path, rendered, bad):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    reasons = make_bad_files(scratch, rendered)
    in_dir = good_folder(tmp_path / "in", rendered)
    os.rename(scratch / bad, in_dir / bad)
    if bad == "x_62.wav":
        os.rename(scratch / "x_062.wav", in_dir / "x_062.wav")
    scan = ds.scan_folder(str(in_dir), ds.AudioSpec())
    assert [str(p) for p in scan.problems] == [f"{bad}: " + scan.problems[0].reason]
    assert reasons[bad] in scan.problems[0].reason
    assert len(scan.notes) == 6 + (bad == "x_62.wav")


def test_length_is_judged_after_resampling(tmp_path):
    spec = ds.AudioSpec()
    write_wav(tmp_path / "a_60.wav", np.zeros(88200, np.int16), rate=44100)  # 2 s
    problems, fixes = ds.check_wav_file(str(tmp_path / "a_60.wav"), spec)
    assert problems == [
        "wrong sample rate: 44100 Hz, need 16000 Hz; --fix would convert it",
        "wrong length: 88200 frames, need 64000 at 16000 Hz (4 s; this file is 2 s); "
        "--fix would convert it"]
    problems, fixes = ds.check_wav_file(str(tmp_path / "a_60.wav"), spec, fix=True)
    assert problems == [] and fixes == ["resample 44100 -> 16000 Hz", "pad 32000 -> 64000 frames"]


def test_empty_input_is_an_error(tmp_path, capsys):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    (in_dir / "readme.txt").write_text("nothing here")
    out_dir = tmp_path / "out"
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir) == 1
    err = capsys.readouterr().err
    assert "no valid <instrument>_<pitch>.wav files" in err and "readme.txt" in err
    assert not out_dir.exists()


def test_failure_while_writing_leaves_nothing(tmp_path, rendered, monkeypatch):
    in_dir = good_folder(tmp_path / "in", rendered)
    out_dir = tmp_path / "out"
    calls = []
    real_encode = make_dataset.encode_note

    def failing_encode(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk on fire")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(make_dataset, "encode_note", failing_encode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_main("--in_dir", in_dir, "--out_dir", out_dir)
    assert len(calls) == 2
    assert not out_dir.exists()
    assert sorted(os.listdir(tmp_path)) == ["in"]  # no .out.partial-* left behind


# ----------------------------------------------------------------------------- --fix

def test_fix_repairs_rate_length_channels_and_depth(tmp_path, rendered, capsys):
    piano, violin = rendered[(PIANO, 60)], rendered[(VIOLIN, 60)]
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    up = soxr.resample(as_float(piano).astype(np.float64), SR, 44100, quality="HQ")
    write_wav(in_dir / "rate_60.wav", up, rate=44100, subtype="FLOAT")
    write_wav(in_dir / "stereo_60.wav", np.stack([piano, violin], axis=1))
    write_wav(in_dir / "short_60.wav", piano[:LENGTH - 1001])
    write_wav(in_dir / "long_60.wav", np.concatenate([piano, violin[:500]]))
    write_wav(in_dir / "deep_60.wav", piano, subtype="PCM_24")
    out_dir = tmp_path / "out"

    assert run_main("--in_dir", in_dir, "--out_dir", out_dir) == 1  # strict without --fix
    assert not out_dir.exists()
    capsys.readouterr()
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir, "--fix") == 0
    out = capsys.readouterr().out
    assert "rate_60.wav: FLOAT -> PCM_16, resample 44100 -> 16000 Hz" in out
    assert "stereo_60.wav: downmix 2 -> 1 channels" in out

    audio = {r["note_str"].decode(): r["audio"] for r in parse_records(out_dir / "data.tfrecord")}
    assert all(a.shape == (LENGTH,) for a in audio.values())
    np.testing.assert_array_equal(audio["deep_60"], as_float(piano))
    np.testing.assert_array_equal(audio["long_60"], as_float(piano))  # the end is trimmed
    # 1001 samples of padding: right = 500, left = 501 (Magenta's even split)
    expected_short = np.concatenate([np.zeros(501), as_float(piano[:LENGTH - 1001]), np.zeros(500)])
    np.testing.assert_array_equal(audio["short_60"], expected_short.astype(np.float32))
    mix = np.round((piano.astype(np.float64) + violin) / 2)
    np.testing.assert_array_equal(audio["stereo_60"], as_float(mix))
    err = audio["rate_60"] - as_float(piano)
    snr = 10 * np.log10(np.sum(as_float(piano) ** 2) / np.sum(err ** 2))
    assert snr > 40, snr
    assert json.loads((out_dir / "dataset.json").read_text())["fixed_files"] == 5


def test_stereo_dataset(tmp_path, rendered, capsys):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    left, right = rendered[(PIANO, 48)], rendered[(VIOLIN, 48)]
    write_wav(in_dir / "duo_48.wav", np.stack([left, right], axis=1))
    write_wav(in_dir / "duo_60.wav", rendered[(PIANO, 60)])  # mono: duplicated by --fix
    out_dir = tmp_path / "out"
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir, "--channels", "stereo") == 1
    assert "duo_60.wav: wrong channel count: 1, need 2 (stereo)" in capsys.readouterr().err
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir, "--channels", "stereo",
                    "--fix") == 0

    spec = dict(NSYNTH_SPEC, audio=tf.io.FixedLenFeature([2 * LENGTH], tf.float32),
                channels=tf.io.FixedLenFeature([], tf.int64))
    rec48, rec60 = parse_records(out_dir / "data.tfrecord", spec)
    assert rec48["channels"] == 2
    np.testing.assert_array_equal(rec48["audio"][0::2], as_float(left))  # interleaved L R L R
    np.testing.assert_array_equal(rec48["audio"][1::2], as_float(right))
    np.testing.assert_array_equal(rec60["audio"][0::2], rec60["audio"][1::2])

    (a48, p48), (a60, p60) = list(ds.read_dataset(out_dir))
    assert a48.shape == (LENGTH, 2) and (int(p48), int(p60)) == (48, 60)
    np.testing.assert_array_equal(a48.numpy(), as_float(np.stack([left, right], axis=1)))
    assert json.loads((out_dir / "dataset.json").read_text())["channels"] == 2


def test_other_rate_seconds_and_pitch_range(tmp_path, capsys):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    rate = 22050
    for pitch in (30, 40):
        x = ds.quantize_int16(render_note(PIANO, pitch, sample_rate=rate, num_samples=rate))
        write_wav(in_dir / f"keys_{pitch}.wav", x, rate=rate)
    out_dir = tmp_path / "out"
    args = ["--in_dir", in_dir, "--out_dir", out_dir, "--sample_rate", rate, "--seconds", 1]
    assert run_main(*args, "--pitch_range", 35, 60) == 1
    assert "keys_30.wav: pitch 30 outside the pitch range 35..60" in capsys.readouterr().err
    assert run_main(*args, "--pitch_range", 30, 40) == 0
    info = json.loads((out_dir / "dataset.json").read_text())
    assert (info["sample_rate"], info["length"], info["pitch_range"]) == (rate, rate, [30, 40])
    shapes = [tuple(a.shape) for a, _ in ds.read_dataset(out_dir)]
    assert shapes == [(rate, 1), (rate, 1)]


# ----------------------------------------------------------------------------- folder loader

def test_load_wav_folder(tmp_path, rendered):
    in_dir = good_folder(tmp_path / "in", rendered)
    elements = list(ds.load_wav_folder(str(in_dir), SR, LENGTH, 1, (24, 84)))
    assert [int(p) for _, p in elements] == [48, 60, 72] * 2
    np.testing.assert_array_equal(elements[4][0].numpy()[:, 0], as_float(rendered[(VIOLIN, 60)]))

    write_wav(in_dir / "noise.wav", rendered[(PIANO, 48)])
    with pytest.raises(ds.DatasetError, match="noise.wav: name has no pitch"):
        ds.load_wav_folder(str(in_dir), SR, LENGTH, 1, (24, 84))
    os.remove(in_dir / "noise.wav")
    with pytest.raises(ds.DatasetError, match="wrong channel count: 1, need 2"):
        ds.load_wav_folder(str(in_dir), SR, LENGTH, 2, (24, 84))
    audio, pitch = next(iter(ds.load_wav_folder(str(in_dir), SR, LENGTH, 2, (24, 84), fix=True)))
    assert audio.shape == (LENGTH, 2) and int(pitch) == 48
    np.testing.assert_array_equal(audio.numpy()[:, 0], audio.numpy()[:, 1])


# ----------------------------------------------------------------------------- refused always

def test_a_fifo_named_like_a_note_is_refused_without_opening_it(tmp_path, rendered):
    """Opening a FIFO blocks until a writer comes: the old scan hung here. A subprocess
    with a timeout, so that a regression fails instead of hanging the suite."""
    in_dir = good_folder(tmp_path / "in", rendered)
    os.mkfifo(in_dir / "x_62.wav")
    os.mkfifo(in_dir / "pipe.txt")  # not a note name: skipped, also without opening it
    out_dir = tmp_path / "out"
    result = subprocess.run([sys.executable, os.path.join(REPO, "training", "make_dataset.py"),
                             "--in_dir", str(in_dir), "--out_dir", str(out_dir)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1, result.stderr
    assert "x_62.wav: not a regular file (a FIFO); only regular files are read" in result.stderr
    assert "pipe.txt: not a .wav file" in result.stderr
    assert "1 bad file(s)" in result.stderr and not out_dir.exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_infinite_float_audio_is_an_error_even_with_fix(tmp_path, rendered, capsys, value):
    """--fix used to quantise NaN to a silent note, with only a numpy warning."""
    in_dir = good_folder(tmp_path / "in", rendered)
    broken = as_float(rendered[(PIANO, 48)])
    broken[1000:1010] = value
    write_wav(in_dir / "broken_50.wav", broken, subtype="FLOAT")
    out_dir = tmp_path / "out"
    assert run_main("--in_dir", in_dir, "--out_dir", out_dir, "--fix") == 1
    err = capsys.readouterr().err
    assert ("broken_50.wav: 10 of 64000 samples are NaN or infinite (a broken float WAV); "
            "refused even with --fix") in err
    assert not out_dir.exists()
    # The reader refuses it too (a file changed after the scan, or load_wav_folder's reads).
    with pytest.raises(ds.DatasetError, match="broken_50.wav: 10 of 64000 samples are NaN"):
        ds.read_note_audio(str(in_dir / "broken_50.wav"), ds.AudioSpec(), fix=True)


def test_a_fifo_among_the_records_is_refused(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    os.mkfifo(folder / "data.tfrecord")
    with pytest.raises(ds.DatasetError, match="data.tfrecord: not a regular file \\(a FIFO\\)"):
        ds.read_dataset(str(folder))


@pytest.mark.parametrize("flags, message", [
    (["--length", "100000000000"],
     "--length 100000000000: length must be 1..960,000 samples (60 s at 16,000 Hz)"),
    (["--length", "0"], "--length 0: length must be 1..960,000"),
    (["--seconds", "inf"], "--seconds inf must be a positive number"),
    (["--seconds", "nan"], "--seconds nan must be a positive number"),
    (["--seconds", "61"], "--seconds 61.0: length must be 1..960,000"),
    (["--sample_rate", "200000"], "--sample_rate 200000: sample_rate must be 1..96,000 Hz"),
    (["--pitch_range", "5", "200"], "--pitch_range: pitch_range must satisfy"),
])
def test_sizes_out_of_range_are_one_line_naming_the_flag(tmp_path, capsys, flags, message):
    """Unbounded, --length 10^11 with --fix would pad every note to 400 GB."""
    with pytest.raises(SystemExit) as exit:
        make_dataset.parse_args(["--in_dir", str(tmp_path), "--out_dir",
                                 str(tmp_path / "out"), *flags])
    assert exit.value.code == 2
    assert f"gansynth-make-dataset: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
