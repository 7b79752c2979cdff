"""gansynth-live: GANSynth as a playable instrument.

    import gansynth_live as gl
    model = gl.load_model(path)        # project model dir or Magenta GANSynth training dir
    audio = model.generate(z, pitches)  # (B, samples, channels) float32 in [-1, 1]
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# TensorFlow's C++ start-up chatter would bury our one-line errors; set the variable
# yourself (e.g. TF_CPP_MIN_LOG_LEVEL=0) to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gansynth_live.config import PRESETS, ModelConfig, preset  # noqa: E402 (plain Python)

# The model names import TensorFlow (seconds), so they are loaded on first use: importing
# any gansynth_live module (midi, envelope, the live server's audio side, a command's
# --help) stays fast and TensorFlow-free.
_LAZY = {"Model": "gansynth_live.model", "ModelLoadError": "gansynth_live.model_dir",
         "load_model": "gansynth_live.model_dir", "save_model": "gansynth_live.model_dir"}

if TYPE_CHECKING:
    from gansynth_live.model import Model
    from gansynth_live.model_dir import ModelLoadError, load_model, save_model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Model", "ModelConfig", "ModelLoadError", "PRESETS", "load_model", "preset",
           "save_model"]
__version__ = "0.1.0"
