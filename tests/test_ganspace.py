"""GANSpace timbre directions: computing, storing, loading and generating from them."""
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import gansynth_live as gl
from gansynth_live import ganspace

PITCHES = list(range(36, 49))
# Few latents keep the tests fast; the directions only need to be directions.
SMALL = dict(samples=1024, components=4, batch=256)


@pytest.fixture(scope="module")
def model():
    config = gl.preset("tiny").replace(pitch_map=True)
    return gl.Model(config, PITCHES, name="tiny-pitch-map")


@pytest.fixture(scope="module")
def space(model):
    return ganspace.compute(model, seed=1, **SMALL)


@pytest.fixture()
def with_space(model, space):
    model.set_ganspace(space)
    yield model
    model.set_ganspace(None)


def one_hot(model, pitches):
    return tf.one_hot(model.labels(pitches), len(model.pitches))


# The generator, split at a layer --------------------------------------------------------

@pytest.mark.parametrize("layer", ["block1/conv0", "block1/conv1", "block3/conv0"])
def test_running_on_from_a_layer_gives_the_whole_generator(model, layer):
    g = model.generator
    z, oh = model.random_z(3, seed=4), one_hot(model, [36, 40, 48])
    x = g.layer_output(z, oh, layer)
    assert tuple(x.shape[1:]) == g.layer_shape(layer)
    np.testing.assert_array_equal(g.run(x, oh, after=layer), g(z, oh))


def test_layer_names_and_blended_blocks_are_refused(model):
    g = model.generator
    with pytest.raises(ValueError, match="unknown generator layer 'conv0'; layers: block1/conv0"):
        g.layer_shape("conv0")
    x = g.layer_output(model.random_z(1), one_hot(model, [36]), "block2/conv0")
    # Mid-growth, block 1's own image is still blended in: it cannot start after block 2.
    with pytest.raises(ValueError, match="block 1 is still blended"):
        g.run(x, one_hot(model, [36]), progress=0.5, after="block2/conv0")


# Computing ------------------------------------------------------------------------------

def test_directions_are_orthonormal_ordered_and_scaled_by_their_spread(model, space):
    k, size = space.components.shape
    assert (k, size) == (4, int(np.prod(model.generator.layer_shape("block1/conv0"))))
    np.testing.assert_allclose(space.components @ space.components.T, np.eye(k), atol=1e-5)
    assert np.all(np.diff(space.stds) <= 0) and np.all(space.stds > 0)
    assert space.pitch_means.shape == (len(PITCHES), size)
    # On fresh latents, the pitch-centred activations spread along each direction by its std.
    z = model.random_z(2048, seed=99)
    pitches = np.resize(PITCHES, len(z))
    centred = (model.layer_activations(z, pitches, "block1/conv0")
               - space.pitch_means[model.labels(pitches)])
    np.testing.assert_allclose((centred @ space.components.T).std(axis=0), space.stds, rtol=0.15)
    # ... around each pitch's mean (up to the noise of 1024 / 13 latents a pitch).
    assert np.abs(centred.mean(axis=0)).max() < 0.5 * centred.std(axis=0).mean()


def test_directions_move_timbre_not_pitch(model):
    """With the pitch made loud in the layer, the pitch means spread far apart; centred on
    each pitch's mean, no direction carries more than a sliver of that spread, while
    PCA of the same activations uncentred spends its first direction on it."""
    from sklearn.decomposition import IncrementalPCA

    loud = gl.Model(model.config, PITCHES, name="loud-pitch")
    kernel = loud.generator.blocks[0][0].kernel
    latent = loud.latent_size
    kernel.assign(tf.concat([kernel[:, :, :latent], kernel[:, :, latent:] * 30.0], axis=2))
    space = ganspace.compute(loud, seed=0, **SMALL)
    between = space.pitch_means - space.pitch_means.mean(axis=0)
    spread = (between ** 2).sum(axis=1).mean()
    assert spread > 100 * space.stds[0] ** 2  # the pitch is loud

    def share(components):  # of the pitch means' spread, along each direction
        return ((between @ components.T) ** 2).mean(axis=0) / spread

    assert share(space.components).max() < 0.05, share(space.components)
    pitches = np.resize(PITCHES, 1024)
    uncentred = IncrementalPCA(4).fit(
        loud.layer_activations(loud.random_z(1024, seed=5), pitches, "block1/conv0"))
    assert share(uncentred.components_)[0] > 0.1, share(uncentred.components_)


def test_seeds_agree_and_bad_settings_are_refused(model, space):
    other = ganspace.compute(model, seed=2, **SMALL)
    cosines = ganspace.agreement(space, other)
    assert cosines.shape == (4,) and cosines[0] > 0.9
    assert np.all(ganspace.agreement(space, space) > 0.999)
    with pytest.raises(ValueError, match="components must be in 1..64"):
        ganspace.compute(model, samples=1024, components=65, batch=256)
    with pytest.raises(ValueError, match="samples must be at least one batch"):
        ganspace.compute(model, samples=100, components=4, batch=256)
    with pytest.raises(ValueError, match="layer block6/conv0 holds 65,536 values"):
        ganspace.compute(model, layer="block6/conv0", **SMALL)


def test_ragged_sample_counts_use_every_latent(model):
    seen = []
    ganspace.compute(model, samples=700, components=4, batch=256, progress=seen.append)
    assert sum(seen) == 2 * 700 and min(seen) >= 256


# Generating -----------------------------------------------------------------------------

def test_zero_coefficients_on_a_latent_change_nothing(with_space):
    model = with_space
    z = model.random_z(3, seed=7)
    plain = model.generate_specgrams(z, [36, 42, 48])
    np.testing.assert_allclose(model.generate_specgrams(z, [36, 42, 48], ganspace=[0.0]),
                               plain, atol=1e-5)


def test_coefficients_move_the_layer_by_their_stds(with_space, space):
    model = with_space
    g, layer = model.generator, space.layer
    z, pitches, c = model.random_z(2, seed=3), [36, 48], np.array([[1.5, -2.0], [0.0, 0.5]])
    oh = one_hot(model, pitches)
    offset = c @ (space.stds[:2, None] * space.components[:2])
    shape = [-1, *g.layer_shape(layer)]

    def from_layer(flat):
        images = g.run(tf.reshape(tf.constant(flat, tf.float32), shape), oh, after=layer)
        return model.converter.denormalize(images).numpy()

    # An edit of a latent: its own activation plus the offset.
    own = model.layer_activations(z, pitches, layer)
    np.testing.assert_allclose(model.generate_specgrams(z, pitches, ganspace=c),
                               from_layer(own + offset), atol=1e-3)
    # A pure coefficient point: the pitch's mean activation plus the offset.
    mean = space.pitch_means[model.labels(pitches)]
    pure = model.generate_specgrams(None, pitches, ganspace=c)
    np.testing.assert_allclose(pure, from_layer(mean + offset), atol=1e-3)
    assert not np.allclose(pure[0], model.generate_specgrams(None, 36, ganspace=[0.0])[0],
                           atol=1e-3)
    audio = model.generate(None, pitches, ganspace=c)
    assert audio.shape == (2, model.num_samples, 1) and np.abs(audio).max() <= 1.0


def test_coefficient_broadcasting_and_errors(with_space):
    model = with_space
    full = model.generate_specgrams(None, [36, 36], ganspace=[[1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    np.testing.assert_allclose(model.generate_specgrams(None, 36, ganspace=[[1.0], [-1.0]]),
                               full, atol=1e-5)
    np.testing.assert_allclose(model.generate_specgrams(None, [36, 40], ganspace=[1.0])[0],
                               full[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(batch, 1..4\) or \(1..4,\), got \(5,\)"):
        model.generate(None, 36, ganspace=np.zeros(5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.generate(None, 36, ganspace=[np.nan])
    with pytest.raises(ValueError, match="got 2 ganspace coefficient vectors for 3 notes"):
        model.generate(model.random_z(3), 36, ganspace=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        model.generate(None, 60, ganspace=[1.0])
    with pytest.raises(ValueError, match="z is None"):
        model.generate(None, 36)


def test_a_model_without_directions_says_how_to_get_them(model):
    assert model.ganspace is None
    with pytest.raises(ValueError, match="no GANSpace directions; compute them with "
                                         "gansynth-ganspace --model DIR"):
        model.generate(None, 36, ganspace=[1.0])


# Controls -------------------------------------------------------------------------------

def test_controls_check_the_range_and_snap_to_a_finite_grid():
    np.testing.assert_array_equal(ganspace.check_coefficients([1, -3.0, 2.5], 4), [1, -3, 2.5])
    with pytest.raises(ValueError, match=r"ganspace coefficient 2 must be in -3..3, got 3.5"):
        ganspace.check_coefficients([0, 3.5], 4)
    with pytest.raises(ValueError, match="give 1..4 ganspace coefficients, got 5"):
        ganspace.check_coefficients([0] * 5, 4)
    with pytest.raises(ValueError, match="coefficient 1 must be a number"):
        ganspace.check_coefficients(["x"], 4)
    assert ganspace.snap([0.13, -0.12, 0.0]) == (0.25,)
    assert ganspace.snap([-0.1, 0.9]) == (0.0, 1.0)
    assert ganspace.snap([1.0, 0.0]) == ganspace.snap([1.0])
    # Halfway values round away from 0, so every cell is one step wide (round() would
    # take 0.375 and 0.625 both to 0.5).
    assert ganspace.snap([0.125, 0.375, 0.625, -0.375, -0.625]) == \
        (0.25, 0.5, 0.75, -0.5, -0.75)
    assert sorted(ganspace.snap_neighbours([3.0], 2)) == [(2.75,), (3.0, -0.25), (3.0, 0.25)]


# The file and the loader ------------------------------------------------------------------

@pytest.fixture()
def saved(model, space, tmp_path):
    model.set_ganspace(space)
    try:
        return gl.save_model(model, tmp_path / "tiny")
    finally:
        model.set_ganspace(None)


def test_saved_model_keeps_its_directions(model, space, saved):
    assert sorted(os.listdir(saved)) == ["config.json", "ganspace.npz", "generator.npz"]
    assert (saved / "ganspace.npz").stat().st_mode & 0o777 == 0o644  # readable by all
    loaded = gl.load_model(saved)
    for field in ("components", "stds", "pitch_means", "explained_variance_ratio"):
        np.testing.assert_array_equal(getattr(loaded.ganspace, field), getattr(space, field))
    assert (loaded.ganspace.layer, loaded.ganspace.samples, loaded.ganspace.seed) == \
        ("block1/conv0", 1024, 1)
    model.set_ganspace(space)
    try:
        np.testing.assert_allclose(loaded.generate(None, 40, ganspace=[1, 2]),
                                   model.generate(None, 40, ganspace=[1, 2]), atol=1e-6)
    finally:
        model.set_ganspace(None)
    (saved / "ganspace.npz").unlink()
    assert gl.load_model(saved).ganspace is None


def _huge_header(path):
    """An npz whose header announces 80 GB: np.load would try to allocate it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("components.npy", header.getvalue())  # magic + header, no data


def _rewrite(path, **changes):
    space = ganspace.load(path / "ganspace.npz")
    ganspace.save(dataclasses.replace(space, **changes), path)


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "ganspace.npz").write_bytes(b"PK\x03\x04junk"), "unreadable or corrupt"),
    (lambda d: np.savez(d / "ganspace.npz", components=np.zeros(3)), "has no 'info'"),
    (lambda d: _rewrite(d, components=np.zeros((4, 10), np.float32)),
     r"components has shape \(4, 10\); layer block1/conv0 \(2, 4, 8\) "
     r"needs \(1..256, 64\)"),
    (lambda d: _rewrite(d, pitches=tuple(range(37, 50))), "pitches 37..49 .* not the model's 36..48"),
    (lambda d: _rewrite(d, layer="block9/conv0"), "layer: unknown generator layer 'block9/conv0'"),
    (lambda d: _rewrite(d, stds=np.array([1, 0, 1, 1], np.float32)), "stds must be positive"),
    (lambda d: _rewrite(d, pitch_means=np.full((13, 64), np.nan, np.float32)),
     "pitch_means holds non-finite"),
    (lambda d: _huge_header(d / "ganspace.npz"), "its arrays would take 80,000,000,000 bytes; at most"),
    (lambda d: _rewrite(d, weights_sha256="0" * 64), "it was computed for other generator weights; compute it again"),
])
def test_a_broken_directions_file_is_one_line_naming_it(saved, breakage, message):
    breakage(saved)
    with pytest.raises(gl.ModelLoadError, match=f"cannot load model .*tiny: ganspace.npz: {message}") as e:
        gl.load_model(saved)
    assert "\n" not in str(e.value)
    assert gl.load_model(saved, with_ganspace=False).ganspace is None


def test_writing_is_atomic(space, saved, monkeypatch):
    before = (saved / "ganspace.npz").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        ganspace.save(dataclasses.replace(space, seed=5), saved)
    assert (saved / "ganspace.npz").read_bytes() == before
    assert sorted(os.listdir(saved)) == ["config.json", "ganspace.npz", "generator.npz"]


# The command ------------------------------------------------------------------------------

def test_help_is_fast_and_imports_no_tensorflow():
    code = ("import sys, time; t = time.monotonic(); from gansynth_live import ganspace; "
            "ganspace.main(['--help']); assert 'tensorflow' not in sys.modules; "
            "print(time.monotonic() - t)")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "--samples" in out.stdout and "--layer" in out.stdout
    assert float(out.stdout.split()[-1]) < 1.0, time.monotonic() - start


def test_command_writes_prints_stability_and_logs_progress_lines(model, tmp_path, capsys):
    path = gl.save_model(model, tmp_path / "m")
    code = ganspace.main(["--model", str(path), "--samples", "1024", "--components", "4",
                          "--batch", "256", "--seed", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "|cos| seeds 3, 4" in out and "stability: first 4 directions agree" in out
    assert f"wrote {path / 'ganspace.npz'}" in out
    # stderr is not a terminal here: whole progress lines, no carriage returns.
    assert "\r" not in err and err.splitlines()[-1].startswith("gansynth-ganspace: latents: 100%")
    loaded = gl.load_model(path).ganspace
    assert (loaded.seed, loaded.stability_seed, loaded.samples) == (3, 4, 1024)
    assert loaded.stability.shape == (4,) and loaded.stability[0] > 0.9


@pytest.mark.parametrize("argv, code, message", [
    (["--samples", "0"], 2, "argument --samples: must be at least 1, got 0"),
    (["--model", "/nonexistent"], 1, "cannot load model /nonexistent: no such file"),
    (["--layer", "conv9"], 1, "unknown generator layer 'conv9'"),
])
def test_command_errors_are_one_line(model, tmp_path, capsys, argv, code, message):
    if "--model" not in argv:
        argv = ["--model", str(gl.save_model(model, tmp_path / "m")), *argv]
    assert ganspace.main(argv) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_stereo_models_and_magenta_checkpoints(tmp_path):
    from test_magenta_checkpoint import FLAGS, generator_tensors, write_tf1_checkpoint

    stereo = gl.Model(gl.preset("tiny").replace(channels=2), PITCHES)
    stereo.set_ganspace(ganspace.compute(stereo, **SMALL))
    assert stereo.generate(None, [36, 40], ganspace=[1, -1]).shape == (2, 16000, 2)

    root = tmp_path / "magenta"
    (root / "stage_00006").mkdir(parents=True)
    write_tf1_checkpoint(os.fspath(root / "stage_00006" / "model.ckpt"),
                         generator_tensors(np.random.default_rng(0), 61), 10)
    (root / "experiment.json").write_text(json.dumps(FLAGS))
    assert ganspace.main(["--model", str(root), "--no-stability", *[
        str(v) for kv in (("--samples", 512), ("--components", 2), ("--batch", 256))
        for v in kv]]) == 0
    loaded = gl.load_model(root)
    assert loaded.ganspace.num_components == 2 and len(loaded.ganspace.stability) == 0
    assert loaded.generate(None, 60, ganspace=[2.0]).shape == (1, 16000, 1)


def test_the_docs_use_only_flags_the_command_has():
    doc = Path(__file__).resolve().parents[1] / "docs" / "ganspace.md"
    lines = [line for line in doc.read_text().splitlines()
             if "gansynth-ganspace --" in line or line.strip().startswith("[--")]
    used = {flag for line in lines for flag in re.findall(r"--[a-z-]+", line)}
    known = {s for action in ganspace.build_parser()._actions for s in action.option_strings}
    assert {"--model", "--samples", "--no-stability"} <= used <= known, used - known


def test_the_embedded_model_ships_stable_directions_that_keep_pitch():
    from training.evaluate_model import pitch_accuracy

    model = gl.load_model()
    gs = model.ganspace
    assert (gs.layer, gs.samples, gs.seed, gs.stability_seed) == ("block1/conv0", 131072, 0, 1)
    assert gs.num_components == 16 and np.all(gs.stability >= ganspace.STABILITY_THRESHOLD)
    # The far ends of direction 1 sound different, and both at the requested pitch.
    audio = model.generate(None, [36, 36, 60, 60], ganspace=[[-2.0], [2.0], [-2.0], [2.0]])
    assert np.abs(audio[0] - audio[1]).max() > 0.1 and np.abs(audio[2] - audio[3]).max() > 0.1
    correct, _ = pitch_accuracy(audio, model.sample_rate, [36, 36, 60, 60])
    assert correct.all()
