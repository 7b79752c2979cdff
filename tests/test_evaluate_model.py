"""training/evaluate_model.py: the pitch-accuracy and timbre-diversity metrics, and the CLI."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("librosa")

from training import evaluate_model as em  # noqa: E402
from training.dataset import quantize_int16  # noqa: E402
from training.soundfont import TIMGM6MB, render_note  # noqa: E402

SR = 16000
PIANO, VIOLIN, FLUTE, TRUMPET = 0, 40, 73, 56
PITCHES = (36, 60, 79)


@pytest.fixture(scope="module")
def notes():
    """Real TimGM6mb notes, one second: {(program, pitch): float32 [16000]}."""
    if not os.path.exists(TIMGM6MB):
        pytest.skip("TimGM6mb soundfont not installed")
    wanted = [(p, q) for p in (PIANO, VIOLIN) for q in PITCHES]
    wanted += [(FLUTE, 60), (TRUMPET, 60)]
    return {k: render_note(*k, num_samples=SR) for k in wanted}


def real_batch(notes):
    keys = [(p, q) for p in (PIANO, VIOLIN) for q in PITCHES]
    return np.stack([notes[k] for k in keys]), np.array([q for _, q in keys])


def test_real_notes_score_correct(notes):
    audio, pitches = real_batch(notes)
    correct, est = em.pitch_accuracy(audio, SR, pitches)
    assert correct.dtype == bool and correct.shape == (6,)
    assert correct.all(), (pitches, est)
    assert np.all(np.abs(est - pitches) < 0.5)


def test_notes_labelled_a_semitone_off_score_wrong(notes):
    audio, pitches = real_batch(notes)
    for shift in (1, -1):
        correct, est = em.pitch_accuracy(audio, SR, pitches + shift)
        assert not correct.any(), (pitches + shift, est)
        # the f0 is still found (at the true pitch): it is the label that is wrong
        assert np.all(np.abs(est - pitches) < 0.5)


def test_sine_scores_correct_and_silence_wrong():
    t = np.arange(SR) / SR
    a440 = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    c1 = 0.3 * np.sin(2 * np.pi * 32.703 * t)    # the lowest pitch of the default range
    c6 = 0.3 * np.sin(2 * np.pi * 1046.5 * t)    # the highest
    correct, est = em.pitch_accuracy(np.stack([a440, c1, c6, np.zeros(SR)]), SR, [69, 24, 84, 69])
    assert correct.tolist() == [True, True, True, False]
    assert abs(est[0] - 69) < 0.1 and np.isnan(est[3])
    # one note, 1-D, also works; stereo (B, samples, 2) is downmixed
    assert em.pitch_accuracy(a440, SR, 69)[0].tolist() == [True]
    stereo = np.stack([a440, a440], axis=-1)[np.newaxis]
    assert em.pitch_accuracy(stereo, SR, [69])[0].tolist() == [True]


def test_noise_and_short_notes():
    noise = 0.1 * np.random.default_rng(0).standard_normal((2, SR)).astype(np.float32)
    assert not em.pitch_accuracy(noise, SR, [60, 72])[0].any()
    t = np.arange(SR // 4) / SR                   # 0.25 s: the window is 0.1..0.25 s
    short = 0.3 * np.sin(2 * np.pi * 261.63 * t)
    assert em.pitch_accuracy(short, SR, 60)[0].tolist() == [True]


def test_timbre_diversity_separates_instruments_from_repeats(notes):
    different = np.stack([notes[(p, 60)] for p in (PIANO, VIOLIN, FLUTE, TRUMPET)])
    repeated = np.stack([notes[(PIANO, 60)]] * 4)
    d_diff = em.timbre_diversity(different, SR, [60] * 4)
    d_same = em.timbre_diversity(repeated, SR, 60)
    assert d_same["mfcc_distance"] == pytest.approx(0.0, abs=1e-6)
    assert d_same["centroid_spread_octaves"] == pytest.approx(0.0, abs=1e-9)
    assert d_diff["mfcc_distance"] > 10.0
    assert d_diff["centroid_spread_octaves"] > 0.1
    assert d_diff["pitches"] == 1
    # two pitches, each with its own group; a single note per pitch gives no pairs
    both = em.timbre_diversity(np.concatenate([different, repeated]), SR, [60] * 4 + [61] * 4)
    assert both["pitches"] == 2
    assert both["mfcc_distance"] == pytest.approx(d_diff["mfcc_distance"] / 2, rel=1e-5)
    assert em.timbre_diversity(different[:1], SR, [60])["pitches"] == 0


def test_parallel_analysis_matches_serial(notes):
    audio, pitches = real_batch(notes)
    serial = em.evaluate_audio(audio, SR, pitches, jobs=1)
    parallel = em.evaluate_audio(audio, SR, pitches, jobs=2)
    for key in ("accuracy", "per_octave", "per_pitch", "diversity"):
        assert serial[key] == parallel[key]
    assert list(serial["per_octave"]) == ["C2", "C4", "C5"]
    assert serial["per_octave"]["C4"] == {"pitches": [60, 60], "notes": 2, "correct": 2,
                                          "accuracy": 1.0}
    assert serial["per_pitch"] == {"36": 1.0, "60": 1.0, "79": 1.0}


def test_parse_pitch_list():
    assert em.parse_pitch_list(["60", "24-26", "60"]) == [24, 25, 26, 60]
    with pytest.raises(ValueError):
        em.parse_pitch_list(["C4"])
    assert em.octave_name(24) == "C1" and em.octave_name(84) == "C6" and em.octave_name(59) == "C3"


# ----------------------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def wav_folder(notes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavs")
    for (program, pitch), x in notes.items():
        name = {PIANO: "piano", VIOLIN: "violin", FLUTE: "flute", TRUMPET: "trumpet"}[program]
        sf.write(str(folder / f"{name}_{pitch}.wav"), quantize_int16(x), SR, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    gl = pytest.importorskip("gansynth_live")
    model = gl.Model(gl.preset("tiny"), [48, 60, 72], name="tiny-eval")
    return gl.save_model(model, tmp_path_factory.mktemp("models") / "tiny")


def test_cli_model_and_wav_folder(tiny_model_dir, wav_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = em.main(["--model", str(tiny_model_dir), "--latents", "3", "--pitches", "60", "72",
                    "--dataset", str(wav_folder), "--jobs", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "| Octave | Pitches | Model | Training data |" in table
    assert "| C4 | 60 |" in table and "| C5 | 72 |" in table
    assert "**All**" in table and "MFCC distance" in table
    result = json.loads(out.read_text())
    model, data = result["model"], result["dataset"]
    assert model["notes"] == 6 and model["name"] == "tiny-eval"
    assert list(model["per_octave"]) == ["C4", "C5"]
    assert 0.0 <= model["accuracy"] <= 1.0
    assert model["diversity"]["pitches"] == 2
    # the dataset is restricted to the evaluated pitches: piano/violin/flute/trumpet at 60
    assert data["notes"] == 4 and data["pitches"] == [60, 60]
    assert data["accuracy"] == 1.0
    assert data["diversity"]["mfcc_distance"] > 10.0


def test_cli_data_only_on_a_made_dataset(wav_folder, tmp_path, capsys):
    from training import make_dataset

    ds_dir = tmp_path / "ds"
    assert make_dataset.main(["--in_dir", str(wav_folder), "--out_dir", str(ds_dir),
                              "--length", str(SR)]) == 0
    capsys.readouterr()
    assert em.main(["--dataset", str(ds_dir), "--data_only", "--jobs", "2"]) == 0
    table = capsys.readouterr().out
    assert "| Octave | Pitches | Training data |" in table
    assert "| C2 | 36 | 100.0 % (2/2) |" in table
    assert "| **All** | 36-79 | **100.0 % (8/8)** |" in table


def test_cli_errors(tiny_model_dir, tmp_path, capsys):
    assert em.main(["--model", str(tiny_model_dir), "--pitches", "61", "--latents", "1"]) == 1
    assert "not in the model's vocabulary" in capsys.readouterr().err
    assert em.main(["--model", str(tmp_path / "nope"), "--latents", "1"]) == 1
    assert em.main(["--dataset", str(tmp_path), "--data_only"]) == 1
    with pytest.raises(SystemExit):
        em.main(["--data_only"])
