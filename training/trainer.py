"""The GAN and its training loop: what gansynth-train (training/train.py) runs.

Magenta's recipe: Wasserstein loss with gradient penalty (weight 10, target 1), drift
penalty 0.001 * D(real)^2, auxiliary pitch classifier (AC-GAN, weight 10 for G and D),
Adam (8e-4, beta1 0, beta2 0.99), one G step then one D step per iteration, an EMA copy
of the generator (decay 0.999) for sampling, and progressive growing counted in images.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

# oneDNN's CPU kernels: TensorFlow enables them by default only on CPUs with AVX512-VNNI
# or newer; on these 2-core AVX-512 machines they run a full-resolution mel_prog_1s
# training step about 2.7x faster than the default Eigen kernels (bench/train_speed.py),
# with the same losses to float32 rounding. They must be chosen before TensorFlow is
# imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps Eigen.
# Only when TensorFlow is not loaded yet: set later, the variable would not change this
# process but would reach its subprocesses, which would then compute differently.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402

from gansynth_live import training_run  # noqa: E402
from gansynth_live.config import ModelConfig  # noqa: E402
from gansynth_live.networks import (  # noqa: E402
    Discriminator, Generator, downscale, generator_alpha, upscale)
from gansynth_live.pitch_map import profiles_for  # noqa: E402
from gansynth_live.quiet_tensorflow import import_tensorflow  # noqa: E402
from gansynth_live.schedule import Schedule  # noqa: E402
from gansynth_live.spectral import SpecgramConverter  # noqa: E402
from gansynth_live.training_run import (  # noqa: E402
    CHECKPOINT_DIR, CHECKPOINT_NAME, EXPERIMENT_FILE, SUMMARY_DIR, VOCABULARY_FILE)
from training import dataset as data_lib  # noqa: E402
from training.hparams import HparamsError  # noqa: E402
from training.warm_start import warm_start  # noqa: E402

tf = import_tensorflow()

# Keys that fix where a run is in its schedule and what it learns; a resume must not change them.
RESUME_KEYS = ("total_num_images", "stable_stage_num_images", "transition_stage_num_images",
               "batch_size_schedule", "train_progressive", "train_min_pitch", "train_max_pitch",
               "discriminator_pitch_head")


class NoIntactCheckpoint(Exception):
    """A run has checkpoints but none restores: starting over must be asked for."""


# Pitch vocabulary ---------------------------------------------------------------------------

def pitch_counts(hparams: dict[str, Any]) -> dict[int, int]:
    """Notes per training pitch, from meta.json (SopiMlab) or the dataset's dataset.json."""
    lo, hi = hparams["train_min_pitch"], hparams["train_max_pitch"]
    counts: dict[int, int] = {}
    if hparams["train_meta_path"]:
        with open(hparams["train_meta_path"]) as f:
            meta = json.load(f)
        sources = set(hparams["train_instrument_sources"])
        for note in meta.values():
            if note.get("instrument_source", 0) in sources and lo <= note["pitch"] <= hi:
                counts[note["pitch"]] = counts.get(note["pitch"], 0) + 1
    else:
        path = Path(hparams["train_data_path"])
        info_path = (path if path.is_dir() else path.parent) / data_lib.INFO_FILE
        if info_path.exists():
            info = json.loads(info_path.read_text())
            counts = {int(p): int(n) for p, n in info["notes_per_pitch"].items() if lo <= int(p) <= hi}
        elif path.is_dir():  # a plain folder of note WAVs
            # Counted from the file names: the audio format depends on the architecture
            # (length, rate, channels) and load_wav_folder checks every file against it.
            for name in os.listdir(path):
                parsed = (data_lib.parse_note_name(name)
                          if data_lib.skip_reason(os.fspath(path / name), name) is None else None)
                if parsed is not None and lo <= parsed[1] <= hi:
                    counts[parsed[1]] = counts.get(parsed[1], 0) + 1
    if not counts:
        raise HparamsError(f"no training notes with pitch in {lo}..{hi} (from "
                           f"{hparams['train_meta_path'] or hparams['train_data_path']})")
    return dict(sorted(counts.items()))


def pitch_sampling_weights(hparams: dict[str, Any], counts: dict[int, int]) -> np.ndarray:
    """float32 [vocabulary]: each pitch's train_pitch_weights weight (1 when not named)."""
    weights = {int(p): w for p, w in hparams["train_pitch_weights"].items()}
    unknown = sorted(set(weights) - set(counts))
    if unknown:
        raise HparamsError(f"hparam train_pitch_weights names pitches {unknown} that have no "
                           f"training notes (the vocabulary is {sorted(counts)})")
    return np.array([weights.get(p, 1.0) for p in sorted(counts)], np.float32)


# Data ---------------------------------------------------------------------------------------

def audio_dataset(hparams: dict[str, Any], config: ModelConfig) -> tf.data.Dataset:
    """(audio [length, channels], pitch) from a dataset dir, a .tfrecord, or a WAV folder."""
    path = hparams["train_data_path"]
    lo, hi = hparams["train_min_pitch"], hparams["train_max_pitch"]
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, data_lib.INFO_FILE)) \
            and not any(n.endswith(".tfrecord") for n in os.listdir(path)):
        return data_lib.load_wav_folder(path, config.sample_rate, config.audio_length,
                                        config.channels, (lo, hi))
    return data_lib.read_dataset(path, length=config.audio_length, channels=config.channels)


def image_dataset(hparams, config: ModelConfig, converter: SpecgramConverter,
                  counts: dict[int, int], batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of (normalised mel-IF image, pitch label), shuffled, repeated forever.

    With train_pitch_weights, each example is kept with probability weight / largest
    weight, so a pitch weighted 3 is drawn 3 times as often as its share of the notes.
    """
    pitches = sorted(counts)
    table = np.full(128, -1, np.int32)
    table[pitches] = np.arange(len(pitches))
    table = tf.constant(table)

    def to_image(audio, pitch):
        image = converter.normalize(converter.waves_to_melspecgrams(audio[tf.newaxis]))[0]
        return image, tf.gather(table, pitch)

    ds = audio_dataset(hparams, config)
    ds = ds.filter(lambda audio, pitch: (pitch >= 0) & (pitch < 128))
    ds = ds.map(to_image, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda image, label: label >= 0)
    # Spectrograms are computed once; small datasets (the usual case here) stay in memory.
    image_bytes = 4 * config.spec_shape[0] * config.spec_shape[1] * config.image_channels
    if image_bytes * sum(counts.values()) < 4 << 30:
        ds = ds.cache()
    # Under MultiWorkerMirroredStrategy the default FILE sharding fails on a dataset of one
    # data.tfrecord; every worker shuffles with the same seed and keeps its share of batches.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.shuffle(4096, seed=seed).repeat()
    weights = pitch_sampling_weights(hparams, counts)
    if np.any(weights != weights.max()):
        keep = tf.constant(weights / weights.max())
        coins = tf.data.Dataset.random(seed=seed).map(
            lambda r: tf.cast(r % (1 << 24), tf.float32) / (1 << 24))
        ds = (tf.data.Dataset.zip((ds, coins))
              .filter(lambda example, coin: coin < tf.gather(keep, example[1]))
              .map(lambda example, coin: example))
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(options)


def blend_resolutions(images: tf.Tensor, progress, num_blocks: int, num_resolutions: int):
    """Real images as the generator sees them at `progress` (Magenta's blend_images).

    With a Python-number progress, resolutions of weight 0 are skipped.
    """
    out = 0.0
    for block_id in range(1, num_blocks + 1):
        alpha = generator_alpha(block_id, progress)
        if isinstance(alpha, float) and alpha == 0.0:
            continue
        factor = 2 ** (num_resolutions - block_id)
        out += alpha * upscale(downscale(images, factor), factor)
    return out


# The GAN ------------------------------------------------------------------------------------

def ema_lag_warning(decay: float, schedule: Schedule, images: int) -> str | None:
    """A warning when the generator's moving average outlasts the stages still ahead.

    The exported generator is the moving average, whose memory is 1 / (1 - decay)
    steps. A stage much shorter than that exports a generator still made mostly of
    the previous stages' weights: measured on the default model's run at 55,000
    images (decay 0.999, 312-step stages), the raw generator's notes were at the right
    pitch for 39 % and the average's for 1 %. Once the last stage has begun there is
    nothing left to lag behind, and a long memory only smooths the training's noise.
    """
    if not schedule.progressive or schedule.stage_of(images) == schedule.num_stages - 1:
        return None
    memory_images = schedule.batch_size(0) / (1.0 - decay)
    shortest = min(schedule.stable_images, schedule.transition_images)
    if memory_images <= shortest / 3:
        return None
    return (f"warning: generator_ema_decay {decay} remembers about "
            f"{memory_images:.0f} images, more than a third of a {shortest}-image stage; the "
            f"exported (averaged) generator will lag the trained one. Use a decay of at most "
            f"{1 - 3 * schedule.batch_size(0) / shortest:.4f} or longer stages, or raise it "
            f"once the last stage has begun.")


class PitchHead(tf.Module):
    """Extra D pitch logits from the time-averaged normalised magnitude (see hparams.py)."""

    def __init__(self, config: ModelConfig, num_pitches: int):
        super().__init__(name="pitch_head")
        features = config.spec_shape[1] * config.channels
        self.kernel = tf.Variable(tf.zeros([features, num_pitches]), name="kernel")
        self.bias = tf.Variable(tf.zeros([num_pitches]), name="bias")

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        magnitude = tf.reduce_mean(images[..., 0::2], axis=1)  # [B, F, channels]
        return tf.matmul(tf.reshape(magnitude, [tf.shape(images)[0], -1]), self.kernel) + self.bias


class GAN(tf.Module):
    """Everything a checkpoint holds: networks, EMA generator, optimisers, image count."""

    def __init__(self, hparams: dict[str, Any], config: ModelConfig, pitches: list[int]):
        super().__init__(name="gan")
        seed, num_pitches = hparams["seed"], len(pitches)
        profiles = profiles_for(config, pitches)
        self.generator = Generator(config, num_pitches, seed=seed, pitch_profiles=profiles)
        self.discriminator = Discriminator(config, num_pitches, seed=seed + 1,
                                           pitch_profiles=profiles)
        self.ema_generator = Generator(config, num_pitches, seed=seed, pitch_profiles=profiles)
        self.conditional = profiles is not None
        self.pitch_head = PitchHead(config, num_pitches) if hparams["discriminator_pitch_head"] else None
        adam = dict(beta_1=hparams["adam_beta1"], beta_2=hparams["adam_beta2"], epsilon=1e-8)
        self.g_optimizer = tf.keras.optimizers.Adam(hparams["generator_learning_rate"], **adam)
        self.d_optimizer = tf.keras.optimizers.Adam(hparams["discriminator_learning_rate"], **adam)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        if self.pitch_head:
            self.head_optimizer = tf.keras.optimizers.Adam(5e-3)
            self.head_optimizer.build(self.pitch_head.trainable_variables)
        self.images_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")

    def classify(self, images, one_hot, progress, num_blocks):
        """D's (logits, class logits); `one_hot`, the pitch asked for, reaches a pitch-map D."""
        logits, class_logits = self.discriminator(
            images, progress, num_blocks, training=True,
            one_hot=one_hot if self.conditional else None)
        if self.pitch_head is not None:
            class_logits += self.pitch_head(images)
        return logits, class_logits


class Trainer:
    def __init__(self, hparams: dict[str, Any], config: ModelConfig, counts: dict[int, int],
                 strategy: tf.distribute.Strategy, log=print,
                 stop_requested: Callable[[], str | None] = lambda: None):
        """`stop_requested()` returns why to stop (e.g. "SIGINT") or None; it is asked
        after every step, and a stop saves a checkpoint first."""
        self.hparams, self.config, self.strategy, self.log = hparams, config, strategy, log
        self.stop_requested = stop_requested
        self.counts = counts
        self.pitches = sorted(counts)
        # Generated batches draw pitches as the real ones do: by note count times weight.
        self.label_logits = tf.math.log(tf.constant(
            [counts[p] for p in self.pitches] * pitch_sampling_weights(hparams, counts), tf.float32))
        self.schedule = Schedule.from_hparams(hparams, config.num_resolutions)
        self.converter = SpecgramConverter(config.sample_rate, config.audio_length,
                                           config.spec_shape, config.channels)
        self.root = Path(hparams["train_root_dir"])
        with strategy.scope():
            self.gan = GAN(hparams, config, self.pitches)
        self.checkpoint = tf.train.Checkpoint(gan=self.gan)
        # Under MultiWorkerMirroredStrategy every worker takes part in a save, but only the
        # chief's lands in checkpoints/: the others write to a scratch folder and delete it.
        resolver = strategy.cluster_resolver
        task_type, task_id = (resolver.task_type, resolver.task_id) if resolver else (None, None)
        self.is_chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
        self.multi_worker = task_type is not None
        self.checkpoint_dir = self.root / CHECKPOINT_DIR
        self.write_dir = (self.checkpoint_dir if self.is_chief
                          else self.root / f".checkpoints-{task_type}-{task_id}")
        self.manager: tf.train.CheckpointManager | None = None  # made once restored
        self.writer = (tf.summary.create_file_writer(os.fspath(self.root / SUMMARY_DIR))
                       if self.is_chief else tf.summary.create_noop_writer())

    # One iteration ------------------------------------------------------------------------

    def _sample_labels(self, n):
        return tf.random.categorical(self.label_logits[tf.newaxis], n, dtype=tf.int32)[0]

    def _ac_loss(self, class_logits, labels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=class_logits)

    def _stage_variables(self, num_blocks: int) -> set:
        """Refs of the G and D variables a `num_blocks` stage uses at some progress."""
        g, d = self.gan.generator, self.gan.discriminator
        modules = [*g.to_rgb[:num_blocks], *d.from_rgb[:num_blocks], d.logits, d.classifier]
        modules += [layer for blocks in (g.blocks, d.blocks) for block in blocks[:num_blocks]
                    for layer in block]
        return {v.ref() for m in modules for v in m.trainable_variables}

    def make_step(self, num_blocks: int, batch_size: int, progress: float | None = None):
        """A compiled training iteration for a stage with `num_blocks` blocks.

        The step is called as step(real, labels, progress tensor). With `progress` None it
        takes any progress (a transition stage, where it changes every step). A number
        fixes it at trace time (a stable stage; the step checks the one it is given):
        blocks whose blend weight is 0 then leave the graph (G's to_rgb and the
        upscaling of its output, D's from_rgb, the real images' blending) instead of
        being computed and multiplied by 0. The result is the same: those terms were
        exact zeros, and their variables get explicit zero gradients so that Adam's
        state evolves as with a progress tensor.
        """
        hp, gan, strategy = self.hparams, self.gan, self.strategy
        num_pitches = len(self.pitches)
        global_batch = batch_size
        fixed_progress = progress
        used = self._stage_variables(num_blocks) if fixed_progress is not None else set()

        def gradient_pairs(grads, variables):
            """(gradient, variable) pairs to apply; zeros where only a fixed progress gave None."""
            return [(g if g is not None else tf.zeros_like(v), v) for g, v in zip(grads, variables)
                    if g is not None or v.ref() in used]

        def mean(per_example):  # losses are averaged over the global batch, across replicas
            return tf.reduce_sum(per_example) / global_batch

        def generator_step(progress):
            local = global_batch // strategy.num_replicas_in_sync
            z = tf.random.normal([local, self.config.latent_size])
            labels = self._sample_labels(local)
            with tf.GradientTape() as tape:
                one_hot = tf.one_hot(labels, num_pitches)
                fake = gan.generator(z, one_hot, progress, num_blocks, training=True)
                logits, class_logits = gan.classify(fake, one_hot, progress, num_blocks)
                ac = self._ac_loss(class_logits, labels)
                loss = mean(-logits[:, 0] + hp["generator_ac_loss_weight"] * ac)
            variables = gan.generator.trainable_variables
            grads = tape.gradient(loss, variables)
            gan.g_optimizer.apply_gradients(gradient_pairs(grads, variables))
            accuracy = tf.cast(tf.argmax(class_logits, -1, output_type=tf.int32) == labels, tf.float32)
            return {"generator_loss": loss, "fake_ac_loss": mean(ac), "fake_ac_accuracy": mean(accuracy)}

        def discriminator_step(real, real_labels, progress):
            local = tf.shape(real)[0]
            real = blend_resolutions(real, progress, num_blocks, self.config.num_resolutions)
            z = tf.random.normal([local, self.config.latent_size])
            real_one_hot = tf.one_hot(real_labels, num_pitches)
            # A pitch-map D judges fakes against the pitch they were asked for; giving them
            # the real batch's pitches lets the gradient penalty's interpolates keep one pitch.
            fake_one_hot = (real_one_hot if gan.conditional
                            else tf.one_hot(self._sample_labels(local), num_pitches))
            fake = gan.generator(z, fake_one_hot, progress, num_blocks, training=True)
            alpha = tf.random.uniform([local, 1, 1, 1])
            between = real + alpha * (fake - real)
            d_vars = list(gan.discriminator.trainable_variables)
            head_vars = list(gan.pitch_head.trainable_variables) if gan.pitch_head else []
            with tf.GradientTape() as tape:
                real_logits, real_class = gan.classify(real, real_one_hot, progress, num_blocks)
                fake_logits, _ = gan.classify(fake, fake_one_hot, progress, num_blocks)
                with tf.GradientTape() as gp_tape:
                    gp_tape.watch(between)
                    between_logits, _ = gan.discriminator(
                        between, progress, num_blocks, training=True,
                        one_hot=real_one_hot if gan.conditional else None)
                slopes = tf.sqrt(tf.reduce_sum(tf.square(gp_tape.gradient(between_logits, between)),
                                               axis=[1, 2, 3]) + 1e-10)
                penalty = tf.square(slopes / hp["gradient_penalty_target"] - 1.0)
                ac = self._ac_loss(real_class, real_labels)
                wasserstein = fake_logits[:, 0] - real_logits[:, 0]
                loss = mean(wasserstein + hp["gradient_penalty_weight"] * penalty
                            + hp["real_score_penalty_weight"] * tf.square(real_logits[:, 0])
                            + hp["discriminator_ac_loss_weight"] * ac)
            grads = tape.gradient(loss, d_vars + head_vars)
            gan.d_optimizer.apply_gradients(gradient_pairs(grads[:len(d_vars)], d_vars))
            if head_vars:
                gan.head_optimizer.apply_gradients(zip(grads[len(d_vars):], head_vars))
            accuracy = tf.cast(tf.argmax(real_class, -1, output_type=tf.int32) == real_labels,
                               tf.float32)
            return {"discriminator_loss": loss, "wasserstein_distance": -mean(wasserstein),
                    "gradient_penalty": mean(penalty), "real_ac_loss": mean(ac),
                    "real_ac_accuracy": mean(accuracy)}

        def update_ema():
            decay = hp["generator_ema_decay"]
            averaged = gan.ema_generator.named_variables()
            for name, variable in gan.generator.named_variables().items():
                averaged[name].assign(decay * averaged[name] + (1.0 - decay) * variable)

        @tf.function
        def step(real, real_labels, progress):
            if fixed_progress is not None:
                tf.debugging.assert_equal(progress, tf.constant(fixed_progress, progress.dtype),
                                          message="step traced for another progress")
                progress = fixed_progress
            g_metrics = strategy.run(generator_step, args=(progress,))
            update_ema()  # cross-replica context: the same update lands on every copy
            d_metrics = strategy.run(discriminator_step, args=(real, real_labels, progress))
            gan.images_seen.assign_add(global_batch)
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in {**g_metrics, **d_metrics}.items()}

        return step

    # The loop -----------------------------------------------------------------------------

    def write_samples(self, images: int, num_blocks: int, progress: float) -> None:
        """Generated mel-IF images and audio from the EMA generator, for TensorBoard."""
        pitches = [self.pitches[i] for i in np.linspace(0, len(self.pitches) - 1, 3).astype(int)]
        labels = tf.one_hot([self.pitches.index(p) for p in pitches], len(self.pitches))
        z = tf.random.stateless_normal([len(pitches), self.config.latent_size], seed=[0, 0])
        fake = self.gan.ema_generator(z, labels, progress, num_blocks)
        audio = self.converter.melspecgrams_to_waves(self.converter.denormalize(fake))
        with self.writer.as_default(step=images):
            magnitude = tf.transpose(fake[..., :1], [0, 2, 1, 3])[:, ::-1]  # frequency up
            tf.summary.image("generated_mel_magnitude", (magnitude + 1.0) / 2.0, max_outputs=3)
            tf.summary.audio("generated_audio", tf.clip_by_value(audio, -1, 1),
                             self.config.sample_rate, max_outputs=3)

    def any_worker(self, *flags: bool) -> list[bool]:
        """Each flag, True if it is True on any worker (a small all-reduce)."""
        local = tf.constant([float(f) for f in flags])
        per_replica = self.strategy.run(lambda: tf.identity(local))
        agreed = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return [bool(v) for v in agreed.numpy() > 0.5]

    def save(self, images: int) -> str:
        """Write a checkpoint at `images`; returns its path (the chief's)."""
        prefix = self.manager.save(checkpoint_number=images)
        if not self.is_chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)
        return os.fspath(self.checkpoint_dir / f"{CHECKPOINT_NAME}-{images}")

    def restore(self) -> str | None:
        """Restore the newest intact checkpoint; set the damaged newer ones aside.

        Returns the restored prefix, or None when the run has no checkpoint. Raises
        NoIntactCheckpoint when it has some and none restores (they stay in place).
        """
        prefix, damaged = training_run.restore_newest(self.checkpoint_dir, self.checkpoint.restore)
        if prefix is None and damaged:
            reasons = "; ".join(f"{p.name}: {why}" for p, why in damaged)
            raise NoIntactCheckpoint(
                f"{self.checkpoint_dir}: none of its {len(damaged)} checkpoints restores "
                f"({reasons}). They are left where they are; to train this run again from "
                f"0 images, rerun with --start_over (they are then moved to a replaced-N "
                f"folder)")
        for bad, why in damaged:
            where = (training_run.set_aside(bad) if self.is_chief
                     else self.checkpoint_dir / training_run.DAMAGED_DIR)
            self.log(f"checkpoint {bad.name} is damaged ({why}); moved to {where}/, "
                     f"resuming from {prefix.name}")
        if prefix is not None and self.is_chief:
            # The index file may be missing or name what was set aside: make it name what
            # is there, so the checkpoint manager keeps (and later deletes) the right files.
            kept = [p for p in reversed(training_run.checkpoint_prefixes(self.checkpoint_dir))
                    if int(p.name.split("-")[1]) <= int(prefix.name.split("-")[1])][-3:]
            training_run.write_checkpoint_index(self.checkpoint_dir, kept)
        return os.fspath(prefix) if prefix is not None else None

    def train(self, max_seconds: float | None = None) -> int:
        """Run until total_num_images, `max_seconds` or a stop request; returns the image
        count reached (a checkpoint of it is saved)."""
        restored = last_checkpoint = self.restore()
        if restored is None and self.hparams["warm_start_from"]:
            restored = warm_start(self.gan, self.hparams, self.config, self.pitches,
                                  self.hparams["warm_start_from"]) + " (warm start)"
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir, max_to_keep=3,
                                                  checkpoint_name=CHECKPOINT_NAME)
        if restored:
            # Keras optimisers checkpoint their learning rate; this run's hparams decide it.
            self.gan.g_optimizer.learning_rate = self.hparams["generator_learning_rate"]
            self.gan.d_optimizer.learning_rate = self.hparams["discriminator_learning_rate"]
        images = int(self.gan.images_seen.numpy())
        self.log(f"{'resumed from ' + restored if restored else 'starting a new run'} "
                 f"at {images} images of {self.schedule.total_images}")
        warning = ema_lag_warning(self.hparams["generator_ema_decay"], self.schedule, images)
        if warning:
            self.log(warning)
        start = last_save = last_log = time.time()
        start_images = images
        summary_every = self.hparams["save_summaries_num_images"]
        next_summary = (images // summary_every + 1) * summary_every
        # A transition stage's step takes progress as a tensor; a stable stage's has it fixed
        # (its blocks with weight 0 left out of the graph, see make_step).
        steps: dict[tuple[int, int, float | None], Any] = {}
        while not self.schedule.done(images):
            # Here every image trained is in a checkpoint already (the run's start, or a
            # stage end), so a stop before the next step's 10-30 s of tracing saves nothing.
            if not self.multi_worker and (stop := self.stop_requested()):
                self.log(f"stopped by {stop} at {images} images; "
                         + (f"checkpoint {last_checkpoint} is up to date" if last_checkpoint
                            else "nothing trained yet"))
                return images
            stage = self.schedule.stage_of(images)
            num_blocks, batch_size = self.schedule.num_blocks(stage), self.schedule.batch_size(stage)
            if batch_size % self.strategy.num_replicas_in_sync:
                raise HparamsError(f"batch size {batch_size} does not split over "
                                   f"{self.strategy.num_replicas_in_sync} replicas")
            transition = self.schedule.progressive and stage % 2 == 1
            fixed = None if transition else self.schedule.progress(images, num_blocks)
            key = (num_blocks, batch_size, fixed)
            if key not in steps:
                steps[key] = self.make_step(num_blocks, batch_size, progress=fixed)
            step = steps[key]
            data = self.strategy.experimental_distribute_dataset(
                image_dataset(self.hparams, self.config, self.converter, self.counts,
                              batch_size, seed=self.hparams["seed"] + stage))
            self.log(f"stage {stage}/{self.schedule.num_stages - 1}: {num_blocks} blocks, "
                     f"batch {batch_size}, until {self.schedule.stage_end(stage)} images")
            for real, labels in data:
                progress = self.schedule.progress(images, num_blocks)
                metrics = step(real, labels, tf.constant(progress, tf.float32))
                images = int(self.gan.images_seen.numpy())
                now = time.time()
                if images >= next_summary:
                    next_summary += summary_every
                    with self.writer.as_default(step=images):
                        for name, value in metrics.items():
                            tf.summary.scalar(name, value)
                        tf.summary.scalar("progress", progress)
                        tf.summary.scalar("images_per_second", (images - start_images) / (now - start))
                    if self.is_chief:
                        self.write_samples(images, num_blocks, progress)
                if now - last_log > 30 or self.schedule.done(images):
                    rate = (images - start_images) / (now - start)
                    eta = self.schedule.eta_seconds(images, rate)
                    eta_text = (f"{eta // 3600:.0f}:{eta % 3600 // 60:02.0f}:{eta % 60:02.0f}"
                                if math.isfinite(eta) else "unknown")
                    self.log(f"stage {stage} images {images} progress {progress:.3f} "
                             f"{rate:.1f} images/s ETA {eta_text}  "
                             f"D {float(metrics['discriminator_loss']):.3f} "
                             f"G {float(metrics['generator_loss']):.3f} "
                             f"AC real {float(metrics['real_ac_accuracy']):.2f}")
                    last_log = now
                stage_over = images >= self.schedule.stage_end(stage)
                out_of_time = max_seconds is not None and now - start >= max_seconds
                save_due = now - last_save >= self.hparams["save_checkpoint_secs"]
                stop = self.stop_requested()
                if self.multi_worker:  # clocks and signals differ: the workers act together
                    out_of_time, save_due, stopping = self.any_worker(
                        out_of_time, save_due, stop is not None)
                    stop = stop or ("a stop on another worker" if stopping else None)
                if stage_over or out_of_time or save_due or stop:
                    last_checkpoint = self.save(images)
                    last_save = now
                if out_of_time:
                    self.log(f"time limit reached at {images} images; checkpoint saved")
                    return images
                if stop:
                    self.log(f"stopped by {stop} at {images} images; checkpoint "
                             f"{last_checkpoint} saved")
                    return images
                if stage_over or self.schedule.done(images):
                    break
            else:  # the dataset repeats forever unless nothing in it has a vocabulary pitch
                raise data_lib.DatasetError(
                    f"{self.hparams['train_data_path']}: no training examples with a pitch in "
                    f"the vocabulary {self.pitches}")
        self.save(images)
        self.log(f"training complete: {images} images")
        return images


# Run directory and strategy ------------------------------------------------------------------

def write_json_atomic(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def prepare_run_dir(hparams: dict[str, Any], config: ModelConfig, counts: dict[int, int]) -> None:
    """Create train_root_dir with experiment.json, or check a resumed run matches it."""
    root = Path(hparams["train_root_dir"])
    experiment = {"hparams": hparams, "architecture": config.to_dict()}
    existing_path = root / EXPERIMENT_FILE
    if existing_path.exists():
        existing = json.loads(existing_path.read_text())
        changed = [k for k in RESUME_KEYS if existing["hparams"].get(k) != hparams.get(k)]
        if existing["architecture"] != experiment["architecture"]:
            changed.append("architecture")
        if changed:
            raise HparamsError(f"{root} holds a run with different {changed}; use a new "
                               f"train_root_dir or the original hparams to resume")
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(existing_path, experiment)
    write_json_atomic(root / VOCABULARY_FILE,
                      {"pitches": sorted(counts), "pitch_counts": {str(p): n for p, n in counts.items()}})


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MultiWorkerMirrored under a multi-task Slurm job, Mirrored with several GPUs."""
    if name == "auto":
        if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multiworker":
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise HparamsError(f"--strategy {name!r}: choose auto, default, mirrored or multiworker")


