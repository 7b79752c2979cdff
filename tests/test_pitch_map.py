"""Pitch maps: harmonic profiles on the mel axis, and the networks they condition."""
import numpy as np
import pytest
import tensorflow as tf

import gansynth_live as gl
from gansynth_live.config import preset
from gansynth_live.networks import Discriminator, Generator, downscale
from gansynth_live.pitch_map import harmonic_profiles, pitch_map_image, profiles_for
from gansynth_live.spectral import SpecgramConverter
from training.soundfont import render_note

CONFIG = preset("tiny").replace(pitch_map=True)
CONFIG_IF = CONFIG.replace(pitch_map_if=True)
PITCHES = list(range(36, 85))


@pytest.fixture(scope="module")
def profiles():
    return harmonic_profiles(CONFIG, PITCHES)


@pytest.fixture(scope="module")
def magnitude(profiles):
    return profiles[..., 0]


def centred_correlation(profiles: np.ndarray, row: np.ndarray) -> np.ndarray:
    a = profiles - profiles.mean(axis=1, keepdims=True)
    b = row - row.mean()
    return (a @ b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b))


def test_profiles_shape_range_and_order(profiles, magnitude):
    assert profiles.shape == (len(PITCHES), 256, 1) and profiles.dtype == np.float32
    assert np.allclose(magnitude.min(axis=1), 0.0) and np.allclose(magnitude.max(axis=1), 1.0)
    # Where the STFT resolves the fundamental (from about C4 up), it is the peak, and it
    # rises with the pitch.
    peaks = [int(np.argmax(magnitude[PITCHES.index(p)])) for p in range(60, 85)]
    assert peaks == sorted(peaks) and peaks[-1] - peaks[0] > 30
    assert profiles_for(preset("tiny"), PITCHES) is None  # no map, no profiles


@pytest.mark.parametrize("program", [0, 40])  # piano, violin (TimGM6mb)
def test_real_notes_match_their_own_pitch_best(magnitude, program):
    """From C5 up, a rendered instrument note's time-averaged magnitude image correlates
    best with its own pitch's profile, of all 49. (Lower, the 512-point STFT blurs the
    harmonics into a slope, and the smoothest profile correlates best with any slope.)"""
    converter = SpecgramConverter(CONFIG.sample_rate, CONFIG.audio_length, CONFIG.spec_shape)
    for pitch in (72, 79, 84):
        audio = render_note(program, pitch, num_samples=CONFIG.audio_length, sample_rate=16000)
        image = converter.normalize(converter.waves_to_melspecgrams(
            audio.astype(np.float32)[np.newaxis, :, np.newaxis])).numpy()
        score = centred_correlation(magnitude, image[0, :, :, 0].mean(axis=0))
        assert PITCHES[int(np.argmax(score))] == pitch, (program, pitch)


def test_the_if_channel_tells_apart_low_pitches_the_magnitude_cannot():
    """Below C3 several harmonics share a 31 Hz bin: the magnitude profiles of C1, F#1
    and C2 are nearly the same slope, their instantaneous-frequency profiles are not."""
    low = [24, 30, 36]
    both = harmonic_profiles(CONFIG_IF, low)
    assert both.shape == (3, 256, 2)
    np.testing.assert_array_equal(both[..., :1], harmonic_profiles(CONFIG, low))
    assert both[..., 1].min() >= -1.0 and both[..., 1].max() <= 1.0
    magnitude_corr = np.corrcoef(both[..., 0])[np.triu_indices(3, 1)]
    if_corr = np.corrcoef(both[..., 1])[np.triu_indices(3, 1)]
    assert magnitude_corr.min() > 0.95 and if_corr.max() < 0.7, (magnitude_corr, if_corr)


def test_the_hires_preset_resolves_low_pitches_in_magnitude_and_makes_1s_notes():
    """At n_fft 2048 (7.8 Hz bins) the harmonics of C1 fall in separate bins, so the
    magnitude profiles of C1, F#1 and C2 differ as clearly as their IF profiles; the
    networks run on the 32 x 1024 image and the model makes one-second notes."""
    config = preset("mel_prog_1s_hires_pitch_map_if")
    assert (config.n_fft, config.hop_length, config.spec_shape) == (2048, 512, (32, 1024))
    low = [24, 30, 36]
    both = harmonic_profiles(config, low)
    assert both.shape == (3, 1024, 2)
    assert np.corrcoef(both[..., 0])[np.triu_indices(3, 1)].max() < 0.5
    model = gl.Model(config, low, name="hires-test")
    assert model.generate_specgrams(model.random_z(2, seed=0), [24, 36]).shape == (2, 32, 1024, 2)
    audio = model.generate(model.random_z(1, seed=1), [30])
    assert audio.shape == (1, 16000, 1) and np.isfinite(audio).all()
    discriminator = Discriminator(config, 3, pitch_profiles=both)
    logits, classes = discriminator(tf.zeros([2, 32, 1024, 2]), one_hot=tf.one_hot([0, 2], 3))
    assert logits.shape == (2, 1) and classes.shape == (2, 3)


def test_map_image_is_the_downscaled_full_resolution_map(profiles):
    one_hot = tf.one_hot([0, 20, 48], len(PITCHES))
    full = pitch_map_image(tf.constant(profiles), one_hot, CONFIG.spec_shape)
    assert full.shape == (3, 128, 256, 1)
    assert np.allclose(full[:, 5, :, 0], profiles[[0, 20, 48], :, 0])
    for block_id in range(1, CONFIG.num_resolutions + 1):
        shape = CONFIG.block_shape(block_id)
        small = pitch_map_image(tf.constant(profiles), one_hot, shape)
        expected = downscale(full, 2 ** (CONFIG.num_resolutions - block_id))
        assert small.shape == (3, *shape, 1)
        np.testing.assert_allclose(small, expected, rtol=1e-5, atol=1e-6)


def test_networks_take_the_map_as_one_more_channel(profiles):
    plain_g = Generator(preset("tiny"), len(PITCHES))
    generator = Generator(CONFIG, len(PITCHES), pitch_profiles=profiles)
    name = "Generator/progressive_gan_generator/progressive_gan_block_3/conv1/conv2d/kernel"
    assert generator.named_variables()[name].shape[2] == plain_g.named_variables()[name].shape[2] + 1
    with_if = Generator(CONFIG_IF, len(PITCHES), pitch_profiles=harmonic_profiles(CONFIG_IF, PITCHES))
    assert with_if.named_variables()[name].shape[2] == plain_g.named_variables()[name].shape[2] + 2
    discriminator = Discriminator(CONFIG, len(PITCHES), pitch_profiles=profiles)
    z = tf.random.normal([2, CONFIG.latent_size], seed=1)
    one_hot = tf.one_hot([3, 40], len(PITCHES))
    images = generator(z, one_hot)
    assert images.shape == (2, 128, 256, 2)
    logits, classes = discriminator(images, one_hot=one_hot)
    assert logits.shape == (2, 1) and classes.shape == (2, len(PITCHES))
    # The map reaches both: the same z and one-hot with another pitch's profile differ.
    swapped = Generator(CONFIG, len(PITCHES), pitch_profiles=profiles[::-1].copy())
    for name, variable in generator.named_variables().items():
        swapped.named_variables()[name].assign(variable)
    assert float(tf.reduce_max(tf.abs(swapped(z, one_hot) - images))) > 1e-3
    other_logits, _ = discriminator(images, one_hot=tf.one_hot([30, 10], len(PITCHES)))
    assert not np.allclose(other_logits, logits)


def test_mismatched_profiles_and_missing_one_hot_are_errors(profiles):
    with pytest.raises(ValueError, match="pitch_map_if = True: needs pitch_map"):
        preset("tiny").replace(pitch_map_if=True)
    with pytest.raises(ValueError, match=r"pitch_profiles of shape \(49, 256, 2\)"):
        Generator(CONFIG_IF, len(PITCHES), pitch_profiles=profiles)
    with pytest.raises(ValueError, match="pitch_profiles of shape"):
        Generator(CONFIG, len(PITCHES))
    with pytest.raises(ValueError, match="pitch_profiles of shape"):
        Generator(CONFIG, len(PITCHES) - 1, pitch_profiles=profiles)
    with pytest.raises(ValueError, match="no pitch_map"):
        Discriminator(preset("tiny"), len(PITCHES), pitch_profiles=profiles)
    discriminator = Discriminator(CONFIG, len(PITCHES), pitch_profiles=profiles)
    with pytest.raises(ValueError, match="needs one_hot"):
        discriminator(tf.zeros([1, 128, 256, 2]))


def test_pitch_map_model_saves_loads_and_generates_the_same(tmp_path):
    model = gl.Model(CONFIG, PITCHES)
    z = model.random_z(2, seed=3)
    audio = model.generate(z, [40, 77])
    gl.save_model(model, tmp_path / "m")
    loaded = gl.load_model(tmp_path / "m")
    assert loaded.config.pitch_map
    np.testing.assert_array_equal(loaded.generate(z, [40, 77]), audio)
