"""Magenta GANSynth training directories load with no conversion step.

The test writes a real TF1-format checkpoint (tf.compat.v1.train.Saver, Magenta's
variable names and shapes, EMA copies, several stages) and checks the loaded model
against a direct computation in Magenta's own formulation (output-side He scaling,
batch_to_space upscaling), written independently of gansynth_live.networks.
"""
import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import gansynth_live as gl
from gansynth_live.networks import Generator

LATENT, FMAP_MAX = 16, 8
FLAGS = {  # as in experiment.json; a small architecture so the test is fast
    "data_type": "mel", "audio_length": 16000, "sample_rate": 16000,
    "latent_vector_size": LATENT, "kernel_size": 3, "start_height": 2, "start_width": 4,
    "scale_mode": "ALL", "scale_base": 2, "num_resolutions": 7, "simple_arch": False,
    "to_rgb_activation": "tanh", "fmap_base": 4096, "fmap_decay": 1.0, "fmap_max": FMAP_MAX,
    "g_fn": "specgram", "d_fn": "specgram", "batch_size_schedule": [8],
    "train_root_dir": "/home/someone/gansynth/train",
}
NUM_PITCHES = 61


def write_tf1_checkpoint(prefix: str, tensors: dict, step: int) -> None:
    """Save `tensors` (name -> array) as a TF1 checkpoint `prefix-step`, as Magenta's Saver does."""
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: tf.compat.v1.Variable(value, name=f"v{i}")
                     for i, (name, value) in enumerate(tensors.items())}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, global_step=step)


def generator_tensors(rng: np.random.Generator, num_pitches: int) -> dict:
    config = gl.ModelConfig(audio_length=16000, spec_shape=(128, 256), start_shape=(2, 4),
                            latent_size=LATENT, fmap_max=FMAP_MAX)
    shapes = {name: v.shape for name, v in Generator(config, num_pitches).named_variables().items()}
    return {name: rng.standard_normal(shape).astype(np.float32) * (0.3 if "bias" in name else 1)
            for name, shape in shapes.items()}


@pytest.fixture(scope="module")
def magenta_dir(tmp_path_factory):
    """A Magenta training dir: stages 0 and 2; stage 2 holds ckpt-9 and ckpt-10."""
    root = tmp_path_factory.mktemp("magenta") / "acoustic_only"
    rng = np.random.default_rng(0)
    ema = generator_tensors(rng, NUM_PITCHES)
    raw = generator_tensors(rng, NUM_PITCHES)  # the non-averaged weights must not be used
    tensors = {**raw, **{f"{k}/ExponentialMovingAverage": v for k, v in ema.items()}}
    tensors["Discriminator/progressive_gan_discriminator/progressive_gan_block_1/logits/bias"] = \
        np.zeros(1, np.float32)
    tensors["global_step"] = np.int64(10)
    older = {k: v + 1.0 if v.dtype == np.float32 else v for k, v in tensors.items()}
    for stage, step, values in ((0, 5, older), (2, 9, older), (2, 10, tensors)):
        stage_dir = root / f"stage_{stage:05d}"
        stage_dir.mkdir(parents=True, exist_ok=True)
        write_tf1_checkpoint(os.fspath(stage_dir / "model.ckpt"), values, step)
    # A stale absolute path, as in checkpoints copied off a cluster: must not be trusted.
    (root / "stage_00002" / "checkpoint").write_text(
        'model_checkpoint_path: "/cluster/scratch/run/stage_00002/model.ckpt-9"\n')
    (root / "experiment.json").write_text(json.dumps(FLAGS))
    return root, ema


def magenta_generator(weights: dict, z: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
    """Magenta's generator_fn_specgram, written out step by step (final progress)."""
    prefix = "Generator/progressive_gan_generator/progressive_gan_block_"

    def conv(x, scope, padding="SAME", slope=0.0):
        kernel = weights[f"{prefix}{scope}/conv2d/kernel"]
        scale = math.sqrt(2.0 / ((1.0 + slope ** 2) * np.prod(kernel.shape[:-1])))
        return scale * tf.nn.conv2d(x, kernel, [1, 1, 1, 1], padding) + weights[f"{prefix}{scope}/bias"]

    def hidden(x, scope, padding="SAME"):
        y = tf.nn.leaky_relu(conv(x, scope, padding))
        return y * tf.math.rsqrt(tf.reduce_mean(tf.square(y), axis=3, keepdims=True) + 1e-8)

    def upscale(x, s):
        return tf.compat.v1.batch_to_space(tf.tile(x, [s * s, 1, 1, 1]), crops=[[0, 0], [0, 0]],
                                           block_size=s)

    x = tf.concat([z, one_hot], axis=1)[:, None, None, :]
    x = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=3, keepdims=True) + 1e-8)
    x = tf.pad(x, [[0, 0], [1, 1], [3, 3], [0, 0]])
    x = hidden(hidden(x, "1/conv0", "VALID"), "1/conv1")
    for block in range(2, 8):
        x = hidden(hidden(upscale(x, 2), f"{block}/conv0"), f"{block}/conv1")
    rgb = tf.tanh(conv(x, "7/to_rgb", slope=1.0)).numpy()
    mag = (rgb[..., 0] - 0.113718730221) / 0.0661371661726
    ifreq = (rgb[..., 1] - 0.0) / 0.8
    return np.stack([mag, ifreq], axis=-1)


def test_loads_newest_ema_weights_and_matches_magentas_computation(magenta_dir):
    root, ema = magenta_dir
    model = gl.load_model(root)
    assert model.pitches == tuple(range(24, 85))
    assert model.latent_size == LATENT and model.sample_rate == 16000 and model.channels == 1
    assert "stage 2" in model.name and "10 images" in model.name
    z = model.random_z(3, seed=1)
    pitches = [24, 60, 84]
    got = model.generate_specgrams(z, pitches)
    expected = magenta_generator(ema, z, np.eye(NUM_PITCHES, dtype=np.float32)[[0, 36, 60]])
    assert got.shape == (3, 128, 256, 2)
    # Float32 sums in another order (kernel-side vs output-side scaling) differ by ~1e-5 in
    # tanh space; denormalising multiplies that by 1/0.066. A wiring error would be O(1).
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=2e-3)
    assert np.mean(np.abs(got - expected)) < 1e-4
    audio = model.generate(z, pitches)
    assert audio.shape == (3, 16000, 1) and audio.dtype == np.float32


def test_pitch_vocabulary_from_sopimlab_meta(magenta_dir, tmp_path):
    root, _ = magenta_dir
    copy = tmp_path / "postprocessed"
    os.system(f"cp -r {root} {copy}")
    # A SopiMlab dataset meta with 61 pitches 30..90, notes outside 24..84 filtered out.
    flags = {**FLAGS, "train_min_pitch": 30, "train_max_pitch": 90}
    (copy / "experiment.json").write_text(json.dumps(flags))
    meta = {f"piano_{p}": {"instrument_str": "piano", "pitch": p, "instrument_source": 0,
                           "instrument_family": 0, "qualities": [0] * 10} for p in range(20, 100)}
    (copy / "meta.json").write_text(json.dumps(meta))
    model = gl.load_model(copy)
    assert model.pitches == tuple(range(30, 91))
    with pytest.raises(ValueError, match="not in the model's vocabulary: 30..90"):
        model.generate(model.random_z(1), [29])


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "experiment.json").unlink(), "experiment.json is missing"),
    (lambda d: (d / "experiment.json").write_text("{not json"), "experiment.json is not valid JSON"),
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "data_type": "linear"})),
     "data_type = 'linear' is not supported"),
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "train_max_pitch": 80})),
     "conditions on 61 pitches but train_min_pitch..train_max_pitch \\(24..80\\) gives 57"),
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "fmap_max": 16})),
     "has shape"),
    (lambda d: [f.unlink() for f in d.glob("stage_*/*.data-*")], "no stage folder holds a complete"),
    # TensorFlow raised a bare IndexError ("Read less bytes than requested") for this one.
    (lambda d: [os.truncate(f, 1000) for f in d.glob("stage_*/*.data-*")],
     "no checkpoint is intact; the newest: "
     "stage_00002/model.ckpt-10.data-00000-of-00001 holds 1,000 bytes but its index"),
    # (Flags that would allocate gigabytes unchecked are tested under a memory limit in
    # test_bad_inputs.py, so that a regression cannot take the machine's memory.)
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "pad": "x" * 2**21})),
     "experiment.json is 2,097,[0-9]+ bytes; at most 1,048,576"),
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "latent_vector_size": "a"})),
     "experiment.json: invalid literal for int"),
    (lambda d: (d / "experiment.json").write_text(json.dumps({**FLAGS, "fmap_max": 65536})),
     "experiment.json: model config: the generator would have 77,863,822 parameters"),
])
def test_broken_magenta_dirs_name_the_problem(magenta_dir, tmp_path, breakage, message):
    root, _ = magenta_dir
    copy = tmp_path / "broken"
    os.system(f"cp -r {root} {copy}")
    breakage(copy)
    with pytest.raises(gl.ModelLoadError, match=message) as error:
        gl.load_model(copy)
    assert str(copy) in str(error.value)


@pytest.mark.parametrize("damage", [
    lambda data: os.truncate(data, 1000),
    lambda data: data.write_bytes(np.random.default_rng(0).bytes(data.stat().st_size)),
    lambda data: data.unlink() or os.mkfifo(data),  # opening it would block
])
def test_a_damaged_newest_checkpoint_falls_back_to_the_next_older(magenta_dir, tmp_path,
                                                                  damage, caplog):
    root, ema = magenta_dir
    copy = tmp_path / "damaged"
    shutil.copytree(root, copy)
    data = copy / "stage_00002/model.ckpt-10.data-00000-of-00001"
    damage(data)
    model = gl.load_model(copy)
    assert "stage 2" in model.name and "9 images" in model.name
    assert "stage_00002/model.ckpt-10" in caplog.text and "next older" in caplog.text
    kernel = "Generator/progressive_gan_generator/progressive_gan_block_1/conv0/conv2d/kernel"
    weights = model.generator.named_variables()[kernel].numpy()
    np.testing.assert_array_equal(weights, ema[kernel] + 1.0)  # ckpt-9 holds ema + 1
    assert data.exists()  # left where it was: the directory is the user's


def test_stereo_fork_flags_give_stereo_seconds_config():
    from gansynth_live.magenta_checkpoint import MAGENTA_DEFAULTS, config_from_flags
    flags = {**MAGENTA_DEFAULTS, **FLAGS, "channel_mode": "stereo", "audio_length": 0.5,
             "sample_rate": 32000}
    config = config_from_flags(flags, path=None)
    assert config.channels == 2 and config.audio_length == 16000 and config.sample_rate == 32000
