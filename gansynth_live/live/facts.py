"""What the audio process knows of the model: its facts, never the model itself.

The model (and TensorFlow) lives only in the render process, which sends these facts in
its ready message (`renderer.ProcessRenderer.facts`). The engine, OSC, MIDI and the
mixer need no more than this to play the rendered notes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class ModelFacts:
    """name, sample rate (Hz), samples per rendered note, audio channels, latent size,
    the pitch vocabulary (sorted MIDI notes) and the number of GANSpace directions (0: the
    model has none, so no /timbre/pca) of a model."""
    name: str
    sample_rate: int
    num_samples: int
    channels: int
    latent_size: int
    pitches: tuple[int, ...]
    ganspace_components: int = 0

    @classmethod
    def of(cls, model) -> "ModelFacts":
        """The facts of a loaded `gansynth_live.Model` (in the process that runs it)."""
        space = getattr(model, "ganspace", None)
        return cls(str(model.name), int(model.sample_rate), int(model.num_samples),
                   int(model.channels), int(model.latent_size),
                   tuple(int(p) for p in model.pitches),
                   0 if space is None else int(space.num_components))

    @cached_property
    def pitch_set(self) -> frozenset[int]:
        return frozenset(self.pitches)

    @property
    def pitch_range(self) -> str:
        return f"{self.pitches[0]}..{self.pitches[-1]}"


__all__ = ["ModelFacts"]
