"""Model architecture configurations: Magenta's `mel_prog_hires` and small presets.

A `ModelConfig` holds everything that fixes the shapes of the networks and of the
audio they make. It is plain data: it round-trips through JSON (the model
directory's config.json) and through Magenta's experiment.json hparams.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a GANSynth progressive GAN and of its audio.

    The spectrogram is `spec_shape` = (time frames, frequency bins); the STFT size
    follows from it (n_fft = 2 * bins, hop = n_fft / 4) exactly as in Magenta.
    The generator starts at `start_shape` and doubles both axes per block, so
    start_shape * 2**(num_resolutions - 1) must equal spec_shape.
    """

    sample_rate: int = 16000
    audio_length: int = 64000  # samples per note
    channels: int = 1  # audio channels: 1 mono, 2 stereo (GANSynth-Stereo)
    spec_shape: tuple[int, int] = (128, 1024)
    start_shape: tuple[int, int] = (2, 16)
    num_resolutions: int = 7
    latent_size: int = 256
    kernel_size: int = 3
    fmap_base: int = 4096
    fmap_decay: float = 1.0
    fmap_max: int = 256
    # SAGAN-style self-attention in the block whose H*W == 8192 (GANSynth-Stereo).
    self_attention: bool = False
    # The pitch also as an image channel of harmonic positions (see pitch_map.py).
    pitch_map: bool = False
    # The map also holds the tone's instantaneous frequency (a second channel): below
    # about C3 the STFT bins cannot separate the harmonics, and only IF tells the pitch.
    pitch_map_if: bool = False

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare and hash.
        object.__setattr__(self, "spec_shape", tuple(int(v) for v in self.spec_shape))
        object.__setattr__(self, "start_shape", tuple(int(v) for v in self.start_shape))
        self.validate()

    def validate(self) -> None:
        def fail(field: str, why: str) -> None:
            raise ValueError(f"model config: {field} = {getattr(self, field)!r}: {why}")

        for field in ("sample_rate", "audio_length", "latent_size", "kernel_size",
                      "fmap_base", "fmap_max", "num_resolutions"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, "must be a positive integer")
        if self.channels not in (1, 2):
            fail("channels", "must be 1 (mono) or 2 (stereo)")
        if len(self.spec_shape) != 2 or min(self.spec_shape) <= 0:
            fail("spec_shape", "must be two positive integers (time frames, frequency bins)")
        bins = self.spec_shape[1]
        if bins & (bins - 1):
            fail("spec_shape", "the number of frequency bins must be a power of 2")
        scale = 2 ** (self.num_resolutions - 1)
        if tuple(s * scale for s in self.start_shape) != self.spec_shape:
            fail("start_shape", f"times 2**(num_resolutions-1) = {scale} must equal "
                                f"spec_shape {self.spec_shape}")
        if self.audio_length > self.max_audio_length:
            fail("audio_length", f"the {self.spec_shape[0]} frames of hop {self.hop_length} "
                                 f"cover at most {self.max_audio_length} samples")
        for field in ("self_attention", "pitch_map", "pitch_map_if"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "must be true or false")
        if self.pitch_map_if and not self.pitch_map:
            fail("pitch_map_if", "needs pitch_map")
        if self.self_attention and self.attention_block is None:
            fail("self_attention", "no block has H*W == 8192 in this spec_shape")

    # Derived quantities -----------------------------------------------------------------

    @property
    def n_fft(self) -> int:
        return 2 * self.spec_shape[1]

    @property
    def hop_length(self) -> int:
        return self.n_fft // 4

    @property
    def max_audio_length(self) -> int:
        """Samples the spectrogram frames can cover (67072 for 128 x 1024)."""
        return self.hop_length * (self.spec_shape[0] - 1) + self.n_fft

    @property
    def image_channels(self) -> int:
        """Spectrogram channels: (log-magnitude, instantaneous frequency) per audio channel."""
        return 2 * self.channels

    @property
    def pitch_map_channels(self) -> int:
        """Image channels the pitch map adds to the networks' inputs (0, 1 or 2)."""
        return int(self.pitch_map) + int(self.pitch_map_if)

    def num_filters(self, block_id: int) -> int:
        """Feature maps of block `block_id` (Magenta's formula; block 0 is the input width)."""
        return int(min(self.fmap_base / math.pow(2.0, block_id * self.fmap_decay), self.fmap_max))

    def block_shape(self, block_id: int) -> tuple[int, int]:
        """Spatial (H, W) of block `block_id`, 1-based."""
        factor = 2 ** (block_id - 1)
        return (self.start_shape[0] * factor, self.start_shape[1] * factor)

    @property
    def attention_block(self) -> int | None:
        for block_id in range(1, self.num_resolutions + 1):
            h, w = self.block_shape(block_id)
            if h * w == 8192:
                return block_id
        return None

    # Serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec_shape"] = list(self.spec_shape)
        d["start_shape"] = list(self.start_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # Magenta's best model (IF-Mel, high frequency resolution): G has 7,311,246 parameters.
    "mel_prog_hires": ModelConfig(),
    # One-second notes on a 128 x 256 mel-IF image: small enough to train on a CPU.
    "mel_prog_1s": ModelConfig(audio_length=16000, spec_shape=(128, 256), start_shape=(2, 4),
                               latent_size=64, fmap_max=32),
    # The same with pitch maps: the default model's architecture.
    "mel_prog_1s_pitch_map": ModelConfig(audio_length=16000, spec_shape=(128, 256),
                                         start_shape=(2, 4), latent_size=64, fmap_max=32,
                                         pitch_map=True),
    # Pitch maps with instantaneous frequency too (for the low octaves).
    "mel_prog_1s_pitch_map_if": ModelConfig(audio_length=16000, spec_shape=(128, 256),
                                            start_shape=(2, 4), latent_size=64, fmap_max=32,
                                            pitch_map=True, pitch_map_if=True),
    # Pitch maps on Magenta's frequency resolution (n_fft 2048, 7.8 Hz bins) at 1 s: the
    # same pixel count as 128 x 256, but the harmonics of C1 (32.7 Hz apart) are resolved.
    "mel_prog_1s_hires_pitch_map_if": ModelConfig(audio_length=16000, spec_shape=(32, 1024),
                                                  start_shape=(1, 32), num_resolutions=6,
                                                  latent_size=64, fmap_max=32, pitch_map=True,
                                                  pitch_map_if=True),
    # Tiny debug model: every code path in seconds on a CPU (tests).
    "tiny": ModelConfig(audio_length=16000, spec_shape=(128, 256), start_shape=(2, 4),
                        latent_size=16, fmap_max=8),
}


def preset(name: str) -> ModelConfig:
    """The preset `name`; ValueError listing the presets if there is none of that name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; presets: {sorted(PRESETS)}") from None
