"""gansynth-live: GANSynth as a playable instrument.

    import gansynth_live as gl
    model = gl.load_model(path)        # project model dir or Magenta GANSynth training dir
    audio = model.generate(z, pitches)  # (B, samples, channels) float32 in [-1, 1]
"""
import os

# TensorFlow's C++ start-up chatter would bury our one-line errors; set the variable
# yourself (e.g. TF_CPP_MIN_LOG_LEVEL=0) to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gansynth_live.config import PRESETS, ModelConfig, preset
from gansynth_live.model import Model
from gansynth_live.model_dir import ModelLoadError, load_model, save_model

__all__ = ["Model", "ModelConfig", "ModelLoadError", "PRESETS", "load_model", "preset",
           "save_model"]
__version__ = "0.1.0"
