"""Pitch maps: where a pitch's harmonics fall on the mel frequency axis.

With `ModelConfig.pitch_map` on, the generator and the discriminator see the
requested pitch not only as a one-hot vector but also as an image channel: each
pitch's harmonic profile (what a plain harmonic tone at that pitch looks like in
the mel-IF image), repeated over time and box-downscaled to every block's
resolution. Convolutions are translation-equivariant, so a one-hot vector tells
them *which* pitch but not *where* on the frequency axis it belongs; the map says
where. Trained on a 2-core CPU, a small generator conditioned by the one-hot alone
never learned pitch (docs/magenta-reference.md section 5, training/default_model/README.md).

Magenta's configs leave it off, so their checkpoints load unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gansynth_live.config import ModelConfig
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.spectral import SpecgramConverter

tf = import_tensorflow()


def midi_to_hertz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def harmonic_profiles(config: ModelConfig, pitches: Sequence[int]) -> np.ndarray:
    """float32 [len(pitches), mel bins, config.pitch_map_channels]: each pitch's profile.

    Channel 0 is the normalised log-magnitude a plain harmonic tone at that pitch
    (harmonic k at amplitude 1/k, all below Nyquist) gets in this config's mel-IF
    image, averaged over time and mapped to [0, 1]: exactly where, and how blurred, a
    pitch's harmonics land in the spectrograms the networks make. With
    `config.pitch_map_if`, channel 1 is the tone's normalised instantaneous frequency
    in [-1, 1], averaged over the frames whose window lies inside the tone. Below about
    C3 several harmonics share a 31 Hz STFT bin and the magnitude channels of two
    pitches an octave apart correlate at 0.98; their IF channels do not (0.1 to 0.5).
    """
    converter = SpecgramConverter(config.sample_rate, config.audio_length, config.spec_shape,
                                  config.channels)
    t = np.arange(config.audio_length) / config.sample_rate
    tones = np.zeros([len(pitches), config.audio_length])
    for row, pitch in enumerate(pitches):
        f0 = midi_to_hertz(pitch)
        for k in range(1, int(config.sample_rate / 2 / f0) + 1):
            tones[row] += np.sin(2 * np.pi * k * f0 * t) / k
        tones[row] *= 0.5 / np.abs(tones[row]).max()
    waves = np.repeat(tones[:, :, np.newaxis], config.channels, axis=2).astype(np.float32)
    images = converter.normalize(converter.waves_to_melspecgrams(waves)).numpy()
    magnitude = images[..., 0].mean(axis=1)  # [pitches, bins], channel 0's log-magnitude
    # Stretched to [0, 1] per pitch: the harmonics' positions are what matters.
    low, high = magnitude.min(axis=1, keepdims=True), magnitude.max(axis=1, keepdims=True)
    channels = [(magnitude - low) / (high - low)]
    if config.pitch_map_if:
        # Frames that see the zero padding in front or the cut at the end are left out.
        window_hops = converter.n_fft // converter.hop
        first = -(-converter.pad_left // converter.hop) + window_hops
        steady = images[:, first:-window_hops, :, 1]
        channels.append((steady if steady.shape[1] else images[..., 1]).mean(axis=1))
    return np.stack(channels, axis=-1).astype(np.float32)


def profiles_for(config: ModelConfig, pitches: Sequence[int]) -> np.ndarray | None:
    """The profiles a network of `config` needs, or None when it uses no pitch map."""
    return harmonic_profiles(config, pitches) if config.pitch_map else None


def pitch_map_image(profiles: tf.Tensor, one_hot: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    """[B, H, W, C]: the one-hot pitches' profiles [P, bins, C] at resolution `shape` = (H, W).

    Frequency is box-downscaled as `networks.downscale` does the spectrogram.
    """
    height, width = shape
    bins, channels = profiles.shape[1], profiles.shape[2]
    profile = tf.matmul(one_hot, tf.reshape(profiles, [-1, bins * channels]))  # [B, bins * C]
    factor = bins // width
    profile = tf.reduce_mean(tf.reshape(profile, [-1, width, factor, channels]), axis=2)
    return tf.tile(profile[:, tf.newaxis], [1, height, 1, 1])
