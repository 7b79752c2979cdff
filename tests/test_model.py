"""The inference API and the project's model directory."""
import json
import os
import zipfile

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live import model_dir

PITCHES = list(range(36, 49))


@pytest.fixture(scope="module")
def model():
    return gl.Model(gl.preset("tiny"), PITCHES, name="tiny-test")


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return gl.save_model(model, tmp_path_factory.mktemp("models") / "tiny")


def test_contract_properties(model):
    assert model.sample_rate == 16000 and model.latent_size == 16 and model.channels == 1
    assert model.pitches == tuple(PITCHES)


def test_generate_shapes_range_and_determinism(model):
    z = model.random_z(3, seed=5)
    audio = model.generate(z, [36, 40, 48])
    assert audio.shape == (3, 16000, 1) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0
    assert np.array_equal(audio, model.generate(z, [36, 40, 48]))
    specs = model.generate_specgrams(z, [36, 40, 48])
    assert specs.shape == (3, 128, 256, 2)
    # one vector, one pitch, and one pitch broadcast over a batch
    assert model.generate(z[0], 40).shape == (1, 16000, 1)
    assert model.generate(z, 40).shape == (3, 16000, 1)
    # A batch of 1 and of 3 may run different oneDNN kernels: on some CPUs the same note
    # differs by up to 2e-4 (measured on the 2-core VM), far below any wrong-note error.
    np.testing.assert_allclose(model.generate(z[1], 40)[0], audio[1], atol=1e-3)


def test_batches_larger_than_max_batch_match_single_notes(model):
    z = model.random_z(model.max_batch + 3, seed=2)
    pitches = [PITCHES[i % len(PITCHES)] for i in range(len(z))]
    specs = model.generate_specgrams(z, pitches)
    assert specs.shape[0] == len(z)
    np.testing.assert_allclose(specs[-1], model.generate_specgrams(z[-1], pitches[-1])[0],
                               rtol=1e-3, atol=1e-3)  # kernels per batch size: see above


def test_bad_inputs_name_what_is_allowed(model):
    with pytest.raises(ValueError, match=r"pitch 60 is not in the model's vocabulary: 36..48"):
        model.generate(model.random_z(1), [60])
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 16\), got \(2, 8\)"):
        model.generate(np.zeros((2, 8)), [36, 36])
    with pytest.raises(ValueError, match="2 latent vectors but 3 pitches"):
        model.generate(model.random_z(2), [36, 37, 38])
    for bad in (float("nan"), 60.5, float("inf")):
        with pytest.raises(ValueError, match="not in the model's vocabulary"):
            model.generate(model.random_z(1), [bad])
    assert model.labels([36.0, 48]).tolist() == [0, 12]
    with pytest.raises(ValueError, match="NaN"):
        model.generate(np.full((1, 16), np.nan), [36])


def test_save_load_round_trip(model, saved):
    assert sorted(os.listdir(saved)) == ["config.json", "generator.npz"]
    assert not [p for p in os.listdir(saved.parent) if p.startswith(".")]  # no temp dir left
    loaded = gl.load_model(saved)
    assert loaded.pitches == model.pitches and loaded.config == model.config
    assert loaded.name == "tiny-test"
    z = model.random_z(2, seed=9)
    np.testing.assert_array_equal(loaded.generate_specgrams(z, [36, 48]),
                                  model.generate_specgrams(z, [36, 48]))


def test_save_refuses_to_overwrite_unless_asked(model, saved, tmp_path):
    with pytest.raises(FileExistsError):
        gl.save_model(model, saved)
    target = gl.save_model(model, tmp_path / "m")
    (target / "stale").write_text("old")
    gl.save_model(model, target, overwrite=True)
    assert sorted(os.listdir(target)) == ["config.json", "generator.npz"]
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_interrupted_save_leaves_nothing(model, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        gl.save_model(model, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def _copy(saved, tmp_path):
    target = tmp_path / "copy"
    os.system(f"cp -r {saved} {target}")
    return target


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "config.json").unlink(), "config.json is missing"),
    (lambda d: (d / "config.json").write_text("{"), "config.json is not valid JSON"),
    (lambda d: _edit_config(d, format="other"), "is not a gansynth-live-model config"),
    (lambda d: _edit_config(d, format_version=99), "format_version 99"),
    (lambda d: _edit_config(d, pitches=None), "has no 'pitches'"),
    (lambda d: _edit_config(d, pitches=[40, 36]), "sorted"),
    (lambda d: _edit_config(d, architecture={**gl.preset("tiny").to_dict(), "fmap_max": 16}),
     "has shape"),
    (lambda d: _edit_config(d, architecture={**gl.preset("tiny").to_dict(), "colour": 1}),
     "unknown fields"),
    (lambda d: (d / "generator.npz").unlink(), "generator.npz is missing"),
    (lambda d: (d / "generator.npz").write_bytes((d / "generator.npz").read_bytes()[:1000]),
     "generator.npz is unreadable or corrupt"),
    (lambda d: np.savez(d / "generator.npz", x=np.zeros(1)), "missing"),
])
def test_broken_model_dirs_name_the_problem(saved, tmp_path, breakage, message):
    target = _copy(saved, tmp_path)
    breakage(target)
    with pytest.raises(gl.ModelLoadError, match=message) as error:
        gl.load_model(target)
    assert str(target) in str(error.value)


def test_non_model_paths(tmp_path):
    with pytest.raises(gl.ModelLoadError, match="no such file"):
        gl.load_model(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(gl.ModelLoadError, match="not a directory"):
        gl.load_model(tmp_path / "file")
    with pytest.raises(gl.ModelLoadError, match="not a gansynth-live model directory"):
        gl.load_model(tmp_path)


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _npz_claiming_4_tib(folder):
    with zipfile.ZipFile(folder / "generator.npz", "w") as archive:
        with archive.open("x.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})


@pytest.mark.parametrize("damage, message", [
    (lambda d: _edit_config(d, pitch_counts=[1, 2]),
     "'pitch_counts' must be an object"),
    (lambda d: (d / "config.json").write_text("[" * 100_000 + "]" * 100_000),
     "config.json is not valid JSON: maximum recursion depth"),
    (lambda d: _fifo(d / "config.json"), "config.json is not a regular file"),
    (lambda d: _fifo(d / "generator.npz"), "generator.npz is not a regular file"),
    (lambda d: _edit_config(d, pitches=list(range(200))),
     "'pitches' must be a list of 1 to 128 MIDI notes"),
    (lambda d: _edit_config(d, pitches=list(range(10**6))),
     "config.json is 7,8"),
    (_npz_claiming_4_tib, "generator.npz holds 4,398,046,511,104 bytes of arrays"),
])
def test_a_damaged_model_dir_is_one_line_before_anything_big_is_read(tmp_path, damage, message):
    folder = tmp_path / "model"
    gl.save_model(gl.Model(gl.preset("tiny"), [60, 62]), folder)
    damage(folder)
    with pytest.raises(gl.ModelLoadError, match=None) as error:
        gl.load_model(folder)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_embedded_default_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(model_dir, "DEFAULT_MODEL_DIR", tmp_path / "default")
    with pytest.raises(gl.ModelLoadError, match="embedded default model"):
        gl.load_model()


def test_stereo_model_generates_two_channels():
    stereo = gl.Model(gl.preset("tiny").replace(channels=2), [60])
    assert stereo.generate_specgrams(stereo.random_z(1), [60]).shape == (1, 128, 256, 4)
    assert stereo.generate(stereo.random_z(1), [60]).shape == (1, 16000, 2)
