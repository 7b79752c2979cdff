"""Load a Magenta GANSynth training directory (TF1 checkpoint) with no conversion step.

Such a directory (Magenta's published `acoustic_only` / `all_instruments`, a
SopiMlab-postprocessed model, a GANSynth-Stereo run) holds:

    experiment.json             all training flags (hparams)
    stage_00000 .. stage_000NN  one folder per progressive stage, each with
                                model.ckpt-<images>.{index,data-*} and a `checkpoint` file
    meta.json                   (SopiMlab) the dataset's notes, giving the pitch vocabulary

The newest checkpoint of the highest stage that reads intact is used (a damaged newer
one is named in a warning and left alone: the directory is the user's), taking the generator's
exponential-moving-average copies (`<name>/ExponentialMovingAverage`), which is
what Magenta samples with. Checkpoint numbers are compared as numbers, and the
`checkpoint` file's (often absolute, stale) paths are not trusted.

A damaged directory is a `ModelLoadError` naming the file, and costs no more memory than
the model it claims to be: only regular files are opened (a FIFO would block), the JSON
files have size limits, the flags make a bounded `ModelConfig`, the data files must be
as large as the tensors their index lists, and every tensor's stored shape is compared
with the generator's before it is read.
"""
from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from gansynth_live.config import MAX_PITCHES, MAX_RESOLUTIONS, ModelConfig
from gansynth_live.model import Model
from gansynth_live.model_dir import ModelLoadError, assign_weights
from gansynth_live.networks import GENERATOR_SCOPE, Generator, block_scope
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.user_files import file_problem

tf = import_tensorflow()

log = logging.getLogger(__name__)

EMA_SUFFIX = "/ExponentialMovingAverage"
_STAGE_RE = re.compile(r"^stage_(\d+)$")
_CKPT_RE = re.compile(r"^model\.ckpt-(\d+)\.index$")
MAX_FLAGS_BYTES = 2**20  # experiment.json: some 100 flags
MAX_META_BYTES = 256 * 2**20  # meta.json: NSynth's 300 k notes take 100 MB

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


def _read_json(path: Path, file: Path, max_bytes: int) -> Any:
    problem = file_problem(file, max_bytes)
    if problem:
        raise ModelLoadError(path, problem)
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelLoadError(path, f"{file.name} is not valid JSON: {e}") from None


def _read_flags(path: Path) -> dict[str, Any]:
    # Magenta's newer code reads experiment.json from the model dir, older code one level up.
    for candidate in (path / "experiment.json", path.parent / "experiment.json"):
        if candidate.exists():
            flags = _read_json(path, candidate, MAX_FLAGS_BYTES)
            if not isinstance(flags, dict):
                raise ModelLoadError(path, f"{candidate.name} must hold a JSON object of flags")
            return {**MAGENTA_DEFAULTS, **flags}
    raise ModelLoadError(path, "experiment.json is missing (it holds the training flags)")


def config_from_flags(flags: dict[str, Any], path: Path) -> ModelConfig:
    """The architecture of a Magenta (or GANSynth-Stereo) run, from its flags."""
    try:
        return _config_from_flags(flags, path)
    except ModelLoadError:
        raise
    except (TypeError, ValueError, OverflowError) as e:  # a flag of the wrong type
        raise ModelLoadError(path, f"experiment.json: {e}") from None


def _config_from_flags(flags: dict[str, Any], path: Path) -> ModelConfig:
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
    if not 1 <= num_resolutions <= MAX_RESOLUTIONS:  # before 2 ** (num_resolutions - 1)
        raise ModelLoadError(path, f"experiment.json: num_resolutions = {num_resolutions} is "
                                   f"not in 1..{MAX_RESOLUTIONS}")
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


def complete_checkpoints(path: Path) -> list[tuple[str, int, int]]:
    """(checkpoint prefix, stage number, image count) of every checkpoint with an .index
    and data, newest first (highest stage, then most images)."""
    stages = sorted(((int(m.group(1)), p) for p in path.iterdir()
                     if p.is_dir() and (m := _STAGE_RE.match(p.name))), reverse=True)
    if not stages:
        raise ModelLoadError(path, "no stage_NNNNN folders (is this a GANSynth training dir?)")
    found = []
    for stage, stage_dir in stages:
        steps = sorted((int(m.group(1)) for f in stage_dir.iterdir()
                        if (m := _CKPT_RE.match(f.name))), reverse=True)
        for step in steps:
            if any(f.name.startswith(f"model.ckpt-{step}.data-") for f in stage_dir.iterdir()):
                found.append((os.fspath(stage_dir / f"model.ckpt-{step}"), stage, step))
    if not found:
        raise ModelLoadError(path, "no stage folder holds a complete model.ckpt-N "
                                   "(.index + .data)")
    return found


class DamagedCheckpoint(ModelLoadError):
    """One checkpoint's files cannot be read; an older one may still load."""


def check_data_size(path: Path, prefix: str, shapes: dict[str, list[int]],
                    dtypes: dict[str, Any]) -> None:
    """Refuse data files smaller than the tensors the index lists (a truncated copy):
    TensorFlow would fail on the first tensor past the end, after reading the others."""
    listed = 0
    for name, shape in shapes.items():
        dtype = dtypes[name]
        if dtype.is_numpy_compatible and dtype != tf.string:
            listed += int(np.prod(shape, dtype=np.float64)) * dtype.size
    data = [f for f in Path(prefix).parent.iterdir()
            if f.name.startswith(Path(prefix).name + ".data-")]
    stored = sum(f.stat().st_size for f in data)
    if stored < listed:
        names = ", ".join(sorted(os.path.relpath(f, path) for f in data))
        raise DamagedCheckpoint(path, f"{names} holds {stored:,} bytes but its index lists "
                                   f"{listed:,} bytes of tensors (truncated, or a damaged "
                                   f".index)")


def pitch_vocabulary(path: Path, flags: dict[str, Any], num_pitches: int) -> list[int]:
    """Sorted training pitches: from meta.json if present, else train_min..max_pitch.

    `num_pitches` (read off the checkpoint's conditioning width) must agree.
    """
    try:
        lo, hi = int(flags["train_min_pitch"]), int(flags["train_max_pitch"])
    except (TypeError, ValueError, OverflowError) as e:
        raise ModelLoadError(path, f"experiment.json: train_min_pitch / train_max_pitch: "
                                   f"{e}") from None
    if not 0 <= lo <= hi < MAX_PITCHES:
        raise ModelLoadError(path, f"experiment.json: train_min_pitch..train_max_pitch = "
                                   f"{lo}..{hi} is not a range of MIDI notes 0..127")
    meta_path = path / "meta.json"
    if meta_path.exists():
        meta = _read_json(path, meta_path, MAX_META_BYTES)
        try:
            pitches = sorted({int(note["pitch"]) for note in meta.values()
                              if lo <= int(note["pitch"]) <= hi})
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
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
    """Load a Magenta GANSynth training directory as a `Model`: its newest checkpoint
    that reads intact (a damaged newer one is named in a warning and left in place)."""
    path = Path(path)
    flags = _read_flags(path)
    config = config_from_flags(flags, path)
    checkpoints = complete_checkpoints(path)
    newest_damage = None
    for n, (prefix, stage, step) in enumerate(checkpoints, 1):
        try:
            pitches, generator = _read_generator(path, prefix, config, flags)
        except DamagedCheckpoint as damage:
            newest_damage = newest_damage or damage
            if n < len(checkpoints):
                log.warning("%s: %s; trying the next older checkpoint", path, damage.reason)
            continue
        return Model(config, pitches, generator=generator,
                     name=f"{path.name} (stage {stage}, {step} images)", **model_options)
    if len(checkpoints) == 1:
        raise newest_damage
    raise ModelLoadError(path, f"no checkpoint is intact; the newest: {newest_damage.reason}")


def _read_generator(path: Path, prefix: str, config: ModelConfig,
                    flags: dict[str, Any]) -> tuple[list[int], Generator]:
    """The pitch vocabulary and the generator with checkpoint `prefix`'s weights (its
    EMA copies when it has them); DamagedCheckpoint when its files cannot be read."""
    name = os.path.relpath(prefix, path)  # stage_00006/model.ckpt-10, for the messages
    stage_dir = Path(prefix).parent
    data = [f for f in stage_dir.iterdir() if f.name.startswith(Path(prefix).name + ".data-")]
    for file in [Path(prefix + ".index")] + data:
        problem = file_problem(file)
        if problem:
            raise DamagedCheckpoint(path, f"{stage_dir.name}/{problem}")
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        raise DamagedCheckpoint(path, f"{name} is unreadable: {e}") from None
    check_data_size(path, prefix, shapes, dtypes)

    first_kernel = f"{block_scope(GENERATOR_SCOPE, 1)}/conv0/conv2d/kernel"
    if first_kernel not in shapes or len(shapes[first_kernel]) != 4:
        raise ModelLoadError(path, f"{name} has no generator variable {first_kernel}")
    num_pitches = shapes[first_kernel][2] - config.latent_size
    pitches = pitch_vocabulary(path, flags, num_pitches)

    generator = Generator(config, len(pitches))
    wanted = generator.named_variables()
    use_ema = all(n + EMA_SUFFIX in shapes for n in wanted)
    if not use_ema:
        log.warning("%s has no ExponentialMovingAverage copies; using the raw generator "
                    "weights", prefix)
    stored = {n: n + EMA_SUFFIX if use_ema else n for n in wanted}
    for n, variable in wanted.items():  # before reading: a damaged shape can be huge
        if stored[n] in shapes and tuple(shapes[stored[n]]) != tuple(variable.shape):
            raise ModelLoadError(path, f"{name}: {stored[n]} has shape "
                                       f"{tuple(shapes[stored[n]])}, the config needs "
                                       f"{tuple(variable.shape)}")
    try:
        weights = {n: reader.get_tensor(stored[n]) for n in wanted if stored[n] in shapes}
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        # TensorFlow reports a short read as IndexError, a checksum mismatch as DataLoss.
        raise DamagedCheckpoint(path, f"{name} is corrupt: {e}") from None
    assign_weights(generator, {k: np.asarray(v) for k, v in weights.items()}, path,
                   os.path.basename(prefix))
    return pitches, generator
