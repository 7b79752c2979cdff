"""Progressive-GAN networks: Magenta's exact sizes, names and blending arithmetic."""
import numpy as np
import pytest
import tensorflow as tf

from gansynth_live.config import ModelConfig, preset
from gansynth_live.networks import (Discriminator, Generator, discriminator_alpha,
                                    generator_alpha, pixel_norm, upscale)

G = "Generator/progressive_gan_generator"


@pytest.fixture(scope="module")
def hires():
    config = preset("mel_prog_hires")
    return config, Generator(config, 61), Discriminator(config, 61)


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables.values())


def test_hires_generator_has_magentas_parameters(hires):
    config, generator, _ = hires
    variables = generator.named_variables()
    assert len(variables) == 42
    assert count(variables) == 7_311_246
    assert [config.num_filters(b) for b in range(8)] == [256, 256, 256, 256, 256, 128, 64, 32]
    assert variables[f"{G}/progressive_gan_block_1/conv0/conv2d/kernel"].shape == (2, 16, 317, 256)
    assert variables[f"{G}/progressive_gan_block_7/to_rgb/conv2d/kernel"].shape == (1, 1, 32, 2)
    assert variables[f"{G}/progressive_gan_block_4/conv1/bias"].shape == (256,)


def test_hires_discriminator_sizes_and_heads(hires):
    _, _, discriminator = hires
    variables = discriminator.named_variables()
    assert count(variables) == 6_831_230
    assert variables["Discriminator/discriminator_cond/classification_logits/dense/kernel"].shape \
        == (256, 61)
    assert variables["Discriminator/progressive_gan_discriminator/progressive_gan_block_1/"
                     "conv1/conv2d/kernel"].shape == (2, 16, 256, 256)


def test_hires_shapes_end_to_end(hires):
    _, generator, discriminator = hires
    images = generator(tf.random.normal([1, 256]), tf.one_hot([30], 61))
    assert images.shape == (1, 128, 1024, 2)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh output
    logits, classes = discriminator(images)
    assert logits.shape == (1, 1) and classes.shape == (1, 61)


def test_he_scaled_weights_initialised_like_magenta(hires):
    _, generator, _ = hires
    kernel = generator.named_variables()[f"{G}/progressive_gan_block_3/conv0/conv2d/kernel"]
    values = kernel.numpy()
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1.0) < 0.01  # N(0, 1), unscaled
    conv = generator.blocks[2][0]
    assert conv.scale == pytest.approx(np.sqrt(2.0 / (3 * 3 * 256)))
    assert generator.to_rgb[6].scale == pytest.approx(np.sqrt(1.0 / 32))


@pytest.mark.parametrize("progress", np.linspace(0.0, 6.0, 25))
def test_block_weights_sum_to_one(progress):
    assert sum(float(generator_alpha(b, progress)) for b in range(1, 8)) == pytest.approx(1.0)
    assert 0.0 <= float(discriminator_alpha(3, progress)) <= 1.0


def test_pixel_norm_unit_mean_square():
    x = tf.random.normal([2, 3, 4, 16]) * 7.0
    assert np.allclose(tf.reduce_mean(tf.square(pixel_norm(x)), axis=-1), 1.0, atol=1e-4)


@pytest.fixture(scope="module")
def tiny():
    config = preset("tiny")
    return config, Generator(config, 5, seed=3)


def test_progress_blends_upscaled_block_outputs(tiny):
    config, generator = tiny
    z = tf.random.normal([2, config.latent_size], seed=1)
    one_hot = tf.one_hot([0, 4], 5)

    def block_rgb(block_id):
        # Rebuild the chain by hand up to block_id, then that block's to_rgb.
        x = generator(z, one_hot, progress=float(block_id - 1), num_blocks=block_id)
        return x

    # progress 0: only block 1's output, upscaled 64x to full size.
    only_first = generator(z, one_hot, progress=0.0)
    assert np.allclose(only_first, block_rgb(1), atol=1e-6)
    coarse = only_first.numpy()
    assert np.allclose(coarse[:, ::64, ::64], coarse[:, 63::64, 63::64])  # constant 64x64 tiles
    # progress 1.5: half block 2, half block 3.
    mixed = generator(z, one_hot, progress=1.5)
    assert np.allclose(mixed, 0.5 * block_rgb(2) + 0.5 * block_rgb(3), atol=1e-5)
    # tensor progress gives the same as the Python-number shortcut
    assert np.allclose(generator(z, one_hot, progress=tf.constant(1.5)), mixed, atol=1e-5)
    assert generator(z, one_hot).shape == (2, *config.spec_shape, 2)


def test_upscale_is_nearest_neighbour():
    x = tf.reshape(tf.range(4, dtype=tf.float32), [1, 2, 2, 1])
    y = upscale(x, 2)[0, :, :, 0].numpy()
    assert y.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_discriminator_progress_and_blocks(tiny):
    config, generator = tiny
    discriminator = Discriminator(config, 5)
    images = generator(tf.random.normal([3, config.latent_size]), tf.one_hot([0, 1, 2], 5))
    for progress, blocks in ((0.0, 1), (2.5, 4), (6.0, 7)):
        logits, classes = discriminator(images, progress=progress, num_blocks=blocks)
        assert logits.shape == (3, 1) and classes.shape == (3, 5)
        tensor_logits, _ = discriminator(images, progress=tf.constant(progress), num_blocks=blocks)
        assert np.allclose(logits, tensor_logits, atol=1e-4)


def test_self_attention_starts_as_identity_and_uses_its_bias():
    base = preset("tiny")
    config = base.replace(self_attention=True)
    assert config.attention_block == 6  # 64 x 128 = 8192
    plain, attended = Generator(base, 5, seed=7), Generator(config, 5, seed=7)
    plain_vars = plain.named_variables()
    for name, variable in attended.named_variables().items():
        if name in plain_vars:
            variable.assign(plain_vars[name])
    z, one_hot = tf.random.normal([2, base.latent_size]), tf.one_hot([1, 2], 5)
    assert np.allclose(plain(z, one_hot), attended(z, one_hot), atol=1e-6)  # gamma = 0

    attention = attended.blocks[5][-1]
    attention.gamma.assign(1.0)
    with_gamma = attended(z, one_hot).numpy()
    assert not np.allclose(with_gamma, plain(z, one_hot), atol=1e-4)
    attention.convs["o"][1].assign(tf.ones_like(attention.convs["o"][1]))
    assert not np.allclose(attended(z, one_hot), with_gamma, atol=1e-4)  # bias is added
    assert attended(z, one_hot).shape == (2, 128, 256, 2)
    disc = Discriminator(config, 5)
    assert disc(attended(z, one_hot))[0].shape == (2, 1)


def test_config_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="start_shape"):
        ModelConfig(spec_shape=(128, 1024), start_shape=(2, 8))
    with pytest.raises(ValueError, match="power of 2"):
        ModelConfig(spec_shape=(128, 1000), start_shape=(2, 16))
    with pytest.raises(ValueError, match="audio_length"):
        ModelConfig(audio_length=70000)
    with pytest.raises(ValueError, match="self_attention"):
        ModelConfig(audio_length=8000, spec_shape=(64, 256), start_shape=(1, 4),
                    self_attention=True)
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({"bogus": 1})
    assert ModelConfig.from_dict(preset("tiny").to_dict()) == preset("tiny")
    assert ModelConfig().max_audio_length == 67072


@pytest.mark.parametrize("shape", [(1, 2, 16, 8), (3, 5, 7, 4)])
def test_fused_upscale_conv_equals_upscale_then_conv(shape):
    from gansynth_live.networks import EqualizedConv2D, WeightInit
    conv = EqualizedConv2D("c", shape[-1], 6, 3, slope=0.0, init=WeightInit(0))
    conv.bias.assign(tf.random.normal([6]))
    x = tf.random.normal(shape)
    np.testing.assert_allclose(conv.upscaled(x), conv(upscale(x, 2)), rtol=1e-5, atol=1e-5)
