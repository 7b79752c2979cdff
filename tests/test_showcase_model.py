"""training/showcase_model.py: the README's pictures and example WAVs of a model."""
import numpy as np
import soundfile as sf
from matplotlib.image import imread

import gansynth_live as gl
from training import showcase_model

PITCHES = list(range(36, 73))


def test_writes_pictures_and_wavs_of_the_model(tmp_path, capsys):
    gl.save_model(gl.Model(gl.preset("tiny"), PITCHES, name="tiny"), tmp_path / "model")
    code = showcase_model.main(["--model", str(tmp_path / "model"), "--out_dir",
                                str(tmp_path / "out")])
    assert code == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "arpeggio.wav", "interpolation.jpg", "interpolation.wav", "pitches.jpg", "pitches.wav"]
    for name in ("pitches.jpg", "interpolation.jpg"):
        picture = imread(out / name)
        assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] > 100
        assert picture.std() > 1  # not a blank canvas
    notes = {"pitches.wav": 4,  # C2 C3 C4 C5
             "interpolation.wav": showcase_model.INTERPOLATION_STEPS,
             "arpeggio.wav": 7 * len(showcase_model.LATENT_SEEDS)}
    for name, count in notes.items():
        audio, rate = sf.read(out / name)
        spacing = (showcase_model.ARPEGGIO_SPACING_S if name == "arpeggio.wav"
                   else showcase_model.NOTE_SPACING_S)
        assert rate == 16000 and sf.info(out / name).subtype == "PCM_16"
        assert len(audio) == round(spacing * 16000) * (count - 1) + 16000, name
        assert 0.85 < np.abs(audio).max() <= 0.9 + 1e-4
    assert "wrote" in capsys.readouterr().out


def test_pitch_choices():
    assert showcase_model.octave_pitches(list(range(24, 85))) == [24, 36, 48, 60, 72, 84]
    assert showcase_model.octave_pitches([61, 62, 63]) == [61]
    assert showcase_model.arpeggio_pitches(list(range(24, 85))) == [48, 52, 55, 60, 64, 67, 72]
    assert showcase_model.arpeggio_pitches(list(range(36, 73))) == [48, 52, 55, 60, 64, 67, 72]


def test_missing_model_is_one_line_error(tmp_path, capsys):
    code = showcase_model.main(["--model", str(tmp_path / "nope"), "--out_dir", str(tmp_path)])
    assert code == 1
    assert "nope" in capsys.readouterr().err
