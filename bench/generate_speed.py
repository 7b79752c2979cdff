"""Generation speed of the full `mel_prog_hires` architecture on this machine.

Prints one table: ms per note at batch 1, 8 and 61, spectrogram only and through
to the waveform, for the compiled graph (tf.function) and the XLA-compiled graph,
next to the same-run baselines: "unfused" runs Magenta's op order (materialise the
x2 nearest-neighbour upscale, then the 3x3 conv) instead of our fused sub-pixel
conv0, "eager" runs without compilation; the machine's peak is measured with a
large matmul and large convolutions; Magenta's TF1 time measured on these 2-core
machines (docs/magenta-reference.md: 110 ms/note at batch 8) is quoted.

Weights are random: speed does not depend on their values.

    python bench/generate_speed.py [--batches 1 8 61] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gansynth_live as gl  # noqa: E402
from gansynth_live.networks import EqualizedConv2D, Generator, upscale  # noqa: E402

MAGENTA_TF1_MS_PER_NOTE = {1: 119.0, 8: 110.0, 16: 103.0}  # docs/magenta-reference.md section 5


def generator_flops(config: gl.ModelConfig, num_pitches: int) -> float:
    """Multiply-adds x 2 of the generator's convolutions at final progress, per note."""
    flops = 0.0
    for block_id in range(1, config.num_resolutions + 1):
        h, w = config.block_shape(block_id)
        nf_in = config.latent_size + num_pitches if block_id == 1 else config.num_filters(block_id - 1)
        nf = config.num_filters(block_id)
        k0 = config.start_shape if block_id == 1 else (config.kernel_size,) * 2
        k = config.kernel_size
        flops += 2 * h * w * (k0[0] * k0[1] * nf_in * nf + k * k * nf * nf)
    h, w = config.spec_shape
    flops += 2 * h * w * config.num_filters(config.num_resolutions) * config.image_channels
    return flops


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and compilation are not generation time
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measured_peak(repeats: int) -> dict[str, float]:
    """GFLOP/s of a large float32 matmul and of a hires-sized 3x3 convolution."""
    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.matmul(a, a))
    x = tf.random.normal([4, 128, 1024, 32])
    kernel = tf.random.normal([3, 3, 32, 32])
    conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    x2 = tf.random.normal([4, 32, 256, 128])
    kernel2 = tf.random.normal([3, 3, 128, 128])
    conv_wide = tf.function(lambda: tf.nn.conv2d(x2, kernel2, 1, "SAME"))
    return {
        "matmul 2048^3": 2 * 2048 ** 3 / best_time(lambda: matmul().numpy(), repeats) / 1e9,
        "conv 3x3 128x1024 32->32": 2 * 4 * 128 * 1024 * 9 * 32 * 32
        / best_time(lambda: conv().numpy(), repeats) / 1e9,
        "conv 3x3 32x256 128->128": 2 * 4 * 32 * 256 * 9 * 128 * 128
        / best_time(lambda: conv_wide().numpy(), repeats) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 61])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-eager", action="store_true", help="skip the slow eager baseline")
    args = parser.parse_args()

    config = gl.preset("mel_prog_hires")
    pitches = list(range(24, 85))
    flops = generator_flops(config, len(pitches))
    peaks = measured_peak(args.repeats)
    peak = max(peaks.values())
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"hires generator: {flops / 1e9:.1f} GFLOP per note (convolutions)")
    for name, gflops in peaks.items():
        print(f"measured peak, {name}: {gflops:.1f} GFLOP/s")
    print()

    generator = Generator(config, len(pitches))  # one set of weights for every variant
    models = {"unfused": gl.Model(config, pitches, generator=generator, max_batch=64),
              "graph": gl.Model(config, pitches, generator=generator, max_batch=64),
              "graph+XLA": gl.Model(config, pitches, generator=generator, max_batch=64,
                                    jit_compile=True)}
    fused = EqualizedConv2D.upscaled
    EqualizedConv2D.upscaled = lambda self, x: self(upscale(x, 2))  # Magenta's op order
    for trace in (models["unfused"].generate_specgrams, models["unfused"].generate):
        trace(np.zeros((1, config.latent_size), np.float32), [60])  # trace while patched
    EqualizedConv2D.upscaled = fused

    header = (f"{'variant':<12} {'output':<12} {'batch':>5} {'ms/note':>9} {'notes/s':>8} "
              f"{'GFLOP/s':>8} {'% peak':>7} {'vs TF1 ref':>10}")
    print(header)
    print("-" * len(header))

    def row(variant, output, batch, seconds, count_flops=True):
        per_note = seconds / batch
        ref = MAGENTA_TF1_MS_PER_NOTE.get(batch, MAGENTA_TF1_MS_PER_NOTE[16])
        gflops = flops / per_note / 1e9 if count_flops else float("nan")
        print(f"{variant:<12} {output:<12} {batch:>5} {per_note * 1e3:>9.1f} {1 / per_note:>8.2f} "
              f"{gflops:>8.1f} {100 * gflops / peak:>6.1f}% {ref / (per_note * 1e3):>9.2f}x",
              flush=True)

    rng = np.random.default_rng(0)
    for batch in args.batches:
        z = rng.standard_normal((batch, config.latent_size)).astype(np.float32)
        notes = [pitches[i % len(pitches)] for i in range(batch)]
        if not args.no_eager and batch <= 8:
            one_hot = tf.one_hot(models["graph"].labels(notes), len(pitches))
            row("eager", "specgram", batch,
                best_time(lambda: generator(tf.constant(z), one_hot).numpy(), 1))
        for variant, model in models.items():
            row(variant, "specgram", batch,
                best_time(lambda: model.generate_specgrams(z, notes), args.repeats))
            row(variant, "waveform", batch,
                best_time(lambda: model.generate(z, notes), args.repeats))
    print("\n'vs TF1 ref' > 1 means faster than Magenta's TF1 code on these machines "
          "(119/110/103 ms per note at batch 1/8/16, spectrogram only).")


if __name__ == "__main__":
    main()
