"""Training hyperparameters: Magenta's names and defaults, plus the forks' additions.

`resolve_hparams(config_name, overrides)` starts from Magenta's `mel_prog_hires`
training settings, applies a preset architecture (`--config`) and then the user's
`--hparams` JSON. Unknown names and bad values are errors that name them.
"""
from __future__ import annotations

import json
import math
from typing import Any

from gansynth_live.config import ModelConfig, preset

# What each --config preset (gansynth_live.config.PRESETS) is for, as gansynth-train --help says.
PRESET_PURPOSES: dict[str, str] = {
    "mel_prog_hires": "Magenta's model: 4 s notes, 128 x 1024 mel-IF image (a GPU job)",
    "mel_prog_1s": "1 s notes on a 128 x 256 image, narrow layers: trains on a CPU",
    "mel_prog_1s_pitch_map": "mel_prog_1s with pitch maps (learns pitch on a CPU)",
    "mel_prog_1s_pitch_map_if": "pitch maps with instantaneous frequency, for low octaves",
    "mel_prog_1s_hires_pitch_map_if": "the default model's: 1 s, 32 x 1024 image, pitch maps",
    "tiny": "a debug model: every code path in seconds (tests)",
}

# Magenta mel_prog_hires training values (docs/magenta-reference.md section 1) and the forks' additions.
TRAINING_DEFAULTS: dict[str, Any] = {
    # where things are
    "train_data_path": None,  # data.tfrecord, a dataset dir, or a folder of note WAVs
    "train_meta_path": None,  # SopiMlab meta.json: pitch vocabulary and label distribution
    "train_root_dir": None,  # checkpoints, summaries, experiment.json
    # which notes (SopiMlab)
    "train_instrument_sources": [0],
    "train_min_pitch": 24,
    "train_max_pitch": 84,
    # Not in Magenta: how often each pitch is drawn, relative to its share of the notes.
    # Keys are a MIDI pitch ("24") or an inclusive range ("24-28"), values weights > 0;
    # pitches not named weigh 1. Real and generated batches follow the same weights.
    "train_pitch_weights": {},
    # schedule (the global step counts images)
    "total_num_images": 11_000_000,
    "stable_stage_num_images": 800_000,
    "transition_stage_num_images": 800_000,
    "batch_size_schedule": [8],
    "train_progressive": True,
    # optimisation
    "generator_learning_rate": 8e-4,
    "discriminator_learning_rate": 8e-4,
    "adam_beta1": 0.0,
    "adam_beta2": 0.99,
    "generator_ema_decay": 0.999,
    # losses
    "gradient_penalty_target": 1.0,
    "gradient_penalty_weight": 10.0,
    "real_score_penalty_weight": 0.001,
    "generator_ac_loss_weight": 10.0,
    "discriminator_ac_loss_weight": 10.0,
    # Not in Magenta (off by default): a dense pitch classifier on the time-averaged
    # normalised magnitude, added to the AC logits. docs/magenta-reference.md section 5:
    # the PGGAN classifier alone learns pitch very slowly at small sizes.
    "discriminator_pitch_head": False,
    # A run directory to start from when this run has no checkpoint yet: its weights,
    # moving average, optimiser state and image count, with new input channels (e.g.
    # pitch_map_if) at zero (training/warm_start.py).
    "warm_start_from": None,
    # bookkeeping
    "save_summaries_num_images": 10_000,
    # Magenta saves every 600 s; 300 loses at most 5 minutes to a kill -9 or power cut
    # (Ctrl-C, SIGTERM and Slurm's warning signal save at once).
    "save_checkpoint_secs": 300,
    "fake_batch_size": 61,
    "seed": 0,
}

# Architecture hparams (Magenta's and GANSynth-Stereo's names) -> ModelConfig fields.
ARCHITECTURE_HPARAMS = {
    "latent_vector_size": "latent_size", "kernel_size": "kernel_size",
    "fmap_base": "fmap_base", "fmap_decay": "fmap_decay", "fmap_max": "fmap_max",
    "num_resolutions": "num_resolutions", "sample_rate": "sample_rate",
    "self_attention": "self_attention", "pitch_map": "pitch_map",
    "pitch_map_if": "pitch_map_if",
}
SPECIAL_ARCHITECTURE_HPARAMS = ("start_height", "start_width", "audio_length", "channel_mode")

_TYPES = {
    "train_instrument_sources": list, "batch_size_schedule": list, "train_progressive": bool,
    "discriminator_pitch_head": bool, "train_pitch_weights": dict,
}


class HparamsError(ValueError):
    pass


def parse_hparams_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise HparamsError(f"--hparams is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise HparamsError("--hparams must be a JSON object, e.g. '{\"train_root_dir\": \"m\"}'")
    return value


# Types of the architecture hparams, checked before any arithmetic on them.
_ARCHITECTURE_TYPES = {
    "latent_vector_size": int, "kernel_size": int, "fmap_base": int, "fmap_max": int,
    "num_resolutions": int, "sample_rate": int, "start_height": int, "start_width": int,
    "fmap_decay": (int, float), "audio_length": (int, float), "self_attention": bool,
    "pitch_map": bool, "pitch_map_if": bool, "channel_mode": str,
}


def _check_architecture_types(overrides: dict[str, Any]) -> None:
    for key, expected in _ARCHITECTURE_TYPES.items():
        if key not in overrides:
            continue
        value = overrides[key]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            names = (expected,) if isinstance(expected, type) else expected
            raise HparamsError(f"hparam {key} = {value!r}: expected "
                               f"{' or '.join(t.__name__ for t in names)}")


def architecture_from(config_name: str, overrides: dict[str, Any]) -> ModelConfig:
    """The preset `config_name` with architecture hparams applied."""
    _check_architecture_types(overrides)
    config = preset(config_name)
    changes = {ARCHITECTURE_HPARAMS[k]: v for k, v in overrides.items() if k in ARCHITECTURE_HPARAMS}
    scale = 2 ** (changes.get("num_resolutions", config.num_resolutions) - 1)
    start = (overrides.get("start_height", config.start_shape[0]),
             overrides.get("start_width", config.start_shape[1]))
    if start != config.start_shape or "num_resolutions" in changes:
        changes["start_shape"] = start
        changes["spec_shape"] = (start[0] * scale, start[1] * scale)
    if "channel_mode" in overrides:
        mode = overrides["channel_mode"]
        if mode not in ("mono", "stereo"):
            raise HparamsError(f"hparam channel_mode = {mode!r}: must be 'mono' or 'stereo'")
        changes["channels"] = 1 if mode == "mono" else 2
    if "audio_length" in overrides:
        # GANSynth-Stereo gives seconds; a whole number > 1000 is taken as samples (Magenta).
        value = overrides["audio_length"]
        rate = changes.get("sample_rate", config.sample_rate)
        if not isinstance(value, (int, float)) or value <= 0:
            raise HparamsError(f"hparam audio_length = {value!r}: must be a positive number")
        changes["audio_length"] = int(value) if value > 1000 else int(round(value * rate))
    try:
        return config.replace(**changes)
    except (TypeError, ValueError) as e:
        given = {k: overrides[k] for k in (*ARCHITECTURE_HPARAMS, *SPECIAL_ARCHITECTURE_HPARAMS)
                 if k in overrides}
        raise HparamsError(f"architecture hparams {given} on config {config_name!r}: {e}") from None


def resolve_hparams(config_name: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], ModelConfig]:
    """(training hparams, architecture) for `--config` and `--hparams`; errors name the key."""
    known = set(TRAINING_DEFAULTS) | set(ARCHITECTURE_HPARAMS) | set(SPECIAL_ARCHITECTURE_HPARAMS)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise HparamsError(f"unknown hparams {unknown}; known: {sorted(known)}")
    hparams = dict(TRAINING_DEFAULTS)
    hparams.update({k: v for k, v in overrides.items() if k in TRAINING_DEFAULTS})
    for key, value in hparams.items():
        default = TRAINING_DEFAULTS[key]
        expected = _TYPES.get(key, type(default) if default is not None else str)
        if value is None and default is None:
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = hparams[key] = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise HparamsError(f"hparam {key} = {value!r}: expected {expected.__name__}")
    for key in ("total_num_images", "stable_stage_num_images", "transition_stage_num_images",
                "save_summaries_num_images", "fake_batch_size"):
        if hparams[key] <= 0:
            raise HparamsError(f"hparam {key} = {hparams[key]!r}: must be positive")
    if not hparams["batch_size_schedule"] or not all(
            isinstance(b, int) and b > 0 for b in hparams["batch_size_schedule"]):
        raise HparamsError(f"hparam batch_size_schedule = {hparams['batch_size_schedule']!r}: "
                           f"must be a non-empty list of positive integers")
    if not 0 <= hparams["train_min_pitch"] <= hparams["train_max_pitch"] <= 127:
        raise HparamsError("hparams train_min_pitch..train_max_pitch must be a MIDI range, got "
                           f"{hparams['train_min_pitch']}..{hparams['train_max_pitch']}")
    for key in ("train_data_path", "train_root_dir"):
        if not hparams[key]:
            raise HparamsError(f"hparam {key} is required")
    hparams["train_pitch_weights"] = expand_pitch_weights(hparams["train_pitch_weights"])
    return hparams, architecture_from(config_name, overrides)


def expand_pitch_weights(weights: dict[str, Any]) -> dict[str, float]:
    """train_pitch_weights with ranges expanded: {"24-25": 3} -> {"24": 3.0, "25": 3.0}.

    Keys stay strings so the resolved hparams are the JSON written to experiment.json.
    """
    expanded: dict[str, float] = {}
    for key, weight in weights.items():
        where = f"hparam train_pitch_weights[{key!r}]"
        low, _, high = str(key).partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise HparamsError(f"{where}: the key must be a MIDI pitch or a range like "
                               f"'24-28'") from None
        if not 0 <= first <= last <= 127:
            raise HparamsError(f"{where}: must be MIDI pitches 0..127, low to high")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight <= 0:
            raise HparamsError(f"{where} = {weight!r}: must be a number > 0")
        for pitch in range(first, last + 1):
            if str(pitch) in expanded:
                raise HparamsError(f"{where}: pitch {pitch} is given a weight twice")
            expanded[str(pitch)] = float(weight)
    return expanded
