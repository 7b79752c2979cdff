"""A gansynth-train run directory: its layout, its intact checkpoints, and its generator.

    mymodel/
      experiment.json   {"hparams": {...}, "architecture": {...}}
      pitches.json      {"pitches": [...], "pitch_counts": {"60": 12, ...}}
      checkpoints/      ckpt-<images>.index + ckpt-<images>.data-*; `checkpoint` names
                        the newest; damaged/ holds checkpoints that failed to restore
      summaries/        TensorBoard event files

Checkpoints are found from their own files, newest (largest image count) first: the
`checkpoint` index file is only a hint and may be missing or stale. A checkpoint is
intact when it restores. TensorFlow checks the index file's block checksums and each
tensor's CRC32C as it reads, so a truncated, missing or bit-flipped file fails to
restore instead of restoring garbage, and the next older checkpoint is used.

`load_training_run` plays such a directory as it is (the exponential moving average of
the generator, at the progressive-growing position it has reached), so a run can be
heard while it trains; `training/postprocess_model.py` makes it a small model directory.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gansynth_live.config import ModelConfig
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.schedule import Schedule
from gansynth_live.user_files import file_problem

log = logging.getLogger(__name__)

EXPERIMENT_FILE = "experiment.json"
VOCABULARY_FILE = "pitches.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "summaries"
DAMAGED_DIR = "damaged"
CHECKPOINT_NAME = "ckpt"  # files ckpt-<images>.index, ckpt-<images>.data-00000-of-00001
_CHECKPOINT_FILE = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)\.(?:index|data-\d+-of-\d+)$")


def is_training_run(path: Path) -> bool:
    """True for a gansynth-train run directory (experiment.json and checkpoints/)."""
    return (path / EXPERIMENT_FILE).is_file() and (path / CHECKPOINT_DIR).is_dir()


def checkpoint_prefixes(folder: Path) -> list[Path]:
    """Every checkpoint with at least one file in `folder`, newest (largest number) first.

    Incomplete ones are listed too: restoring them fails with a reason that names the
    missing file, which is what a user needs to read.
    """
    if not folder.is_dir():
        return []
    numbers = {int(m.group(1)) for name in os.listdir(folder)
               if (m := _CHECKPOINT_FILE.match(name))}
    return [folder / f"{CHECKPOINT_NAME}-{n}" for n in sorted(numbers, reverse=True)]


def checkpoint_files(prefix: Path) -> list[Path]:
    """The files of checkpoint `prefix` (its index and data shards)."""
    return sorted(f for f in prefix.parent.iterdir()
                  if f.name.startswith(prefix.name + ".") and _CHECKPOINT_FILE.match(f.name))


def why_unreadable(error: BaseException) -> str:
    """The first line of a restore error, without TensorFlow's function-node prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)


def restore_newest(folder: Path, restore: Callable[[str], Any]
                   ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """Call `restore(prefix)` on the newest checkpoint in `folder` that restores.

    Returns that prefix (None if there is none) and the newer ones that failed, each
    with the reason. A failed restore may have assigned some variables; the next
    restore assigns them all again.
    """
    tf = import_tensorflow()

    damaged = []
    for prefix in checkpoint_prefixes(folder):
        problems = [p for f in checkpoint_files(prefix) if (p := file_problem(f))]
        if problems:  # never opened: TensorFlow would block on a FIFO
            damaged.append((prefix, "; ".join(problems)))
            continue
        try:
            restore(os.fspath(prefix))
        # A truncated .data raises IndexError from TensorFlow's reader; checksums,
        # missing files and unreadable indexes raise OpError subclasses.
        except (tf.errors.OpError, IndexError, ValueError, OSError) as e:
            damaged.append((prefix, why_unreadable(e)))
            continue
        return prefix, damaged
    return None, damaged


def set_aside(prefix: Path, into: str = DAMAGED_DIR) -> Path:
    """Move checkpoint `prefix`'s files into the subfolder `into`; returns that folder."""
    target = prefix.parent / into
    target.mkdir(exist_ok=True)
    for path in checkpoint_files(prefix):
        os.replace(path, target / path.name)
    return target


def write_checkpoint_index(folder: Path, prefixes: list[Path]) -> None:
    """Rewrite `checkpoint` (TensorFlow's index file) to name `prefixes`, oldest first.

    Relative names, so the run directory can move. Each gets its index file's time:
    TensorFlow's CheckpointManager never deletes a checkpoint listed without one.
    """
    lines = [f'model_checkpoint_path: "{prefixes[-1].name}"']
    lines += [f'all_model_checkpoint_paths: "{p.name}"' for p in prefixes]
    lines += [f"all_model_checkpoint_timestamps: {_saved_at(p)}" for p in prefixes]
    tmp = folder / ".checkpoint.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, folder / "checkpoint")


def _saved_at(prefix: Path) -> float:
    index = prefix.with_name(prefix.name + ".index")
    return index.stat().st_mtime if index.exists() else 0.0


def read_json(path: Path) -> dict[str, Any]:
    from gansynth_live.model_dir import MAX_CONFIG_BYTES, ModelLoadError

    if not path.exists():
        raise ModelLoadError(path.parent, f"{path.name} is missing")
    problem = file_problem(path, MAX_CONFIG_BYTES)
    if problem:
        raise ModelLoadError(path.parent, problem)
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelLoadError(path.parent, f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ModelLoadError(path.parent, f"{path.name} is not a JSON object")
    return value


@dataclass
class RunSnapshot:
    """The generator of one checkpoint of a run, and where it came from."""
    model: Any  # gansynth_live.Model
    checkpoint: Path
    images: int
    skipped: list[tuple[Path, str]]  # newer checkpoints that did not restore, and why


def read_training_run(path: os.PathLike | str, **model_options: Any) -> RunSnapshot:
    """The EMA generator of the newest intact checkpoint of run `path`, as a Model.

    Raises ModelLoadError naming the file and what is wrong.
    """
    tf = import_tensorflow()

    from gansynth_live.model import Model
    from gansynth_live.model_dir import ModelLoadError
    from gansynth_live.networks import Generator
    from gansynth_live.pitch_map import profiles_for

    path = Path(path)
    experiment = read_json(path / EXPERIMENT_FILE)
    vocabulary = read_json(path / VOCABULARY_FILE)
    try:
        config = ModelConfig.from_dict(experiment["architecture"])
        hparams = experiment["hparams"]
        pitches = [int(p) for p in vocabulary["pitches"]]
        counts = {int(p): int(n) for p, n in vocabulary.get("pitch_counts", {}).items()}
        schedule = Schedule.from_hparams(hparams, config.num_resolutions)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(path, f"{EXPERIMENT_FILE} or {VOCABULARY_FILE}: {e!r}") from None

    # Only the parts of the training checkpoint a player needs: the same attribute names
    # as training/trainer.py's GAN, so the object-based checkpoint matches them.
    run = tf.Module()
    run.ema_generator = Generator(config, len(pitches),
                                  pitch_profiles=profiles_for(config, pitches))
    run.images_seen = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(gan=run)

    def restore(prefix: str) -> None:
        checkpoint.read(prefix).expect_partial().assert_existing_objects_matched()

    try:
        prefix, skipped = restore_newest(path / CHECKPOINT_DIR, restore)
    except AssertionError as e:  # it restored but lacks our variables: another architecture
        raise ModelLoadError(path, f"the checkpoints do not match {EXPERIMENT_FILE}: "
                                   f"{why_unreadable(e)}") from None
    if prefix is None:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in skipped)
        raise ModelLoadError(path, f"no checkpoint restores in {CHECKPOINT_DIR}/"
                                   + (f" ({reasons})" if reasons else " (there is none yet)"))
    for bad, why in skipped:
        log.warning("%s: checkpoint %s does not restore (%s); using %s", path, bad.name, why,
                    prefix.name)
    images = int(run.images_seen.numpy())
    progress = schedule.progress(images, schedule.num_blocks(schedule.stage_of(images)))
    try:
        model = Model(config, pitches, generator=run.ema_generator,
                      name=f"{path.name} ({images} images)", pitch_counts=counts or None,
                      progress=None if progress >= config.num_resolutions - 1 else progress,
                      **model_options)
    except ValueError as e:
        raise ModelLoadError(path, f"{VOCABULARY_FILE}: {e}") from None
    return RunSnapshot(model, prefix, images, skipped)


def load_training_run(path: os.PathLike | str, **model_options: Any):
    """`read_training_run(...).model`: what `gansynth_live.load_model` returns for a run."""
    return read_training_run(path, **model_options).model


def start_over(folder: Path) -> Path | None:
    """Move every checkpoint in `folder` into a fresh `replaced-N` subfolder (nothing deleted)."""
    prefixes = checkpoint_prefixes(folder)
    if not prefixes:
        return None
    n = 1
    while (folder / f"replaced-{n}").exists():
        n += 1
    for prefix in prefixes:
        set_aside(prefix, f"replaced-{n}")
    index = folder / "checkpoint"
    if index.exists():
        shutil.move(index, folder / f"replaced-{n}" / "checkpoint")
    return folder / f"replaced-{n}"
