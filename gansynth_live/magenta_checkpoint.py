"""Load a Magenta GANSynth training directory (TF1 checkpoint) with no conversion step.

Such a directory (Magenta's published `acoustic_only` / `all_instruments`, a
SopiMlab-postprocessed model, a GANSynth-Stereo run) holds:

    experiment.json             all training flags (hparams)
    stage_00000 .. stage_000NN  one folder per progressive stage, each with
                                model.ckpt-<images>.{index,data-*} and a `checkpoint` file
    meta.json                   (SopiMlab) the dataset's notes, giving the pitch vocabulary

The newest checkpoint of the highest stage is read, taking the generator's
exponential-moving-average copies (`<name>/ExponentialMovingAverage`), which is
what Magenta samples with. Checkpoint numbers are compared as numbers, and the
`checkpoint` file's (often absolute, stale) paths are not trusted.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from gansynth_live.config import ModelConfig
from gansynth_live.model import Model
from gansynth_live.model_dir import ModelLoadError, assign_weights
from gansynth_live.networks import GENERATOR_SCOPE, Generator, block_scope

log = logging.getLogger(__name__)

EMA_SUFFIX = "/ExponentialMovingAverage"
_STAGE_RE = re.compile(r"^stage_(\d+)$")
_CKPT_RE = re.compile(r"^model\.ckpt-(\d+)\.index$")

# Magenta's defaults for flags an experiment.json may leave out (lib/model.py set_flags).
MAGENTA_DEFAULTS: dict[str, Any] = {
    "data_type": "mel", "audio_length": 64000, "sample_rate": 16000,
    "latent_vector_size": 256, "kernel_size": 3, "start_height": 4, "start_width": 8,
    "scale_mode": "ALL", "scale_base": 2, "num_resolutions": 7, "simple_arch": False,
    "to_rgb_activation": "tanh", "fmap_base": 512, "fmap_decay": 1.0, "fmap_max": 128,
    "g_fn": "specgram", "train_min_pitch": 24, "train_max_pitch": 84,
    "mag_normalizer_a": 0.0661371661726, "mag_normalizer_b": 0.113718730221,
    "p_normalizer_a": 0.8, "p_normalizer_b": 0.0,
}


def is_magenta_dir(path: Path) -> bool:
    return (path / "experiment.json").exists() or any(
        _STAGE_RE.match(p.name) for p in path.iterdir() if p.is_dir())


def _read_flags(path: Path) -> dict[str, Any]:
    # Magenta's newer code reads experiment.json from the model dir, older code one level up.
    for candidate in (path / "experiment.json", path.parent / "experiment.json"):
        if candidate.exists():
            try:
                flags = json.loads(candidate.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelLoadError(path, f"{candidate.name} is not valid JSON: {e}") from None
            if not isinstance(flags, dict):
                raise ModelLoadError(path, f"{candidate.name} must hold a JSON object of flags")
            return {**MAGENTA_DEFAULTS, **flags}
    raise ModelLoadError(path, "experiment.json is missing (it holds the training flags)")


def config_from_flags(flags: dict[str, Any], path: Path) -> ModelConfig:
    """The architecture of a Magenta (or GANSynth-Stereo) run, from its flags."""
    unsupported = {
        "data_type": ("mel",), "g_fn": ("specgram",), "scale_mode": ("ALL",), "scale_base": (2,),
        "simple_arch": (False,), "to_rgb_activation": ("tanh",),
        "mag_normalizer_a": (MAGENTA_DEFAULTS["mag_normalizer_a"],),
        "mag_normalizer_b": (MAGENTA_DEFAULTS["mag_normalizer_b"],),
        "p_normalizer_a": (MAGENTA_DEFAULTS["p_normalizer_a"],),
        "p_normalizer_b": (MAGENTA_DEFAULTS["p_normalizer_b"],),
    }
    for flag, allowed in unsupported.items():
        if flags[flag] not in allowed:
            raise ModelLoadError(path, f"experiment.json: {flag} = {flags[flag]!r} is not "
                                       f"supported (supported: {list(allowed)})")
    sample_rate = int(flags["sample_rate"])
    # GANSynth-Stereo gives audio_length in seconds (and has channel_mode); Magenta in samples.
    if "channel_mode" in flags:
        audio_length = int(round(float(flags["audio_length"]) * sample_rate))
        channels = {"mono": 1, "stereo": 2}.get(flags["channel_mode"])
        if channels is None:
            raise ModelLoadError(path, f"experiment.json: channel_mode = "
                                       f"{flags['channel_mode']!r} is not 'mono' or 'stereo'")
    else:
        audio_length, channels = int(flags["audio_length"]), 1
    start = (int(flags["start_height"]), int(flags["start_width"]))
    num_resolutions = int(flags["num_resolutions"])
    scale = 2 ** (num_resolutions - 1)
    try:
        return ModelConfig(sample_rate=sample_rate, audio_length=audio_length, channels=channels,
                           spec_shape=(start[0] * scale, start[1] * scale), start_shape=start,
                           num_resolutions=num_resolutions,
                           latent_size=int(flags["latent_vector_size"]),
                           kernel_size=int(flags["kernel_size"]),
                           fmap_base=int(flags["fmap_base"]),
                           fmap_decay=float(flags["fmap_decay"]),
                           fmap_max=int(flags["fmap_max"]))
    except ValueError as e:
        raise ModelLoadError(path, f"experiment.json: {e}") from None


def latest_checkpoint(path: Path) -> tuple[str, int, int]:
    """(checkpoint prefix, stage number, image count) of the newest complete checkpoint."""
    stages = sorted(((int(m.group(1)), p) for p in path.iterdir()
                     if p.is_dir() and (m := _STAGE_RE.match(p.name))), reverse=True)
    if not stages:
        raise ModelLoadError(path, "no stage_NNNNN folders (is this a GANSynth training dir?)")
    for stage, stage_dir in stages:
        steps = sorted((int(m.group(1)) for f in stage_dir.iterdir()
                        if (m := _CKPT_RE.match(f.name))), reverse=True)
        for step in steps:
            prefix = stage_dir / f"model.ckpt-{step}"
            if any(f.name.startswith(f"model.ckpt-{step}.data-") for f in stage_dir.iterdir()):
                return os.fspath(prefix), stage, step
    raise ModelLoadError(path, "no stage folder holds a complete model.ckpt-N (.index + .data)")


def pitch_vocabulary(path: Path, flags: dict[str, Any], num_pitches: int) -> list[int]:
    """Sorted training pitches: from meta.json if present, else train_min..max_pitch.

    `num_pitches` (read off the checkpoint's conditioning width) must agree.
    """
    lo, hi = int(flags["train_min_pitch"]), int(flags["train_max_pitch"])
    meta_path = path / "meta.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            pitches = sorted({int(note["pitch"]) for note in meta.values()
                              if lo <= int(note["pitch"]) <= hi})
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise ModelLoadError(path, f"meta.json is not a SopiMlab dataset meta: {e}") from None
        source = "meta.json"
    else:
        pitches = list(range(lo, hi + 1))
        source = f"train_min_pitch..train_max_pitch ({lo}..{hi})"
    if len(pitches) != num_pitches:
        raise ModelLoadError(path, f"the checkpoint conditions on {num_pitches} pitches but "
                                   f"{source} gives {len(pitches)}")
    return pitches


def load_magenta_dir(path: os.PathLike | str, **model_options: Any) -> Model:
    """Load a Magenta GANSynth training directory as a `Model`."""
    path = Path(path)
    flags = _read_flags(path)
    config = config_from_flags(flags, path)
    prefix, stage, step = latest_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise ModelLoadError(path, f"{prefix} is unreadable: {e}") from None

    first_kernel = f"{block_scope(GENERATOR_SCOPE, 1)}/conv0/conv2d/kernel"
    if first_kernel not in shapes:
        raise ModelLoadError(path, f"{prefix} has no generator variable {first_kernel}")
    num_pitches = shapes[first_kernel][2] - config.latent_size
    pitches = pitch_vocabulary(path, flags, num_pitches)

    generator = Generator(config, len(pitches))
    wanted = generator.named_variables()
    use_ema = all(name + EMA_SUFFIX in shapes for name in wanted)
    if not use_ema:
        log.warning("%s has no ExponentialMovingAverage copies; using the raw generator "
                    "weights", prefix)
    try:
        weights = {name: reader.get_tensor(name + EMA_SUFFIX if use_ema else name)
                   for name in wanted if (name + EMA_SUFFIX if use_ema else name) in shapes}
    except tf.errors.OpError as e:
        raise ModelLoadError(path, f"{prefix} is corrupt: {e}") from None
    assign_weights(generator, {k: np.asarray(v) for k, v in weights.items()}, path,
                   os.path.basename(prefix))
    return Model(config, pitches, generator=generator,
                 name=f"{path.name} (stage {stage}, {step} images)", **model_options)
