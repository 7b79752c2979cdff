"""GANSpace timbre controls: ordered directions through a generator layer's activations.

GANSpace (Härkönen et al. 2020), as GANSpaceSynth applies it to GANSynth: feed many
random latents through the generator, record one early layer's activations, find their
principal directions with incremental PCA, and keep each direction's standard deviation.
A coefficient vector c then names a point of the model's timbre space:

    activation = origin + sum_i c_i * std_i * direction_i

and the rest of the generator runs from that layer. `origin` is the pitch's mean
activation (a pure coefficient point), or a latent's own activation at that pitch
(an edit of the latent). Coefficients are in standard deviations: 0 is the average
timbre, +-1 a typical spread, and COEFFICIENT_RANGE what the controls offer.

The generator hears the pitch in the layer too (the one-hot joins the latent before
the first conv), so the activations of different pitches differ by a pitch-dependent
mean. The PCA sees every sample centred on its own pitch's mean (`pitch_means`): its
directions describe how notes of one pitch differ (timbre), not how pitches differ.

The directions live in the model directory as `ganspace.npz` (FILE); `load_model`
attaches them as `model.ganspace`, and `gansynth-ganspace --model DIR` computes them.
This module imports TensorFlow only inside `compute` and the command's work, so
`--help` stays fast.
"""
from __future__ import annotations

import argparse
import hashlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

import numpy as np

from gansynth_live import validation

if TYPE_CHECKING:
    from gansynth_live.model import Model
    from gansynth_live.networks import Generator

PROG = "gansynth-ganspace"
FILE = "ganspace.npz"
FORMAT = "gansynth-live-ganspace"
FORMAT_VERSION = 1
DEFAULT_LAYER = "block1/conv0"  # GANSpaceSynth's conv0: the first conv of the generator
DEFAULT_SAMPLES = 1 << 17
DEFAULT_COMPONENTS = 16
DEFAULT_BATCH = 2048
# The controls' range, in standard deviations along each direction: live and offline
# controls refuse coefficients outside it (the Python API takes any finite value).
COEFFICIENT_RANGE = (-3.0, 3.0)
# Coefficient points are snapped to multiples of this before they are cached, so that
# a slider's path visits finitely many points: 25 per direction over the range.
SNAP_STEP = 0.25
# "Stable": the first STABILITY_COMPONENTS directions computed from two seeds agree
# with |cosine| >= STABILITY_THRESHOLD.
STABILITY_COMPONENTS = 4
STABILITY_THRESHOLD = 0.9
# The PCA's time and memory grow with the square of the layer's size: the hires model's
# block1/conv0 holds 8,192 values a note, its block2/conv0 32,768.
MAX_LAYER_VALUES = 1 << 15
MAX_COMPONENTS = 256  # far more than any control needs; bounds what a file may hold


@dataclass(frozen=True)
class GanSpace:
    """The principal directions of one generator layer, and how to move along them.

    Attributes:
        layer: the generator layer (`Generator.layer_names()`), e.g. "block1/conv0".
        components: [k, D] orthonormal directions in the flattened layer (D = H*W*C),
            ordered by the variance they explain, largest first.
        stds: [k] standard deviation of the pitch-centred activations along each one.
        pitch_means: [P, D] mean activation at each pitch of `pitches`: the origin of a
            pure coefficient point.
        explained_variance_ratio: [k] share of the within-pitch variance per direction.
        pitches: the model's pitch vocabulary the means belong to.
        samples, seed: how many random latents were used, and the seed they came from.
        stability: |cosine| between each of the first directions and the same direction
            computed from `stability_seed` (empty when not measured).
        weights_sha256: the generator weights the directions were computed for.
    """

    layer: str
    components: np.ndarray
    stds: np.ndarray
    pitch_means: np.ndarray
    explained_variance_ratio: np.ndarray
    pitches: tuple[int, ...]
    samples: int
    seed: int
    stability: np.ndarray
    stability_seed: int | None
    weights_sha256: str

    @property
    def num_components(self) -> int:
        return len(self.components)

    @property
    def scaled_components(self) -> np.ndarray:
        """[k, D] float32: direction i times std_i, so that c @ this is the edit."""
        return (self.stds[:, np.newaxis] * self.components).astype(np.float32)

    def coefficients(self, values: Any, batch: int | None = None) -> np.ndarray:
        """float32 [B, k]: `values` ([k'] or [B, k'], k' <= k; missing ones are 0)
        checked to be finite, broadcast to `batch` rows when it has one."""
        c = np.asarray(values, np.float64)
        if c.ndim == 1:
            c = c[np.newaxis]
        k = self.num_components
        if c.ndim != 2 or not 1 <= c.shape[1] <= k:
            raise ValueError(f"ganspace coefficients must have shape (batch, 1..{k}) or "
                             f"(1..{k},), got {np.shape(values)}")
        if not np.all(np.isfinite(c)):
            raise ValueError("ganspace coefficients contain NaN or infinite values")
        c = np.pad(c, [(0, 0), (0, k - c.shape[1])])
        if batch is not None and len(c) != batch:
            if len(c) != 1:
                raise ValueError(f"got {len(c)} ganspace coefficient vectors for {batch} notes")
            c = np.repeat(c, batch, axis=0)
        return c.astype(np.float32)

    def check_against(self, generator: "Generator", pitches: Sequence[int]) -> None:
        """ValueError naming the first part that does not fit this generator."""
        try:
            shape = generator.layer_shape(self.layer)
        except ValueError as e:
            raise ValueError(f"layer: {e}") from None
        size = int(np.prod(shape))
        k = self.num_components
        if (self.components.ndim != 2 or self.components.shape[1] != size
                or not 1 <= k <= MAX_COMPONENTS):
            raise ValueError(f"components has shape {self.components.shape}; layer "
                             f"{self.layer} {shape} needs (1..{MAX_COMPONENTS}, {size})")
        if tuple(self.pitches) != tuple(pitches):
            raise ValueError(f"pitches {_span(self.pitches)} are not the model's "
                             f"{_span(pitches)}")
        for name, value, expected in (("stds", self.stds, (k,)),
                                      ("explained_variance_ratio",
                                       self.explained_variance_ratio, (k,)),
                                      ("pitch_means", self.pitch_means, (len(pitches), size))):
            if value.shape != expected:
                raise ValueError(f"{name} has shape {value.shape}, expected {expected}")
        for name in ("components", "stds", "pitch_means", "explained_variance_ratio",
                     "stability"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} holds non-finite values")
        if not np.all(self.stds > 0):
            raise ValueError("stds must be positive")
        if self.weights_sha256 != weights_sha256(generator):
            raise ValueError("it was computed for other generator weights; compute it again "
                             f"for these: {PROG} --model DIR")


def _span(pitches: Sequence[int]) -> str:
    return f"{pitches[0]}..{pitches[-1]} ({len(pitches)})" if len(pitches) else "(none)"


def weights_sha256(generator: "Generator") -> str:
    """A fingerprint of the generator's weights: directions belong to one set of them."""
    digest = hashlib.sha256()
    for name, variable in sorted(generator.named_variables().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(variable.numpy(), np.float32).tobytes())
    return digest.hexdigest()


# Controls -------------------------------------------------------------------------------

def check_coefficients(values: Sequence[Any], num_components: int) -> np.ndarray:
    """float32 [k']: one control's coefficients, each a number in COEFFICIENT_RANGE, at
    most `num_components` of them; ValueError naming the first bad one otherwise (the
    words the live server's /fail and the offline command's error use)."""
    if not 1 <= len(values) <= num_components:
        raise ValueError(f"give 1..{num_components} ganspace coefficients, got {len(values)}")
    low, high = COEFFICIENT_RANGE
    return np.array([validation.number(f"ganspace coefficient {i + 1}", v, low, high)
                     for i, v in enumerate(values)], np.float32)


def snap(values: Sequence[float], step: float = SNAP_STEP) -> tuple[float, ...]:
    """The coefficient point nearest to `values` on the grid of multiples of `step`, as
    a hashable cache key; trailing zeros are dropped, so (1, 0) and (1,) are one point."""
    # Halves round away from 0 (Python's round() takes them to even, which made the
    # cells uneven: 0.375 -> 0.5 but 0.625 -> 0.5); + 0.0: no -0.0.
    point = [math.copysign(math.floor(abs(float(v)) / step + 0.5), v) * step + 0.0
             for v in values]
    while point and point[-1] == 0.0:
        point.pop()
    return tuple(point)


def snap_neighbours(point: Sequence[float], num_components: int, step: float = SNAP_STEP
                    ) -> list[tuple[float, ...]]:
    """The snapped points one step away from `point` along each of the first
    `num_components` directions, inside COEFFICIENT_RANGE: what a slider reaches next."""
    low, high = COEFFICIENT_RANGE
    base = list(point) + [0.0] * (num_components - len(point))
    out = []
    for i in range(num_components):
        for sign in (-1.0, 1.0):
            moved = list(base)
            moved[i] += sign * step
            if low - 1e-9 <= moved[i] <= high + 1e-9:
                out.append(snap(moved, step))
    return out


# The file -------------------------------------------------------------------------------

def save(ganspace: GanSpace, model_dir: os.PathLike | str) -> Path:
    """Write `ganspace` as model_dir/ganspace.npz atomically (temporary file, then
    os.replace: a reader sees the old file or the new one, never half of one)."""
    model_dir = Path(model_dir)
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "layer": ganspace.layer,
            "pitches": list(ganspace.pitches), "samples": ganspace.samples,
            "seed": ganspace.seed, "stability_seed": ganspace.stability_seed,
            "pitch_handling": "per-pitch centring", "weights_sha256": ganspace.weights_sha256}
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE}.", dir=model_dir)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as f:
            np.savez(f, info=np.array(json.dumps(info)),
                     components=ganspace.components.astype(np.float32),
                     stds=ganspace.stds.astype(np.float32),
                     pitch_means=ganspace.pitch_means.astype(np.float32),
                     explained_variance_ratio=ganspace.explained_variance_ratio.astype(np.float32),
                     stability=ganspace.stability.astype(np.float32))
        os.replace(tmp, model_dir / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return model_dir / FILE


_ARRAYS = ("components", "stds", "pitch_means", "explained_variance_ratio", "stability")


def load(path: os.PathLike | str) -> GanSpace:
    """Read a ganspace.npz; ValueError saying what is wrong with it (not yet checked
    against a model: `GanSpace.check_against`)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in ("info", *_ARRAYS) if name not in npz.files]
            if missing:
                raise ValueError(f"has no {missing[0]!r}")
            info = json.loads(str(npz["info"]))
            arrays = {name: npz[name] for name in _ARRAYS}
    except (OSError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable or corrupt: {e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"its info is not a {FORMAT} record")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {info.get('format_version')!r}; this version reads "
                         f"{FORMAT_VERSION}")
    for name, value in arrays.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"{name} is {value.dtype}, not float")
    try:
        return GanSpace(layer=str(info["layer"]),
                        components=arrays["components"].astype(np.float32),
                        stds=arrays["stds"].astype(np.float32),
                        pitch_means=arrays["pitch_means"].astype(np.float32),
                        explained_variance_ratio=arrays["explained_variance_ratio"],
                        pitches=tuple(int(p) for p in info["pitches"]),
                        samples=int(info["samples"]), seed=int(info["seed"]),
                        stability=arrays["stability"].reshape(-1),
                        stability_seed=(None if info["stability_seed"] is None
                                        else int(info["stability_seed"])),
                        weights_sha256=str(info["weights_sha256"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"its info lacks or mangles {e}") from None


# Computing the directions -------------------------------------------------------------------

def compute(model: "Model", *, layer: str = DEFAULT_LAYER, samples: int = DEFAULT_SAMPLES,
            components: int = DEFAULT_COMPONENTS, seed: int = 0, batch: int = DEFAULT_BATCH,
            progress: Callable[[int], None] | None = None) -> GanSpace:
    """The `components` principal directions of `layer`'s pitch-centred activations over
    `samples` random latents at uniformly random pitches.

    Two passes over fresh latents: the first estimates each pitch's mean activation,
    the second feeds the activations minus their pitch's mean to scikit-learn's
    IncrementalPCA, `batch` at a time. `progress(n)` hears of every n latents done
    (2 * samples in all).
    """
    from sklearn.decomposition import IncrementalPCA

    size = int(np.prod(model.generator.layer_shape(layer)))
    if size > MAX_LAYER_VALUES:
        raise ValueError(f"layer {layer} holds {size:,} values a note; GANSpace takes at most "
                         f"{MAX_LAYER_VALUES:,} (the PCA's cost grows with its square)")
    most = min(size, batch, MAX_COMPONENTS)
    if not 1 <= components <= most:
        raise ValueError(f"components must be in 1..{most} (at most the layer's {size} "
                         f"values, the batch of {batch} and {MAX_COMPONENTS}), got {components}")
    if samples < batch:
        raise ValueError(f"samples must be at least one batch ({batch}), got {samples}")
    num_pitches = len(model.pitches)
    means_rng, pca_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    report = progress or (lambda n: None)

    def batches(rng: np.random.Generator, balanced: bool):
        # samples // batch steps of batch..2*batch-1 latents: every step has at least
        # `components` rows, as IncrementalPCA needs.
        for indices in np.array_split(np.arange(samples), samples // batch):
            z = rng.standard_normal((len(indices), model.latent_size)).astype(np.float32)
            # Balanced pitches for the means (each mean from samples / P latents);
            # independent uniform ones for the PCA.
            labels = (indices % num_pitches if balanced
                      else rng.integers(0, num_pitches, len(indices)))
            yield labels, model.layer_activations(z, np.asarray(model.pitches)[labels], layer)
            report(len(indices))

    sums = np.zeros((num_pitches, size))
    counts = np.zeros(num_pitches)
    for labels, activations in batches(means_rng, balanced=True):
        one_hot = np.eye(num_pitches)[labels]
        sums += one_hot.T @ activations  # per-pitch sums, as one matrix product
        counts += one_hot.sum(axis=0)
    pitch_means = sums / counts[:, np.newaxis]

    pca = IncrementalPCA(n_components=components)
    for labels, activations in batches(pca_rng, balanced=False):
        # float32 halves the SVDs' time; IncrementalPCA sums its statistics in float64.
        pca.partial_fit((activations - pitch_means[labels]).astype(np.float32))
    return GanSpace(layer=layer, components=pca.components_.astype(np.float32),
                    stds=np.sqrt(pca.explained_variance_).astype(np.float32),
                    pitch_means=pitch_means.astype(np.float32),
                    explained_variance_ratio=pca.explained_variance_ratio_.astype(np.float32),
                    pitches=model.pitches, samples=samples, seed=seed,
                    stability=np.zeros(0, np.float32), stability_seed=None,
                    weights_sha256=weights_sha256(model.generator))


def agreement(a: GanSpace, b: GanSpace, n: int = STABILITY_COMPONENTS) -> np.ndarray:
    """|cosine| between direction i of `a` and of `b`, for the first n (a sign flip is
    the same direction)."""
    n = min(n, a.num_components, b.num_components)
    return np.abs(np.sum(a.components[:n] * b.components[:n], axis=1)).astype(np.float32)


# The command ------------------------------------------------------------------------------

PROGRESS_INTERVAL_S = 10.0


class Progress:
    """Latents done out of `total` on `stream`: a tqdm bar on a terminal; anywhere else
    (a log file, a pipe, a batch job) tqdm's own status text as one line every
    PROGRESS_INTERVAL_S seconds, and at the end."""

    def __init__(self, total: int, stream: TextIO):
        from tqdm import tqdm

        self.total, self.done, self.stream = total, 0, stream
        self.start = self.last = time.monotonic()
        self.bar = (tqdm(total=total, unit="latent", unit_scale=True, desc="latents",
                         file=stream, leave=False) if stream.isatty() else None)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_S or self.done >= self.total:
            from tqdm import tqdm

            self.last = now
            line = tqdm.format_meter(self.done, self.total, now - self.start, unit="latent",
                                     unit_scale=True, prefix="latents", ncols=0)
            print(f"{PROG}: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Compute a model's GANSpace timbre directions (incremental PCA of one "
                    "generator layer's pitch-centred activations over random latents) and "
                    f"write them into the model directory as {FILE}, atomically.")
    positive = validation.flag(validation.integer, int, low=1)
    parser.add_argument("--model", help="a model directory, gansynth-train run or Magenta "
                        "GANSynth training directory (default: the embedded model)")
    parser.add_argument("--layer", default=DEFAULT_LAYER,
                        help=f"generator layer, block<N>/conv0 or block<N>/conv1 "
                             f"(default {DEFAULT_LAYER})")
    parser.add_argument("--samples", type=positive, default=DEFAULT_SAMPLES,
                        help=f"random latents per pass (default {DEFAULT_SAMPLES})")
    parser.add_argument("--components", type=positive, default=DEFAULT_COMPONENTS,
                        help=f"directions to keep (default {DEFAULT_COMPONENTS})")
    parser.add_argument("--seed", type=validation.flag(validation.integer, int, low=0,
                                                       high=validation.MAX_SEED), default=0,
                        help="seed of the random latents and pitches (default 0)")
    parser.add_argument("--batch", type=positive, default=DEFAULT_BATCH,
                        help=f"latents per PCA step (default {DEFAULT_BATCH})")
    parser.add_argument("--no-stability", action="store_true",
                        help="skip the second computation (seed + 1) that measures how "
                             "stable the first directions are (halves the time)")
    return parser


def _run(args: argparse.Namespace) -> Path:
    from gansynth_live import model_dir

    def say(text: str) -> None:
        print(text, flush=True)

    # Without the directions: an existing ganspace.npz may be stale, which is why this runs.
    model = model_dir.load_model(args.model, with_ganspace=False)
    target = Path(args.model) if args.model else model_dir.DEFAULT_MODEL_DIR
    seeds = [args.seed] if args.no_stability else [args.seed, args.seed + 1]
    say(f"{model.name}: layer {args.layer}, {args.components} directions from "
        f"{args.samples} latents (and as many for the pitch means) per seed, seeds "
        f"{', '.join(map(str, seeds))}")
    progress = Progress(2 * args.samples * len(seeds), sys.stderr)
    start = time.monotonic()
    try:
        runs = [compute(model, layer=args.layer, samples=args.samples,
                        components=args.components, seed=seed, batch=args.batch,
                        progress=progress) for seed in seeds]
    finally:
        progress.close()
    result = runs[0]
    if len(runs) > 1:
        result = dataclasses.replace(result, stability=agreement(*runs),
                                     stability_seed=seeds[1])
    say(f"direction  variance      std" + (f"  |cos| seeds {seeds[0]}, {seeds[1]}"
                                          if len(runs) > 1 else ""))
    for i in range(result.num_components):
        cosine = f"  {result.stability[i]:.3f}" if i < len(result.stability) else ""
        say(f"{i + 1:>9}  {100 * result.explained_variance_ratio[i]:>7.2f}%  "
            f"{result.stds[i]:>7.4f}{cosine}")
    if len(result.stability):
        worst = float(result.stability.min())
        verdict = ("stable" if worst >= STABILITY_THRESHOLD else
                   f"NOT stable, the aim is {STABILITY_THRESHOLD}: try more --samples")
        say(f"stability: first {len(result.stability)} directions agree with |cosine| >= "
            f"{worst:.3f} ({verdict})")
    path = save(result, target)
    say(f"wrote {path} in {time.monotonic() - start:.0f} s")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """The `gansynth-ganspace` command; 0 ok, 1 bad input, 2 usage."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed on one line
        return e.code if isinstance(e.code, int) else 2
    try:
        _run(args)
    except (ValueError, OSError) as e:  # ModelLoadError is a ValueError
        print(f"{PROG}: error: {str(e).replace(chr(10), ' ')}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
