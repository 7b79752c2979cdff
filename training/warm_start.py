"""Start a run from another run's checkpoint, with more network input channels.

A new run whose architecture differs from an old one only in the input channels of
some convolutions (e.g. `pitch_map_if` adds a pitch-map channel to every generator
block and to the discriminator's from_rgb) need not start from scratch. With the
hparam `warm_start_from` set to the old run's directory, a run that has no checkpoint
of its own starts from the old run's newest one:

- every variable of the same shape is copied (networks, moving average, pitch head,
  image count, optimiser state), so the run goes on where the old one stopped;
- a convolution kernel with more input channels gets the old weights for the old
  channels and zeros for the new ones, rescaled for the equalised learning rate's
  He constant (which depends on the number of inputs), so the new networks compute
  exactly what the old ones did until training moves the new weights;
- Adam's state for such a kernel: momentum 0 for the new weights and, for their
  velocity, the mean of the old weights' velocity, so their first steps have the
  usual size rather than lr / sqrt(1 - beta2) = 10 lr.

Anything else that differs (pitches, channel counts inside the networks, spectrogram
shape) is an error naming the variable.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from gansynth_live import training_run
from gansynth_live.config import ModelConfig
from gansynth_live.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()


class WarmStartError(ValueError):
    pass


def _widened(name: str, old: np.ndarray, new_shape: tuple[int, ...], power: int) -> np.ndarray:
    """`old` [h, w, in, out] in zeros of new_shape (more inputs), times ratio ** power.

    The equalised learning rate multiplies a kernel by sqrt(2 / fan_in) where it is
    used, so with `ratio` = sqrt(new inputs / old inputs) the kernel times ratio
    computes the same, its gradients are divided by ratio (Adam's momentum: power -1)
    and their squares by ratio ** 2 (velocity: power -2).
    """
    if (old.ndim != 4 or len(new_shape) != 4 or old.shape[:2] != new_shape[:2]
            or old.shape[3] != new_shape[3] or new_shape[2] < old.shape[2]):
        raise WarmStartError(f"variable {name}: shape {old.shape} cannot become {new_shape}; "
                             f"only a convolution's input channels may grow")
    ratio = math.sqrt(new_shape[2] / old.shape[2])
    new = np.zeros(new_shape, old.dtype)
    new[:, :, :old.shape[2], :] = old * ratio ** power
    return new


def _copy_variables(what: str, source: list[tf.Variable], target: list[tf.Variable],
                    on_widen: Callable[[str, np.ndarray, tuple], np.ndarray]) -> None:
    if len(source) != len(target):
        raise WarmStartError(f"{what}: {len(source)} variables in the checkpoint's run, "
                             f"{len(target)} in this one")
    for src, dst in zip(source, target):
        if src.name != dst.name:
            raise WarmStartError(f"{what}: variable {dst.name} of this run meets {src.name}")
        value = src.numpy()
        if tuple(src.shape) != tuple(dst.shape):
            value = on_widen(dst.name, value, tuple(dst.shape))
        dst.assign(value)


def _copy_network(what: str, source: tf.Module, target: tf.Module) -> None:
    old, new = source.named_variables(), target.named_variables()
    if sorted(old) != sorted(new):
        raise WarmStartError(f"{what}: variables {sorted(set(old) ^ set(new))} are in only one "
                             f"of the two runs")
    for name in sorted(new):
        value = old[name].numpy()
        if tuple(old[name].shape) != tuple(new[name].shape):
            value = _widened(name, value, tuple(new[name].shape), power=1)
        new[name].assign(value)


def _copy_optimizer(what: str, source, target) -> None:
    """Adam's variables: iteration, learning rate, then (momentum, velocity) per weight."""
    def widen_slot(name: str, old: np.ndarray, new_shape: tuple) -> np.ndarray:
        if name.endswith("_momentum"):
            return _widened(name, old, new_shape, power=-1)
        if not name.endswith("_velocity"):
            raise WarmStartError(f"{what}: optimiser variable {name} cannot change shape")
        new = _widened(name, old, new_shape, power=-2)
        new[:, :, old.shape[2]:, :] = new[:, :, :old.shape[2], :].mean()
        return new

    _copy_variables(what, list(source.variables), list(target.variables), widen_slot)


def read_run(run_dir: str | Path) -> tuple[dict, ModelConfig, list[int]]:
    """(hparams, architecture, pitches) of a gansynth-train run that has checkpoints."""
    root = Path(run_dir)
    try:
        experiment = json.loads((root / "experiment.json").read_text())
        pitches = json.loads((root / "pitches.json").read_text())["pitches"]
    except (OSError, ValueError, KeyError) as e:
        raise WarmStartError(f"warm_start_from {run_dir}: not a gansynth-train run "
                             f"(experiment.json and pitches.json): {e}") from None
    if not training_run.checkpoint_prefixes(root / training_run.CHECKPOINT_DIR):
        raise WarmStartError(f"warm_start_from {run_dir}: no checkpoint in {root / 'checkpoints'}")
    return (experiment["hparams"], ModelConfig.from_dict(experiment["architecture"]), pitches)


def warm_start(gan, hparams: dict, config: ModelConfig, pitches: list[int],
               run_dir: str | Path) -> str:
    """Fill `gan` (training.trainer.GAN) from the newest intact checkpoint of the run in
    `run_dir`; returns that checkpoint's path."""
    from training.trainer import GAN  # here, not at the top: trainer.py imports this module

    old_hparams, old_config, old_pitches = read_run(run_dir)
    if old_pitches != list(pitches):
        raise WarmStartError(f"warm_start_from {run_dir}: its pitches {old_pitches[0]}.."
                             f"{old_pitches[-1]} ({len(old_pitches)}) differ from this run's "
                             f"{pitches[0]}..{pitches[-1]} ({len(pitches)})")
    differing = sorted(k for k, v in config.to_dict().items()
                       if k not in ("pitch_map", "pitch_map_if") and old_config.to_dict()[k] != v)
    if differing:
        raise WarmStartError(f"warm_start_from {run_dir}: its architecture differs in "
                             f"{differing}; only the pitch map may change")
    if bool(old_hparams.get("discriminator_pitch_head")) != bool(hparams["discriminator_pitch_head"]):
        raise WarmStartError(f"warm_start_from {run_dir}: discriminator_pitch_head must match")
    source = GAN(hparams, old_config, list(pitches))
    checkpoint, damaged = training_run.restore_newest(
        Path(run_dir) / training_run.CHECKPOINT_DIR,
        lambda prefix: tf.train.Checkpoint(gan=source).restore(prefix)
        .assert_existing_objects_matched())
    if checkpoint is None:
        raise WarmStartError(f"warm_start_from {run_dir}: no checkpoint restores ("
                             + "; ".join(f"{p.name}: {why}" for p, why in damaged) + ")")
    for what in ("generator", "discriminator", "ema_generator"):
        _copy_network(what, getattr(source, what), getattr(gan, what))
    _copy_optimizer("g_optimizer", source.g_optimizer, gan.g_optimizer)
    _copy_optimizer("d_optimizer", source.d_optimizer, gan.d_optimizer)
    if gan.pitch_head is not None:
        _copy_variables("pitch_head", source.pitch_head.trainable_variables,
                        gan.pitch_head.trainable_variables, _refuse_widening)
        _copy_optimizer("head_optimizer", source.head_optimizer, gan.head_optimizer)
    gan.images_seen.assign(source.images_seen)
    return os.fspath(checkpoint)


def _refuse_widening(name: str, old: np.ndarray, new_shape: tuple) -> np.ndarray:
    raise WarmStartError(f"variable {name}: shape {old.shape} cannot become {new_shape}")
