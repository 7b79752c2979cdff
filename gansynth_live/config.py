"""Model architecture configurations: Magenta's `mel_prog_hires` and small presets.

A `ModelConfig` holds everything that fixes the shapes of the networks and of the
audio they make. It is plain data: it round-trips through JSON (the model
directory's config.json) and through Magenta's experiment.json hparams.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

# What a config may make the program allocate, checked before anything is built, so that
# a damaged or hostile config.json / experiment.json is one error line, not a MemoryError
# after gigabytes. Each is several times what Magenta's largest model (mel_prog_hires:
# 128 x 1024 image, 7.3 M generator parameters, largest feature map 4.2 M values) needs.
MAX_SAMPLE_RATE = 96_000
MAX_LATENT_SIZE = 4096
MAX_RESOLUTIONS = 16
MAX_FMAP_DECAY = 8.0  # |fmap_decay|: 2**(block * decay) stays a float
MAX_FREQUENCY_BINS = 4096  # the mel matrices are bins x bins
MAX_SPEC_PIXELS = 1 << 20  # time frames x frequency bins (8 x the hires image)
MAX_GENERATOR_PARAMETERS = 50_000_000  # 200 MB of float32 weights
MAX_FEATURE_MAP_VALUES = 1 << 24  # the largest tensor one note makes: 64 MB of float32
MAX_PITCHES = 128  # MIDI notes 0..127: the most a pitch vocabulary can hold


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
        for field in ("spec_shape", "start_shape"):
            value = getattr(self, field)
            if (not isinstance(value, (list, tuple))
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                raise ValueError(f"model config: {field} = {value!r:.80}: must be two positive "
                                 f"integers")
            object.__setattr__(self, field, tuple(int(v) for v in value))
        self.validate()

    def validate(self) -> None:
        def fail(field: str, why: str) -> None:
            raise ValueError(f"model config: {field} = {getattr(self, field)!r}: {why}")

        for field in ("sample_rate", "audio_length", "latent_size", "kernel_size",
                      "fmap_base", "fmap_max", "num_resolutions"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, "must be a positive integer")
        for field, most in (("sample_rate", MAX_SAMPLE_RATE), ("latent_size", MAX_LATENT_SIZE),
                            ("num_resolutions", MAX_RESOLUTIONS)):
            if getattr(self, field) > most:
                fail(field, f"must be at most {most}")
        if (isinstance(self.fmap_decay, bool) or not isinstance(self.fmap_decay, (int, float))
                or not abs(self.fmap_decay) <= MAX_FMAP_DECAY):  # also refuses NaN
            fail("fmap_decay", f"must be a number in {-MAX_FMAP_DECAY:g}..{MAX_FMAP_DECAY:g}")
        if self.channels not in (1, 2):
            fail("channels", "must be 1 (mono) or 2 (stereo)")
        if len(self.spec_shape) != 2 or min(self.spec_shape) <= 0:
            fail("spec_shape", "must be two positive integers (time frames, frequency bins)")
        frames, bins = self.spec_shape
        if bins & (bins - 1):
            fail("spec_shape", "the number of frequency bins must be a power of 2")
        if bins > MAX_FREQUENCY_BINS or frames * bins > MAX_SPEC_PIXELS:
            fail("spec_shape", f"at most {MAX_FREQUENCY_BINS} frequency bins and "
                               f"{MAX_SPEC_PIXELS} pixels (frames x bins)")
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
        # The size of the networks, from the numbers alone (nothing is allocated yet).
        if min(self.num_filters(b) for b in range(self.num_resolutions + 1)) < 1:
            fail("fmap_base", f"with fmap_decay {self.fmap_decay} leaves a block without "
                              f"feature maps")
        sizes = (f"fmap_base {self.fmap_base}, fmap_decay {self.fmap_decay:g}, fmap_max "
                 f"{self.fmap_max}, kernel_size {self.kernel_size}, latent_size "
                 f"{self.latent_size}, spec_shape {self.spec_shape}")
        parameters = self.generator_parameters(MAX_PITCHES)
        if parameters > MAX_GENERATOR_PARAMETERS:
            raise ValueError(f"model config: the generator would have {parameters:,} "
                             f"parameters ({sizes}); at most {MAX_GENERATOR_PARAMETERS:,}")
        values = self.largest_feature_map()
        if values > MAX_FEATURE_MAP_VALUES:
            raise ValueError(f"model config: a note's largest feature map would hold "
                             f"{values:,} values ({sizes}); at most {MAX_FEATURE_MAP_VALUES:,}")

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

    def generator_parameters(self, num_pitches: int) -> int:
        """Weights of the generator (`networks.Generator`) conditioned on `num_pitches`,
        counted from the config alone, so a huge one is refused before it is built."""
        nf, k, extra = self.num_filters, self.kernel_size, self.pitch_map_channels

        def conv(kh: int, kw: int, cin: int, cout: int) -> int:
            return kh * kw * cin * cout + cout  # kernel + bias

        total = 0
        for b in range(1, self.num_resolutions + 1):
            if b == 1:
                total += conv(*self.start_shape, self.latent_size + num_pitches, nf(1))
            else:
                total += conv(k, k, nf(b - 1), nf(b))
            total += conv(k, k, nf(b) + extra, nf(b))
            total += conv(1, 1, nf(b), self.image_channels)  # to_rgb
            if self.self_attention and b == self.attention_block:
                c, c8, c2 = nf(b), max(nf(b) // 8, 1), max(nf(b) // 2, 1)
                # f, g, h, o: 1x1 kernel + bias + power-iteration vector u; and gamma
                total += sum(cin * cout + 2 * cout for cin, cout in
                             ((c, c8), (c, c8), (c, c2), (c2, c))) + 1
        return total

    def largest_feature_map(self) -> int:
        """Values in the largest tensor the generator makes for one note: a block's
        (H, W, filters) output, or the self-attention matrix (HW x HW/4)."""
        largest = 0
        for b in range(1, self.num_resolutions + 1):
            h, w = self.block_shape(b)
            largest = max(largest, h * w * (self.num_filters(b) + self.pitch_map_channels))
            if self.self_attention and b == self.attention_block:
                largest = max(largest, (h * w) * (h * w // 4))
        return largest

    # Serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec_shape"] = list(self.spec_shape)
        d["start_shape"] = list(self.start_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """A config from its JSON object; ValueError naming what is wrong (bounds included)."""
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, got {type(d).__name__}")
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
