"""The project's model directory: save atomically, load with every part checked.

Layout (format version 1):

    my_model/
      config.json      {"format": "gansynth-live-model", "format_version": 1, "name": ...,
                        "architecture": {ModelConfig fields}, "pitches": [...],
                        "pitch_counts": {"60": 12, ...}, "provenance": {...}}
      generator.npz    generator EMA weights keyed by Magenta TF1 variable names
      meta.json        (optional) the dataset's meta.json, kept for reference
      ganspace.npz     (optional) GANSpace timbre directions (`gansynth_live.ganspace`)

`load_model` also accepts a gansynth-train run directory (`gansynth_live.training_run`),
a Magenta GANSynth training directory (`gansynth_live.magenta_checkpoint`) and, with
no path, the embedded default model. Any of them may hold a ganspace.npz.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gansynth_live import ganspace
from gansynth_live.config import MAX_PITCHES, ModelConfig
from gansynth_live.model import Model
from gansynth_live.networks import Generator
from gansynth_live.pitch_map import profiles_for
from gansynth_live.user_files import file_problem, npz_array_bytes

FORMAT = "gansynth-live-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.npz"
META_FILE = "meta.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
MAX_CONFIG_BYTES = 2**20  # a config with 128 pitches and their counts takes some 10 kB


class ModelLoadError(ValueError):
    """A model directory is missing, unreadable or does not match its config."""

    def __init__(self, path: os.PathLike | str, reason: str):
        super().__init__(f"cannot load model {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def save_model(model: Model, path: os.PathLike | str, *, meta_path: str | None = None,
               provenance: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write `model` as a model directory at `path`, atomically.

    Everything goes into a temporary sibling directory that is renamed into place,
    so a crash never leaves a half-written model at `path`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": model.name,
            "architecture": model.config.to_dict(),
            "pitches": list(model.pitches),
            "pitch_counts": {str(p): int(c) for p, c in sorted(model.pitch_counts.items())},
            "provenance": provenance or {},
        }
        if model.progress is not None:
            config["progress"] = model.progress
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        weights = {name: v.numpy() for name, v in model.generator.named_variables().items()}
        np.savez(tmp / WEIGHTS_FILE, **weights)
        if meta_path:
            shutil.copyfile(meta_path, tmp / META_FILE)
        if model.ganspace is not None:
            ganspace.save(model.ganspace, tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise ModelLoadError(path, f"{CONFIG_FILE} is missing")
    problem = file_problem(config_path, MAX_CONFIG_BYTES)
    if problem:
        raise ModelLoadError(path, problem)
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelLoadError(path, f"{CONFIG_FILE} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelLoadError(path, f"{CONFIG_FILE} is not a {FORMAT} config "
                                   f"(its 'format' must be {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(path, f"{CONFIG_FILE} has format_version "
                                   f"{config.get('format_version')!r}; this version reads "
                                   f"{FORMAT_VERSION}")
    for key in ("architecture", "pitches"):
        if key not in config:
            raise ModelLoadError(path, f"{CONFIG_FILE} has no {key!r}")
    pitches, counts = config["pitches"], config.get("pitch_counts", {})
    # Checked before a generator is built: its conditioning grows with the pitch count.
    if not isinstance(pitches, list) or not 0 < len(pitches) <= MAX_PITCHES:
        raise ModelLoadError(path, f"{CONFIG_FILE}: 'pitches' must be a list of 1 to "
                                   f"{MAX_PITCHES} MIDI notes")
    if not isinstance(counts, dict):
        raise ModelLoadError(path, f"{CONFIG_FILE}: 'pitch_counts' must be an object "
                                   f"(pitch -> number of notes)")
    return config


def _read_weights(path: Path, generator: Generator) -> dict[str, np.ndarray]:
    """generator.npz's arrays; refused unread if they would take more memory than twice
    `generator`'s weights (float64 copies are accepted)."""
    weights_path = path / WEIGHTS_FILE
    if not weights_path.exists():
        raise ModelLoadError(path, f"{WEIGHTS_FILE} is missing")
    problem = file_problem(weights_path)
    if problem:
        raise ModelLoadError(path, problem)
    needed = 8 * sum(int(np.prod(v.shape)) for v in generator.variables)
    try:
        size = npz_array_bytes(weights_path)
        if size > needed:
            raise ModelLoadError(path, f"{WEIGHTS_FILE} holds {size:,} bytes of arrays; the "
                                       f"architecture's weights take at most {needed:,}")
        with np.load(weights_path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ModelLoadError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as e:
        raise ModelLoadError(path, f"{WEIGHTS_FILE} is unreadable or corrupt: {e}") from None


def assign_weights(generator: Generator, weights: dict[str, np.ndarray],
                   source: os.PathLike | str, what: str) -> None:
    """Copy `weights` into `generator`, naming every missing, unexpected or misshaped one."""
    variables = generator.named_variables()
    missing = sorted(set(variables) - set(weights))
    unexpected = sorted(set(weights) - set(variables))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise ModelLoadError(source, f"{what} does not match the architecture: "
                                     + "; ".join(parts))
    for name, variable in variables.items():
        value = weights[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ModelLoadError(source, f"{what}: {name} has shape {tuple(value.shape)}, "
                                         f"the config needs {tuple(variable.shape)}")
        if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
            raise ModelLoadError(source, f"{what}: {name} holds non-finite or non-float values")
        variable.assign(value.astype(np.float32))


def load_model_dir(path: os.PathLike | str, **model_options: Any) -> Model:
    """Load a project model directory written by `save_model`."""
    path = Path(path)
    config = _read_config(path)
    try:
        architecture = ModelConfig.from_dict(config["architecture"])
        pitches = [int(p) for p in config["pitches"]]
        counts = {int(p): int(c) for p, c in config.get("pitch_counts", {}).items()}
        generator = Generator(architecture, len(pitches),
                              pitch_profiles=profiles_for(architecture, pitches))
        model = Model(architecture, pitches, generator=generator,
                      name=config.get("name") or path.name, pitch_counts=counts or None,
                      progress=config.get("progress"), **model_options)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(path, f"{CONFIG_FILE}: {e}") from None
    assign_weights(model.generator, _read_weights(path, model.generator), path, WEIGHTS_FILE)
    return model


def attach_ganspace(model: Model, path: Path) -> None:
    """Attach path/ganspace.npz to `model` when there is one, checked against it."""
    file = path / ganspace.FILE
    if not file.exists():
        return
    problem = file_problem(file)
    if problem:
        raise ModelLoadError(path, problem)
    # Refused unread when its arrays outgrow what any layer GANSpace takes could need:
    # MAX_COMPONENTS directions and one mean per pitch (+ 4 short arrays), in float64.
    layer = max((size for name in model.generator.layer_names()
                 if (size := int(np.prod(model.generator.layer_shape(name))))
                 <= ganspace.MAX_LAYER_VALUES), default=0)
    most = 8 * (ganspace.MAX_COMPONENTS + len(model.pitches) + 4) * layer + 2**16
    try:
        size = npz_array_bytes(file)
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelLoadError(path, f"{ganspace.FILE}: unreadable or corrupt: {e}") from None
    if size > most:
        raise ModelLoadError(path, f"{ganspace.FILE}: its arrays would take {size:,} bytes; "
                                   f"at most {most:,}")
    try:
        model.set_ganspace(ganspace.load(file))
    except ValueError as e:
        raise ModelLoadError(path, f"{ganspace.FILE}: {e}") from None


def load_model(path: os.PathLike | str | None = None, *, with_ganspace: bool = True,
               **model_options: Any) -> Model:
    """Load a model: a project model directory, a gansynth-train run directory (the newest
    intact checkpoint), a Magenta GANSynth training directory, or (no path) the embedded
    default model; with its GANSpace directions (ganspace.npz) unless `with_ganspace`
    is False (model.ganspace is None without them).

    Raises `ModelLoadError` naming the path and what is wrong.
    """
    from gansynth_live import magenta_checkpoint  # imports TF1 checkpoint reading only here
    from gansynth_live import training_run

    if path is None:
        if not (DEFAULT_MODEL_DIR / CONFIG_FILE).exists():
            raise ModelLoadError(DEFAULT_MODEL_DIR,
                                 "the embedded default model has not been built into this "
                                 "package yet; pass the path of a model directory")
        path = DEFAULT_MODEL_DIR
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "no such file or directory")
    if not path.is_dir():
        raise ModelLoadError(path, "not a directory")
    if (path / CONFIG_FILE).exists() or (path / WEIGHTS_FILE).exists():
        model = load_model_dir(path, **model_options)
    elif training_run.is_training_run(path):
        model = training_run.load_training_run(path, **model_options)
    elif magenta_checkpoint.is_magenta_dir(path):
        model = magenta_checkpoint.load_magenta_dir(path, **model_options)
    else:
        raise ModelLoadError(path, f"not a gansynth-live model directory ({CONFIG_FILE} + "
                                   f"{WEIGHTS_FILE}), a gansynth-train run (experiment.json "
                                   f"+ checkpoints/) or a Magenta GANSynth training "
                                   f"directory (experiment.json + stage_NNNNN/model.ckpt-N)")
    if with_ganspace:
        attach_ganspace(model, path)
    return model
