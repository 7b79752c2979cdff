"""What GANSpace coefficients cost: generation from coefficients against from latents.

Prints one table: ms per note at batch 1 (the first note of a new timbre point), 16 and
61 (a new point's whole pitch range, in `max_batch` chunks as the live server renders
it), waveform output, for three inputs, timed in the same run and interleaved round by
round, each round starting with the next input, so that the machine's load and the
order fall on all of them alike:

  latents        model.generate(z, pitches): a grid point of the live server
  coefficients   model.generate(None, pitches, ganspace=c): a pure coefficient point
  edited         model.generate(z, pitches, ganspace=c): latents moved by coefficients

"+%" is the median over rounds of each round's time against the latents' time of the
same round. The embedded default model with its shipped directions, or with --hires
Magenta's architecture (random weights and random directions: speed does not depend on
their values).

    python bench/ganspace_speed.py [--rounds 30] [--batches 1 16 61] [--hires]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gansynth_live as gl  # noqa: E402
from gansynth_live import ganspace  # noqa: E402


def random_directions(model: gl.Model, components: int = 16) -> ganspace.GanSpace:
    """Orthonormal random directions for `model`'s default layer (speed only)."""
    rng = np.random.default_rng(0)
    size = int(np.prod(model.generator.layer_shape(ganspace.DEFAULT_LAYER)))
    q, _ = np.linalg.qr(rng.standard_normal((size, components)))
    return ganspace.GanSpace(
        layer=ganspace.DEFAULT_LAYER, components=q.T.astype(np.float32),
        stds=np.ones(components, np.float32),
        pitch_means=rng.standard_normal((len(model.pitches), size)).astype(np.float32),
        explained_variance_ratio=np.full(components, 0.01, np.float32), pitches=model.pitches,
        samples=0, seed=0, stability=np.zeros(0, np.float32), stability_seed=None,
        weights_sha256=ganspace.weights_sha256(model.generator))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 61])
    parser.add_argument("--hires", action="store_true",
                        help="Magenta's mel_prog_hires architecture instead of the default model")
    args = parser.parse_args()

    if args.hires:
        model = gl.Model(gl.preset("mel_prog_hires"), list(range(24, 85)), name="mel_prog_hires")
        model.set_ganspace(random_directions(model))
    else:
        model = gl.load_model()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"GPU: {bool(tf.config.list_physical_devices('GPU'))}; model {model.name}, "
          f"max_batch {model.max_batch}, {args.rounds} rounds")
    header = (f"{'batch':>5}  {'latents ms/note':>15}  {'coefficients':>12} {'+%':>6}  "
              f"{'edited':>8} {'+%':>6}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    k = model.ganspace.num_components
    for batch in args.batches:
        z = rng.standard_normal((batch, model.latent_size)).astype(np.float32)
        pitches = [model.pitches[i % len(model.pitches)] for i in range(batch)]
        c = rng.uniform(-2, 2, (batch, k)).astype(np.float32)
        runs = {"latents": lambda: model.generate(z, pitches),
                "coefficients": lambda: model.generate(None, pitches, ganspace=c),
                "edited": lambda: model.generate(z, pitches, ganspace=c)}
        for run in runs.values():
            run()  # warm-up: tracing is not generation time
        times = {name: [] for name in runs}
        names = list(runs)
        for round_ in range(args.rounds):
            for name in names[round_ % 3:] + names[:round_ % 3]:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
        base = np.array(times["latents"])

        def cost(name: str) -> str:
            t = np.array(times[name])
            return (f"{1e3 * np.median(t) / batch:>8.2f} "
                    f"{100 * (np.median(t / base) - 1):>+6.1f}")

        print(f"{batch:>5}  {1e3 * np.median(base) / batch:>15.2f}  {cost('coefficients'):>19}  "
              f"{cost('edited'):>15}", flush=True)


if __name__ == "__main__":
    main()
