"""Progressive-GAN generator and discriminator, numerically as Magenta GANSynth's.

Every weight is a `tf.Variable` stored under its Magenta TF1 name (for instance
`Generator/progressive_gan_generator/progressive_gan_block_1/conv0/conv2d/kernel`),
so a Magenta checkpoint, a project model directory and a training checkpoint all
use one naming scheme. Kernels are HWIO and unscaled: equalised learning rate
multiplies them by the He constant at run time, as Magenta does.

Blocks are numbered 1..num_resolutions from the coarsest (2 x 16 for the hires
model) to the finest (128 x 1024). `progress` runs from 0 to num_resolutions - 1
and blends block outputs during progressive training; generation uses the end.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from gansynth_live.config import ModelConfig
from gansynth_live.pitch_map import pitch_map_image
from gansynth_live.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()

GENERATOR_SCOPE = "Generator/progressive_gan_generator"
DISCRIMINATOR_SCOPE = "Discriminator/progressive_gan_discriminator"
CLASSIFIER_SCOPE = "Discriminator/discriminator_cond/classification_logits"


def block_scope(root: str, block_id: int) -> str:
    return f"{root}/progressive_gan_block_{block_id}"


# Stateless operations ---------------------------------------------------------------------

def he_scale(kernel_shape: tuple[int, ...], slope: float) -> float:
    """He constant sqrt(2 / ((1 + slope^2) * fan_in)), fan_in = all dims but the last."""
    fan_in = int(np.prod(kernel_shape[:-1]))
    return math.sqrt(2.0 / ((1.0 + slope ** 2) * fan_in))


def pixel_norm(x: tf.Tensor, epsilon: float = 1e-8) -> tf.Tensor:
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)


def leaky_relu(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.leaky_relu(x, alpha=0.2)


def upscale(x: tf.Tensor, factor: int) -> tf.Tensor:
    """Nearest-neighbour upscaling of both spatial axes of an NHWC tensor."""
    if factor == 1:
        return x
    x = tf.repeat(x, factor, axis=1)
    return tf.repeat(x, factor, axis=2)


def downscale(x: tf.Tensor, factor: int) -> tf.Tensor:
    """Box (average-pool) downscaling of both spatial axes of an NHWC tensor."""
    if factor == 1:
        return x
    return tf.nn.avg_pool2d(x, ksize=factor, strides=factor, padding="VALID")


def generator_alpha(block_id: int, progress):
    """Weight of block `block_id`'s output: a triangle peaking at progress = block_id - 1."""
    if isinstance(progress, (int, float)):
        return max(0.0, min(progress - (block_id - 2), block_id - progress))
    return tf.maximum(0.0, tf.minimum(progress - (block_id - 2), block_id - progress))


def discriminator_alpha(block_id: int, progress):
    """Weight of the from_rgb input of block `block_id`: 1 until block_id - 1, then fades to 0."""
    if isinstance(progress, (int, float)):
        return min(1.0, max(0.0, block_id - progress))
    return tf.clip_by_value(block_id - progress, 0.0, 1.0)


def minibatch_stddev(x: tf.Tensor) -> tf.Tensor:
    """Append one channel holding mean over features of the batch standard deviation."""
    _, variance = tf.nn.moments(x, axes=[0])
    stddev = tf.reduce_mean(tf.sqrt(variance + 1e-6))
    return tf.concat([x, tf.ones_like(x[..., :1]) * stddev], axis=-1)


# Layers with equalised learning rate ----------------------------------------------------

class WeightInit:
    """Deterministic N(0, 1) kernels, as Magenta initialises them under weight scaling."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._rng.standard_normal(shape, dtype=np.float32)


class EqualizedConv2D(tf.Module):
    """he_scale * conv2d(x, kernel) + bias, then `activation`."""

    def __init__(self, scope: str, in_channels: int, filters: int, kernel_size, *,
                 slope: float, init: WeightInit, padding: str = "SAME",
                 activation: Callable[[tf.Tensor], tf.Tensor] | None = None):
        super().__init__(name=None)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        shape = (kh, kw, in_channels, filters)
        self.scope = scope
        self.kernel = tf.Variable(init.normal(shape), name=f"{scope}/conv2d/kernel")
        self.bias = tf.Variable(tf.zeros([filters]), name=f"{scope}/bias")
        self.scale = he_scale(shape, slope)
        self.padding = padding
        self.activation = activation

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        # Scaling the (small) kernel instead of the (large) output gives the same result.
        y = tf.nn.conv2d(x, self.kernel * self.scale, strides=1, padding=self.padding) + self.bias
        return self.activation(y) if self.activation else y

    def upscaled(self, x: tf.Tensor) -> tf.Tensor:
        """The same as self(upscale(x, 2)), without building the upscaled input.

        For a 3x3 SAME conv, output pixel (2i+a, 2j+b) only sees input rows/columns
        {i-1, i} (phase 0) or {i, i+1} (phase 1), with the 3x3 taps summed into 2x2.
        Four 2x2 convs on the small input need 16/36 of the multiply-adds and none of
        the 4x larger intermediate; depth_to_space interleaves the four phases.
        """
        if self.kernel.shape[:2] != (3, 3) or self.padding != "SAME":
            return self(upscale(x, 2))
        k = self.kernel * self.scale
        rows = {0: (k[0], k[1] + k[2]), 1: (k[0] + k[1], k[2])}  # taps over input rows
        phases = []
        for a in (0, 1):
            r = tf.stack(rows[a])  # [2, 3, in, out]
            cols = {0: (r[:, 0], r[:, 1] + r[:, 2]), 1: (r[:, 0] + r[:, 1], r[:, 2])}
            for b in (0, 1):
                padded = tf.pad(x, [[0, 0], [1 - a, a], [1 - b, b], [0, 0]])
                phases.append(tf.nn.conv2d(padded, tf.stack(cols[b], axis=1), 1, "VALID"))
        y = tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2) + self.bias
        return self.activation(y) if self.activation else y

    def named_variables(self) -> dict[str, tf.Variable]:
        return {f"{self.scope}/conv2d/kernel": self.kernel, f"{self.scope}/bias": self.bias}


class EqualizedDense(tf.Module):
    """he_scale * flatten(x) @ kernel + bias (slope 1: sqrt(1 / fan_in))."""

    def __init__(self, scope: str, in_features: int, units: int, *, init: WeightInit):
        super().__init__(name=None)
        shape = (in_features, units)
        self.scope = scope
        self.kernel = tf.Variable(init.normal(shape), name=f"{scope}/dense/kernel")
        self.bias = tf.Variable(tf.zeros([units]), name=f"{scope}/bias")
        self.scale = he_scale(shape, 1.0)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.matmul(x, self.kernel * self.scale) + self.bias

    def named_variables(self) -> dict[str, tf.Variable]:
        return {f"{self.scope}/dense/kernel": self.kernel, f"{self.scope}/bias": self.bias}


def _hidden_conv(scope, in_channels, filters, kernel_size, init, padding="SAME", *,
                 pixelwise: bool) -> EqualizedConv2D:
    """Hidden conv: generator uses pixel_norm(leaky_relu), discriminator leaky_relu."""
    activation = (lambda x: pixel_norm(leaky_relu(x))) if pixelwise else leaky_relu
    return EqualizedConv2D(scope, in_channels, filters, kernel_size, slope=0.0, init=init,
                           padding=padding, activation=activation)


class SelfAttention(tf.Module):
    """SAGAN self-attention (GANSynth-Stereo): x + gamma * attention(x), gamma starts at 0.

    f, g (C/8) and h (C/2) are 1x1 spectrally normalised convolutions with bias (the
    fork forgot to add it); f and h are max-pooled 2x2 to cut the attention matrix by 4.
    """

    def __init__(self, scope: str, channels: int, init: WeightInit):
        super().__init__(name=None)
        self.scope = scope
        self.convs = {
            name: (tf.Variable(init.normal((1, 1, cin, cout)) * 0.02, name=f"{scope}/{name}/kernel"),
                   tf.Variable(tf.zeros([cout]), name=f"{scope}/{name}/bias"),
                   tf.Variable(init.normal((1, cout)), trainable=False, name=f"{scope}/{name}/u"))
            for name, cin, cout in (("f", channels, max(channels // 8, 1)),
                                    ("g", channels, max(channels // 8, 1)),
                                    ("h", channels, max(channels // 2, 1)),
                                    ("o", max(channels // 2, 1), channels))}
        self.gamma = tf.Variable(0.0, name=f"{scope}/gamma")

    def _conv(self, name: str, x: tf.Tensor, training: bool) -> tf.Tensor:
        kernel, bias, u = self.convs[name]
        w = tf.reshape(kernel, [-1, kernel.shape[-1]])  # [in, out]
        # One power iteration estimates the largest singular value of w.
        v = tf.math.l2_normalize(tf.matmul(u, w, transpose_b=True))
        u_new = tf.math.l2_normalize(tf.matmul(v, w))
        sigma = tf.reduce_sum(tf.matmul(v, w) * u_new)
        if training:
            u.assign(u_new)
        return tf.nn.conv2d(x, kernel / sigma, strides=1, padding="SAME") + bias

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        f = tf.nn.max_pool2d(self._conv("f", x, training), 2, 2, "VALID")
        g = self._conv("g", x, training)
        v = tf.nn.max_pool2d(self._conv("h", x, training), 2, 2, "VALID")
        f = tf.reshape(f, [b, -1, f.shape[-1]])
        g = tf.reshape(g, [b, -1, g.shape[-1]])
        v = tf.reshape(v, [b, -1, v.shape[-1]])
        attention = tf.nn.softmax(tf.matmul(g, f, transpose_b=True), axis=-1)  # [B, HW, HW/4]
        o = tf.reshape(tf.matmul(attention, v), [b, h, w, v.shape[-1]])
        return x + self.gamma * self._conv("o", o, training)

    def named_variables(self) -> dict[str, tf.Variable]:
        out = {f"{self.scope}/gamma": self.gamma}
        for name, (kernel, bias, u) in self.convs.items():
            out.update({f"{self.scope}/{name}/kernel": kernel, f"{self.scope}/{name}/bias": bias,
                        f"{self.scope}/{name}/u": u})
        return out


def _checked_profiles(config: ModelConfig, num_pitches: int,
                      profiles: np.ndarray | None) -> tf.Tensor | None:
    """The pitch profiles as a constant, checked against the config (None without a map)."""
    if not config.pitch_map:
        if profiles is not None:
            raise ValueError("pitch_profiles given, but the config has no pitch_map")
        return None
    expected = (num_pitches, config.spec_shape[1], config.pitch_map_channels)
    if profiles is None or tuple(np.shape(profiles)) != expected:
        raise ValueError(f"a pitch_map config needs pitch_profiles of shape {expected}, "
                         f"got {None if profiles is None else tuple(np.shape(profiles))}")
    return tf.constant(profiles, tf.float32)


def _collect(layers) -> dict[str, tf.Variable]:
    out: dict[str, tf.Variable] = {}
    for layer in layers:
        out.update(layer.named_variables())
    return out


# Networks ---------------------------------------------------------------------------------

class Generator(tf.Module):
    """(latent z, one-hot pitch) -> mel-IF image in [-1, 1] (tanh), NHWC.

    Input is concat(z, one_hot) (noise first). Block 1 pixel-normalises it as a
    1 x 1 image, zero-pads it and applies a VALID conv the size of the start shape.
    Blocks 2.. upscale x2 (nearest) then apply two 3x3 convs. With `config.pitch_map`
    the pitch map (pitch_map.py, from `pitch_profiles` [num_pitches, bins]) joins the
    input of every block's second conv as one more channel.
    """

    def __init__(self, config: ModelConfig, num_pitches: int, seed: int = 0,
                 pitch_profiles: np.ndarray | None = None):
        super().__init__(name="generator")
        self.config = config
        self.num_pitches = num_pitches
        self.profiles = _checked_profiles(config, num_pitches, pitch_profiles)
        map_channels = config.pitch_map_channels
        init = WeightInit(seed)
        nf = config.num_filters
        k = config.kernel_size
        self.blocks: list[list[tf.Module]] = []
        self.to_rgb: list[EqualizedConv2D] = []
        for block_id in range(1, config.num_resolutions + 1):
            scope = block_scope(GENERATOR_SCOPE, block_id)
            if block_id == 1:
                in_channels = config.latent_size + num_pitches
                layers = [_hidden_conv(f"{scope}/conv0", in_channels, nf(1), config.start_shape,
                                       init, "VALID", pixelwise=True),
                          _hidden_conv(f"{scope}/conv1", nf(1) + map_channels, nf(1), k, init,
                                       pixelwise=True)]
            else:
                layers = [_hidden_conv(f"{scope}/conv0", nf(block_id - 1), nf(block_id), k, init,
                                       pixelwise=True),
                          _hidden_conv(f"{scope}/conv1", nf(block_id) + map_channels,
                                       nf(block_id), k, init, pixelwise=True)]
            if config.self_attention and block_id == config.attention_block:
                layers.append(SelfAttention(f"{scope}/self_attention", nf(block_id), init))
            self.blocks.append(layers)
            self.to_rgb.append(EqualizedConv2D(f"{scope}/to_rgb", nf(block_id),
                                               config.image_channels, 1, slope=1.0, init=init,
                                               activation=tf.tanh))

    def named_variables(self) -> dict[str, tf.Variable]:
        return _collect([layer for block in self.blocks for layer in block] + self.to_rgb)

    # Layers -------------------------------------------------------------------------------
    # A layer is named "block<N>/conv0" (block N's first conv) or "block<N>/conv1" (block
    # N's output: its second conv, and self-attention where the block has it). GANSpace
    # (gansynth_live/ganspace.py) edits a layer's output and runs the rest from there.

    def layer_names(self) -> list[str]:
        return [f"block{b}/conv{i}" for b in range(1, self.config.num_resolutions + 1)
                for i in (0, 1)]

    def layer_position(self, layer: str) -> tuple[int, int]:
        """(block id, 0 or 1) of `layer`; ValueError listing the names otherwise."""
        names = self.layer_names()
        if layer not in names:
            raise ValueError(f"unknown generator layer {layer!r}; layers: {', '.join(names)}")
        index = names.index(layer)
        return index // 2 + 1, index % 2

    def layer_shape(self, layer: str) -> tuple[int, int, int]:
        """(H, W, C) of one note's output of `layer`."""
        block_id, _ = self.layer_position(layer)
        return (*self.config.block_shape(block_id), self.config.num_filters(block_id))

    def input_image(self, z: tf.Tensor, one_hot: tf.Tensor) -> tf.Tensor:
        """The first conv's input: concat(z, one_hot) pixel-normalised as a 1 x 1 image and
        zero-padded so that a VALID conv the size of the start shape covers it."""
        x = tf.concat([z, one_hot], axis=1)[:, tf.newaxis, tf.newaxis, :]
        x = pixel_norm(x)
        pad_h, pad_w = self.config.start_shape[0] - 1, self.config.start_shape[1] - 1
        return tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])

    def __call__(self, z: tf.Tensor, one_hot: tf.Tensor, progress=None,
                 num_blocks: int | None = None, training: bool = False) -> tf.Tensor:
        """Generate images. `progress` None means the end of training (num_blocks - 1).

        With a Python-number progress, blocks whose output weight is 0 skip their to_rgb.
        """
        return self.run(self.input_image(z, one_hot), one_hot, progress, num_blocks, training)

    def layer_output(self, z: tf.Tensor, one_hot: tf.Tensor, layer: str) -> tf.Tensor:
        """The output [B, H, W, C] of `layer` for these inputs."""
        return self.run(self.input_image(z, one_hot), one_hot, until=layer)

    # The loop below builds the graph's structure in Python; autograph must not turn it
    # into TensorFlow control flow.
    @tf.autograph.experimental.do_not_convert
    def run(self, x: tf.Tensor, one_hot: tf.Tensor, progress=None,
            num_blocks: int | None = None, training: bool = False, *,
            after: str | None = None, until: str | None = None) -> tf.Tensor:
        """Run the layers on `x`: the input image, or with `after` that layer's output.

        Returns the blended images, or with `until` that layer's output. Starting after
        a layer of block N needs every block before N to be out of the blend (weight 0):
        their images would come from activations the caller never passes.
        """
        cfg = self.config
        num_blocks = num_blocks or cfg.num_resolutions
        if progress is None:
            progress = float(num_blocks - 1)
        start = self.layer_position(after) if after else (1, -1)  # (1, -1): before conv0
        stop = self.layer_position(until) if until else None
        output = None
        for block_id in range(1, num_blocks + 1):
            if block_id < start[0]:
                alpha = generator_alpha(block_id, progress)
                if not (isinstance(alpha, float) and alpha == 0.0):
                    raise ValueError(f"cannot start after {after}: block {block_id} is still "
                                     f"blended into the output at progress {progress}")
                continue
            conv0, conv1, *rest = self.blocks[block_id - 1]
            if (block_id, 0) > start:
                # Block 2 on: nearest-neighbour x2 upscale fused into conv0.
                x = conv0(x) if block_id == 1 else conv0.upscaled(x)
                if (block_id, 0) == stop:
                    return x
            if (block_id, 1) > start:
                if self.profiles is not None:
                    shape = cfg.block_shape(block_id)
                    x = tf.concat([x, pitch_map_image(self.profiles, one_hot, shape)], axis=-1)
                x = conv1(x)
                for layer in rest:
                    x = layer(x, training)
                if (block_id, 1) == stop:
                    return x
            alpha = generator_alpha(block_id, progress)
            if isinstance(alpha, float) and alpha == 0.0:
                continue
            rgb = upscale(self.to_rgb[block_id - 1](x), 2 ** (cfg.num_resolutions - block_id))
            output = alpha * rgb if output is None else output + alpha * rgb
        if stop is not None:
            raise ValueError(f"layer {until} is beyond the {num_blocks} blocks run")
        return output


class Discriminator(tf.Module):
    """Image -> (Wasserstein logit [B, 1], pitch classification logits [B, num_pitches]).

    Input is the normalised mel-IF image at full resolution; each block sees it
    average-pooled to its own resolution through from_rgb, faded in by progress.
    With `config.pitch_map`, D is conditional: from_rgb also takes the pitch map
    of the pitch the image should have (call with `one_hot`).
    """

    def __init__(self, config: ModelConfig, num_pitches: int, seed: int = 1,
                 pitch_profiles: np.ndarray | None = None):
        super().__init__(name="discriminator")
        self.config = config
        self.num_pitches = num_pitches
        self.profiles = _checked_profiles(config, num_pitches, pitch_profiles)
        map_channels = config.pitch_map_channels
        init = WeightInit(seed)
        nf = config.num_filters
        k = config.kernel_size
        self.from_rgb: list[EqualizedConv2D] = []
        self.blocks: list[list[tf.Module]] = []
        for block_id in range(1, config.num_resolutions + 1):
            scope = block_scope(DISCRIMINATOR_SCOPE, block_id)
            self.from_rgb.append(_hidden_conv(f"{scope}/from_rgb",
                                              config.image_channels + map_channels,
                                              nf(block_id), 1, init, pixelwise=False))
            if block_id == 1:
                layers = [_hidden_conv(f"{scope}/conv0", nf(1) + 1, nf(1), k, init,
                                       pixelwise=False),
                          _hidden_conv(f"{scope}/conv1", nf(1), nf(0), config.start_shape, init,
                                       "VALID", pixelwise=False)]
            else:
                layers = [_hidden_conv(f"{scope}/conv0", nf(block_id), nf(block_id), k, init,
                                       pixelwise=False),
                          _hidden_conv(f"{scope}/conv1", nf(block_id), nf(block_id - 1), k, init,
                                       pixelwise=False)]
            if config.self_attention and block_id == config.attention_block:
                layers.insert(0, SelfAttention(f"{scope}/self_attention", nf(block_id), init))
            self.blocks.append(layers)
        self.logits = EqualizedDense(f"{block_scope(DISCRIMINATOR_SCOPE, 1)}/logits", nf(0), 1,
                                     init=init)
        self.classifier = EqualizedDense(CLASSIFIER_SCOPE, nf(0), num_pitches, init=init)

    def named_variables(self) -> dict[str, tf.Variable]:
        layers = self.from_rgb + [layer for block in self.blocks for layer in block]
        return _collect(layers + [self.logits, self.classifier])

    @tf.autograph.experimental.do_not_convert
    def __call__(self, images: tf.Tensor, progress=None, num_blocks: int | None = None,
                 training: bool = False, one_hot: tf.Tensor | None = None
                 ) -> tuple[tf.Tensor, tf.Tensor]:
        cfg = self.config
        num_blocks = num_blocks or cfg.num_resolutions
        if progress is None:
            progress = float(num_blocks - 1)
        if (self.profiles is None) != (one_hot is None):
            raise ValueError("a discriminator with a pitch map needs one_hot, and only it does")

        def from_rgb(block_id: int) -> tf.Tensor:
            factor = 2 ** (cfg.num_resolutions - block_id)
            x = downscale(images, factor)
            if self.profiles is not None:
                shape = cfg.block_shape(block_id)
                x = tf.concat([x, pitch_map_image(self.profiles, one_hot, shape)], axis=-1)
            return self.from_rgb[block_id - 1](x)

        def run(block_id: int, x: tf.Tensor) -> tf.Tensor:
            for layer in self.blocks[block_id - 1]:
                x = layer(x, training) if isinstance(layer, SelfAttention) else layer(x)
            return x

        x = from_rgb(num_blocks)
        for block_id in range(num_blocks, 1, -1):
            x = downscale(run(block_id, x), 2)
            alpha = discriminator_alpha(block_id - 1, progress)
            if isinstance(alpha, float) and alpha == 0.0:
                continue  # the coarser from_rgb input has faded out completely
            x = alpha * from_rgb(block_id - 1) + (1.0 - alpha) * x
        x = run(1, minibatch_stddev(x))
        return self.logits(x), self.classifier(x)
