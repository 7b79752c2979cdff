"""Training throughput (images/s) per progressive stage of gansynth-train on this machine.

For each architecture (`tiny`, `mel_prog_1s`, `mel_prog_hires`) and each number of blocks,
builds the compiled training iteration with `Trainer.make_step(num_blocks, batch)` (default
Magenta's batch 8: one G step, EMA update, one D step with gradient penalty) and times it on real
data: 8 TimGM6mb notes (piano and violin, pitches 60 62 64 65) rendered at the config's
length, written by `training.make_dataset` and read through `trainer.image_dataset` as in
training, with Magenta's 61-pitch label vocabulary (24..84). A transition stage shares its
compiled step with the stable stage after it, so one row per block count covers every
stage; progress is that of the stable stage.

Columns: compile = the first call (tracing + first step; for the first row of a config
also the dataset's one-off spectrogram pass); s/step and images/s over `--steps` further
steps of the stable stage's step (progress fixed at trace time, blocks of weight 0 left
out, as training runs it); "tensor p img/s": the same stage through the step that takes
progress as a tensor (what a transition stage runs, and what every stage ran before
stable stages got their own step), timed alternately with it; the same-run baseline
"G fwd": the generator's forward pass alone at the same batch and stage; "step/G": how
many generator forwards one training iteration costs (D, gradient penalty, backprop,
Adam, EMA). Quoted reference rows: Magenta's TF1 code training a 1 s config like
mel_prog_1s on these 2-core machines (docs/magenta-reference.md section 5; all blocks in one graph,
batch 16).

TensorFlow's oneDNN kernels are on unless `--onednn 0` (training/trainer.py turns them on;
TensorFlow itself leaves them off on CPUs without AVX512-VNNI). Measured on the 2-core
machine, mel_prog_1s at 7 blocks, batch 16 (images/s, median of alternated runs):
Eigen, tensor progress 1.6; Eigen, fixed 1.7; oneDNN, tensor progress 4.4; oneDNN, fixed 4.8.

Weights are random: speed does not depend on their values.

    python bench/train_speed.py [--configs tiny mel_prog_1s mel_prog_hires] [--steps 5]
        [--max_blocks 7] [--hires_blocks 1 4 7] [--hires_steps 2] [--batch 8] [--onednn 1]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# --onednn must act before TensorFlow is imported.
if "--onednn" in sys.argv[:-1]:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = sys.argv[sys.argv.index("--onednn") + 1]
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402

from training import make_dataset  # noqa: E402
from training.hparams import resolve_hparams  # noqa: E402
from training.soundfont import render_note  # noqa: E402
from training.trainer import Trainer, image_dataset, pitch_counts  # noqa: E402

BATCH = 8  # Magenta's batch_size_schedule; --batch changes it
INSTRUMENTS = {"piano": 0, "violin": 40}  # General MIDI programs
PITCHES = (60, 62, 64, 65)
# docs/magenta-reference.md section 5: Magenta TF1, 1 s 128 x 256 config, 7 resolutions, batch 16.
MAGENTA_TF1 = {"Magenta TF1 1 s, fmap_max 32": 6.7, "Magenta TF1 1 s, fmap_max 16": 15.6}


def build_dataset(folder: str, sample_rate: int, length: int) -> str:
    """Render the notes and write a training dataset; returns its path."""
    wavs = os.path.join(folder, "wavs")
    os.makedirs(wavs)
    for name, program in INSTRUMENTS.items():
        for pitch in PITCHES:
            audio = render_note(program, pitch, num_samples=length, sample_rate=sample_rate)
            sf.write(os.path.join(wavs, f"{name}_{pitch}.wav"), audio, sample_rate, subtype="PCM_16")
    out = os.path.join(folder, "dataset")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = make_dataset.main(["--in_dir", wavs, "--out_dir", out, "--length", str(length),
                                  "--sample_rate", str(sample_rate)])
    if code != 0:
        raise SystemExit(f"make_dataset failed with exit status {code}")
    return out


def timed(fn, steps: int) -> tuple[float, float]:
    """(seconds of the first call, mean seconds of `steps` further calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return first, (time.perf_counter() - start) / max(steps, 1)


def alternated(fns: list, steps: int) -> list[float]:
    """Median seconds per call of each of `fns`, called in turn `steps` times each."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(steps):
        order = list(enumerate(fns)) if i % 2 == 0 else list(enumerate(fns))[::-1]
        for j, fn in order:
            start = time.perf_counter()
            fn()
            times[j].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_config(name: str, blocks: list[int], steps: int, workdir: str, row) -> None:
    hparams, config = resolve_hparams(name, {"train_data_path": "unset",
                                             "train_root_dir": os.path.join(workdir, name)})
    data_dir = os.path.join(workdir, f"data-{config.audio_length}")
    hparams["train_data_path"] = (data_dir + "/dataset" if os.path.isdir(data_dir) else
                                  build_dataset(data_dir, config.sample_rate, config.audio_length))
    # Magenta's 61-pitch vocabulary (24..84) sets the label sizes; the data covers 4 of them.
    found = pitch_counts(hparams)
    counts = {p: found.get(p, 1) for p in range(hparams["train_min_pitch"],
                                                  hparams["train_max_pitch"] + 1)}
    tf.random.set_seed(0)
    trainer = Trainer(hparams, config, counts, tf.distribute.get_strategy(), log=lambda m: None)
    batches = iter(image_dataset(hparams, config, trainer.converter, counts, BATCH, seed=0))
    generator, num_pitches = trainer.gan.generator, len(counts)
    z = tf.random.normal([BATCH, config.latent_size])
    one_hot = tf.one_hot(tf.range(BATCH) % num_pitches, num_pitches)
    for num_blocks in [b for b in blocks if b <= config.num_resolutions]:
        progress = tf.constant(float(num_blocks - 1))
        fixed_step = trainer.make_step(num_blocks, BATCH, progress=float(num_blocks - 1))
        tensor_step = trainer.make_step(num_blocks, BATCH)

        def train_step(step):
            real, labels = next(batches)
            float(step(real, labels, progress)["discriminator_loss"])

        forward = tf.function(lambda z, one_hot, p: generator(z, one_hot, p, num_blocks,
                                                              training=True))
        compile_s, _ = timed(lambda: train_step(fixed_step), 0)
        train_step(tensor_step)  # its compile
        step_s, tensor_s = alternated([lambda: train_step(fixed_step),
                                       lambda: train_step(tensor_step)], steps)
        _, forward_s = timed(lambda: forward(z, one_hot, progress).numpy(), steps)
        h, w = config.block_shape(num_blocks)
        row(name, f"{num_blocks} ({h}x{w})", compile_s, step_s, forward_s, tensor_s)


def main() -> None:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "mel_prog_1s", "mel_prog_hires"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the warm-up")
    parser.add_argument("--max_blocks", type=int, default=7, help="skip stages with more blocks")
    parser.add_argument("--hires_blocks", type=int, nargs="+", default=[1, 4, 7],
                        help="block counts for mel_prog_hires (its big stages are slow)")
    parser.add_argument("--hires_steps", type=int, default=2, help="timed steps for mel_prog_hires")
    parser.add_argument("--batch", type=int, default=BATCH, help="batch size (Magenta's: 8)")
    parser.add_argument("--onednn", type=int, choices=(0, 1), default=1,
                        help="TensorFlow's oneDNN CPU kernels (read before TensorFlow loads)")
    args = parser.parse_args()
    BATCH = args.batch
    from tensorflow.python.util import _pywrap_util_port

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"GPU: {bool(tf.config.list_physical_devices('GPU'))}, "
          f"oneDNN: {_pywrap_util_port.IsMklEnabled()}, batch {BATCH}, real data")
    header = (f"{'config':<30} {'blocks (res)':<14} {'compile s':>9} {'s/step':>8} "
              f"{'images/s':>9} {'tensor p img/s':>14} {'G fwd img/s':>11} {'step/G':>7}")
    print(header)
    print("-" * len(header))

    def row(name, blocks, compile_s, step_s, forward_s, tensor_s):
        print(f"{name:<30} {blocks:<14} {compile_s:>9.1f} {step_s:>8.3f} {BATCH / step_s:>9.1f} "
              f"{BATCH / tensor_s:>14.1f} {BATCH / forward_s:>11.1f} {step_s / forward_s:>7.1f}",
              flush=True)

    with tempfile.TemporaryDirectory(prefix="train_speed-") as workdir:
        for name in args.configs:
            hires = name == "mel_prog_hires"
            blocks = args.hires_blocks if hires else range(1, 8)
            blocks = [b for b in blocks if b <= args.max_blocks]
            bench_config(name, blocks, args.hires_steps if hires else args.steps, workdir, row)
    for name, rate in MAGENTA_TF1.items():
        print(f"{name:<30} {'7, batch 16':<14} {'':>9} {16 / rate:>8.3f} {rate:>9.1f}")
    print(f"\nimages/s counts real images through D per iteration (one G step + one D step of "
          f"batch {BATCH}).\nCompare mel_prog_1s at 7 blocks with the Magenta TF1 fmap_max 32 row "
          f"(batch 16).")


if __name__ == "__main__":
    main()
