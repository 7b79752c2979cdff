"""A loaded GANSynth model: latent vectors and pitches in, spectrograms or audio out.

`Model` wraps the generator (with its final EMA weights), the pitch vocabulary and
the spectral converter. Generation runs as one compiled TensorFlow graph per output
kind, on the GPU when TensorFlow sees one, in chunks of at most `max_batch` notes.
With GANSpace directions attached (`model.ganspace`, see ganspace.py), notes can also
be generated from timbre coefficients, alone or as edits of latents.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from gansynth_live.config import ModelConfig
from gansynth_live.ganspace import GanSpace
from gansynth_live.networks import Generator
from gansynth_live.pitch_map import profiles_for
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.spectral import SpecgramConverter

tf = import_tensorflow()


class Model:
    """A generator ready to play.

    Attributes:
        config: the architecture (`ModelConfig`).
        pitches: the pitch vocabulary (sorted MIDI note numbers); the one-hot index of
            a pitch is its position here.
        name: a human-readable name (the model directory's name by default).
        progress: the progressive-growing position the generator is run at; None (the
            usual case) means fully grown. A snapshot of a run still growing keeps the
            progress it was trained to, as Magenta does when it samples mid-training.
    """

    def __init__(self, config: ModelConfig, pitches: Sequence[int], *,
                 generator: Generator | None = None, name: str = "untrained",
                 pitch_counts: dict[int, int] | None = None, max_batch: int = 16,
                 jit_compile: bool = False, progress: float | None = None):
        pitches = tuple(int(p) for p in pitches)
        if not pitches or list(pitches) != sorted(set(pitches)):
            raise ValueError(f"pitches must be a non-empty sorted list of distinct MIDI notes, "
                             f"got {list(pitches)}")
        if pitches[0] < 0 or pitches[-1] > 127:
            raise ValueError(f"pitches must be MIDI notes 0..127, got {pitches[0]}..{pitches[-1]}")
        if progress is not None:
            progress = float(progress)
            if not 0.0 <= progress <= config.num_resolutions - 1:  # also rejects NaN
                raise ValueError(f"progress must be in 0..{config.num_resolutions - 1}, "
                                 f"got {progress}")
        self.config = config
        self.progress = progress
        self.pitches = pitches
        self.name = name
        self.pitch_counts = dict(pitch_counts) if pitch_counts else {p: 1 for p in pitches}
        self.max_batch = max_batch
        self.generator = generator or Generator(
            config, len(pitches), pitch_profiles=profiles_for(config, pitches))
        if self.generator.num_pitches != len(pitches):
            raise ValueError(f"generator conditions on {self.generator.num_pitches} pitches, "
                             f"the vocabulary has {len(pitches)}")
        self.converter = SpecgramConverter(sample_rate=config.sample_rate,
                                           audio_length=config.audio_length,
                                           spec_shape=config.spec_shape,
                                           channels=config.channels)
        self._label_of = {p: i for i, p in enumerate(pitches)}
        signature = [tf.TensorSpec([None, config.latent_size], tf.float32),
                     tf.TensorSpec([None], tf.int32)]
        self._specgram_fn = tf.function(self._specgrams_graph, input_signature=signature,
                                        jit_compile=jit_compile)
        self._audio_fn = tf.function(self._audio_graph, input_signature=signature,
                                     jit_compile=jit_compile)
        self._jit_compile = jit_compile
        self._layer_fns: dict[str, tf.types.experimental.GenericFunction] = {}
        self.set_ganspace(None)

    # Properties of the contract -----------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def num_samples(self) -> int:
        return self.config.audio_length

    # Input checking ---------------------------------------------------------------------

    def labels(self, pitches: Iterable[int]) -> np.ndarray:
        """One-hot indices of `pitches`; ValueError naming the allowed pitches otherwise."""
        out = []
        for p in np.asarray(list(pitches)).reshape(-1):
            whole = np.isfinite(p) and float(p) == int(p)  # 60.0 from Pd is fine, 60.5 is not
            label = self._label_of.get(int(p)) if whole else None
            if label is None:
                raise ValueError(f"pitch {p} is not in the model's vocabulary: "
                                 f"{self.pitches[0]}..{self.pitches[-1]} "
                                 f"({len(self.pitches)} pitches: {list(self.pitches)})")
            out.append(label)
        return np.asarray(out, np.int32)

    def _check_inputs(self, z, pitches) -> tuple[np.ndarray, np.ndarray]:
        if z is None:
            raise ValueError("z is None: give latent vectors, or ganspace coefficients")
        z = np.asarray(z, np.float32)
        if z.ndim == 1:
            z = z[np.newaxis]
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"z must have shape (batch, {self.latent_size}), got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("z contains NaN or infinite values")
        labels = self.labels(np.atleast_1d(pitches))
        if len(labels) == 1 and len(z) > 1:
            labels = np.repeat(labels, len(z))
        if len(labels) != len(z):
            raise ValueError(f"got {len(z)} latent vectors but {len(labels)} pitches")
        return z, labels

    def random_z(self, n: int, seed: int | None = None) -> np.ndarray:
        """`n` latent vectors drawn from N(0, 1), as Magenta samples them."""
        return np.random.default_rng(seed).standard_normal((n, self.latent_size)).astype(np.float32)

    # Generation ---------------------------------------------------------------------------

    def _specgrams_graph(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        images = self.generator(z, tf.one_hot(labels, len(self.pitches)), self.progress)
        return self.converter.denormalize(images)

    def _audio_graph(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        waves = self.converter.melspecgrams_to_waves(self._specgrams_graph(z, labels))
        return tf.clip_by_value(waves, -1.0, 1.0)

    def _run_chunked(self, fn, *inputs: np.ndarray) -> np.ndarray:
        chunks = [fn(*(x[i:i + self.max_batch] for x in inputs)).numpy()
                  for i in range(0, len(inputs[0]), self.max_batch)]
        return np.concatenate(chunks, axis=0)

    def generate_specgrams(self, z, pitches, ganspace=None) -> np.ndarray:
        """Denormalised mel-IF spectrograms (B, T, F, 2 * channels), as Magenta's generator output.

        `z` is (B, latent_size) (or one vector); `pitches` is B MIDI notes (or one for all).
        `ganspace`: timbre coefficients, see `generate`.
        """
        if ganspace is not None:
            inputs = self._check_ganspace_inputs(z, pitches, ganspace)
            return self._run_chunked(self._ganspace_fns["specgrams"], *inputs)
        z, labels = self._check_inputs(z, pitches)
        return self._run_chunked(self._specgram_fn, z, labels)

    def generate(self, z, pitches, ganspace=None) -> np.ndarray:
        """Audio (B, num_samples, channels), float32 in [-1, 1] at `sample_rate`.

        `ganspace`: coefficients, (k',) or (B, k') with k' <= model.ganspace.num_components
        (the directions after the k'th get 0), in standard deviations along each GANSpace
        direction. With `z` None the notes are pure coefficient points (the pitch's mean
        activation plus the coefficients' offset); with `z` they are edits of the latents
        (each latent's own activation plus the offset). See ganspace.py.
        """
        if ganspace is not None:
            inputs = self._check_ganspace_inputs(z, pitches, ganspace)
            return self._run_chunked(self._ganspace_fns["audio"], *inputs)
        z, labels = self._check_inputs(z, pitches)
        return self._run_chunked(self._audio_fn, z, labels)

    # GANSpace -----------------------------------------------------------------------------

    def layer_activations(self, z, pitches, layer: str) -> np.ndarray:
        """float32 (B, H * W * C): the flattened output of generator layer `layer`
        (`generator.layer_names()`) for these latents and pitches, in one call (an early
        layer is small: no `max_batch` chunks)."""
        z, labels = self._check_inputs(z, pitches)
        if layer not in self._layer_fns:
            self.generator.layer_position(layer)  # ValueError naming the layers

            def activations(z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
                one_hot = tf.one_hot(labels, len(self.pitches))
                x = self.generator.layer_output(z, one_hot, layer)
                return tf.reshape(x, [tf.shape(x)[0], -1])

            self._layer_fns[layer] = tf.function(activations, input_signature=[
                tf.TensorSpec([None, self.latent_size], tf.float32),
                tf.TensorSpec([None], tf.int32)], jit_compile=self._jit_compile)
        return self._layer_fns[layer](z, labels).numpy()

    def set_ganspace(self, ganspace: GanSpace | None) -> None:
        """Attach GANSpace directions (checked against this generator), or detach them."""
        if ganspace is not None:
            ganspace.check_against(self.generator, self.pitches)  # before anything changes
        self.ganspace = ganspace
        self._ganspace_fns = {}
        if ganspace is None:
            return
        means = tf.constant(ganspace.pitch_means)
        offsets = tf.constant(ganspace.scaled_components)
        shape = self.generator.layer_shape(ganspace.layer)

        def specgrams(z: tf.Tensor, labels: tf.Tensor, coefficients: tf.Tensor,
                      from_latent: tf.Tensor) -> tf.Tensor:
            # The edit is the one compiled graph: layer output, moved, and the rest.
            one_hot = tf.one_hot(labels, len(self.pitches))
            x = self.generator.layer_output(z, one_hot, ganspace.layer)
            origin = tf.where(from_latent[:, tf.newaxis], tf.reshape(x, [tf.shape(x)[0], -1]),
                              tf.gather(means, labels))
            x = tf.reshape(origin + tf.matmul(coefficients, offsets), [-1, *shape])
            images = self.generator.run(x, one_hot, self.progress, after=ganspace.layer)
            return self.converter.denormalize(images)

        def audio(*args: tf.Tensor) -> tf.Tensor:
            waves = self.converter.melspecgrams_to_waves(specgrams(*args))
            return tf.clip_by_value(waves, -1.0, 1.0)

        signature = [tf.TensorSpec([None, self.latent_size], tf.float32),
                     tf.TensorSpec([None], tf.int32),
                     tf.TensorSpec([None, ganspace.num_components], tf.float32),
                     tf.TensorSpec([None], tf.bool)]
        self._ganspace_fns = {name: tf.function(fn, input_signature=signature,
                                                jit_compile=self._jit_compile)
                              for name, fn in (("specgrams", specgrams), ("audio", audio))}

    def _check_ganspace_inputs(self, z, pitches, coefficients) -> tuple[np.ndarray, ...]:
        """(z, labels, coefficients [B, k], from_latent [B]) for the GANSpace graphs."""
        if self.ganspace is None:
            raise ValueError(f"model {self.name} has no GANSpace directions; compute them "
                             f"with gansynth-ganspace --model DIR")
        if z is not None:
            z, labels = self._check_inputs(z, pitches)
            return z, labels, self.ganspace.coefficients(coefficients, len(z)), \
                np.ones(len(z), bool)
        labels = self.labels(np.atleast_1d(pitches))
        c = self.ganspace.coefficients(coefficients)
        if len(labels) == 1 and len(c) > 1:
            labels = np.repeat(labels, len(c))
        c = self.ganspace.coefficients(c, len(labels))
        # The latent is unused for pure coefficient points (the pitch mean replaces its
        # activation); zeros keep the graph's shapes.
        return (np.zeros((len(labels), self.latent_size), np.float32), labels, c,
                np.zeros(len(labels), bool))
