"""Quality metrics for a GANSynth model, compared with the same metrics on its training data.

    python training/evaluate_model.py --model path/to/model --dataset data/fluidr3_1s
    python training/evaluate_model.py --dataset data/fluidr3_1s --data_only   # data alone

Pitch accuracy: the fraction of notes whose f0, estimated with librosa's pYIN, is
within 50 cents of the requested pitch. pYIN searches +-24 semitones around the
requested pitch (clipped to what the frame length and the Nyquist frequency allow);
the note's f0 is the median over the voiced frames centred in 0.1..0.6 s (the held
part of the note, after the attack; what the note has of it when shorter); a note
with fewer than half of those frames voiced counts as unvoiced, i.e. wrong. The model is evaluated at ``--latents`` random latent vectors x every pitch
(the same latents at every pitch), and the table breaks the accuracy down by octave.

Timbre diversity: at each pitch, the mean pairwise Euclidean distance between the
notes' mean MFCCs (coefficients 1..19; c0, the level, left out) and the standard
deviation of their spectral centroids in octaves; both averaged over the pitches.
For the model the notes at one pitch are its latents; for the data, its instruments.

The analysis runs in ``--jobs`` worker processes (default: every core).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from gansynth_live.quiet_tensorflow import import_tensorflow

TOLERANCE_CENTS = 50.0
SEARCH_SEMITONES = 24
WINDOW_S = (0.1, 0.6)
FRAME_S = 0.128            # pYIN frame: 2048 samples at 16 kHz (4 periods of C1)
HOP_S = 0.032              # 512 samples at 16 kHz (0.016 gives the same results, 2x slower)
MIN_VOICED_FRACTION = 0.5  # of the frames in the window; fewer -> "unvoiced", wrong
GROUP_SIZE = 32            # notes per pYIN call (one call per requested pitch and chunk)
N_MFCC = 20


# ----------------------------------------------------------------------------- per note

@dataclass(frozen=True)
class NoteAnalysis:
    estimated_midi: float       # NaN when unvoiced
    voiced_fraction: float      # of the frames in the analysis window
    mfcc: np.ndarray            # mean MFCC 1..N_MFCC-1 over the note's audible frames
    log2_centroid: float        # mean spectral centroid, log2 Hz (NaN when silent)


def _pow2_at_least(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def pyin_settings(sample_rate: int, pitch: float) -> dict:
    """Frame, hop and f0 search range for one requested pitch."""
    import librosa

    frame_length = _pow2_at_least(FRAME_S * sample_rate)
    hop_length = max(1, round(HOP_S * sample_rate))
    fmin = float(librosa.midi_to_hz(pitch - SEARCH_SEMITONES))
    fmax = float(librosa.midi_to_hz(pitch + SEARCH_SEMITONES))
    # Two periods of fmin must fit in a frame, and fmax must stay below Nyquist.
    fmin = max(fmin, 2.0 * sample_rate / frame_length * 1.001)
    fmax = min(fmax, 0.5 * sample_rate * 0.99)
    return dict(frame_length=frame_length, hop_length=hop_length, fmin=fmin, fmax=fmax)


def window_frames(num_samples: int, sample_rate: int, hop_length: int) -> tuple[int, int]:
    """[first, last) frame indices (centred frames) used for the note's f0.

    0.1..0.6 s normally; the part of that the note has when it is shorter; the whole
    note when it is shorter than the window's start.
    """
    duration = num_samples / sample_rate
    start, end = WINDOW_S
    if duration <= start:
        start, end = 0.0, duration
    end = min(end, duration)
    first = math.ceil(start * sample_rate / hop_length)
    last = math.floor(end * sample_rate / hop_length) + 1
    return first, max(last, first + 1)


def estimate_pitches(notes: np.ndarray, sample_rate: int, pitch: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(estimated MIDI pitch or NaN [k], voiced fraction [k]) of k mono notes [k, samples]
    all requested at `pitch` (one pYIN call for all of them: same search range)."""
    import librosa

    notes = np.atleast_2d(np.asarray(notes, np.float32))
    est = np.full(len(notes), math.nan)
    fraction = np.zeros(len(notes))
    s = pyin_settings(sample_rate, pitch)
    first, last = window_frames(notes.shape[1], sample_rate, s["hop_length"])
    if s["fmin"] >= s["fmax"] or len(notes) == 0:
        return est, fraction
    # Only the window's frames are decoded (pYIN's Viterbi dominates the cost). Frame i
    # is centred on sample i * hop: cut exactly those frames out when the note has room
    # for them, else let pYIN zero-pad the ends and drop the frames outside the window.
    hop, half = s["hop_length"], s["frame_length"] // 2
    lo, hi = first * hop - half, (last - 1) * hop - half + s["frame_length"]
    if lo >= 0 and hi <= notes.shape[1]:
        y, center, keep = notes[:, lo:hi], False, slice(None)
    else:
        y, center, keep = notes[:, :min(notes.shape[1], hi)], True, slice(first, last)
    y = np.ascontiguousarray(y)
    audible = np.any(y != 0, axis=1)
    if not audible.any():
        return est, fraction
    f0, voiced, _ = librosa.pyin(y[audible], sr=sample_rate, center=center, **s)
    f0, voiced = f0[:, keep], voiced[:, keep]
    for row, i in enumerate(np.flatnonzero(audible)):
        fraction[i] = voiced[row].mean() if voiced.shape[1] else 0.0
        if voiced[row].any() and fraction[i] >= MIN_VOICED_FRACTION:
            est[i] = librosa.hz_to_midi(np.median(f0[row][voiced[row]]))
    return est, fraction


def timbre_features(note: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """(mean MFCC 1..N_MFCC-1, mean log2 spectral centroid) over the audible frames."""
    import librosa

    n_fft = _pow2_at_least(0.064 * sample_rate)
    hop = n_fft // 4
    y = np.ascontiguousarray(note, dtype=np.float32)
    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2
    energy = power.sum(axis=0)
    audible = energy > energy.max() * 1e-6 if energy.max() > 0 else np.zeros_like(energy, bool)
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=64)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=N_MFCC)[1:]
    if not audible.any():
        return mfcc.mean(axis=1), math.nan
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    centroid = (freqs[:, None] * power).sum(axis=0)[audible] / energy[audible]
    log2_centroid = float(np.log2(np.maximum(centroid, 1.0)).mean())
    return mfcc[:, audible].mean(axis=1), log2_centroid


def analyze_group(args: tuple[np.ndarray, int, float, bool, bool]) -> list[NoteAnalysis]:
    """Analyse notes [k, samples] that share one requested pitch."""
    notes, sample_rate, pitch, want_pitch, want_timbre = args
    if want_pitch:
        est, fraction = estimate_pitches(notes, sample_rate, pitch)
    else:
        est, fraction = np.full(len(notes), math.nan), np.zeros(len(notes))
    out = []
    for i, note in enumerate(notes):
        mfcc, cent = timbre_features(note, sample_rate) if want_timbre else (np.zeros(0), math.nan)
        out.append(NoteAnalysis(float(est[i]), float(fraction[i]), mfcc, cent))
    return out


# ----------------------------------------------------------------------------- batches

def as_mono(audio: np.ndarray) -> np.ndarray:
    """(B, samples) or (B, samples, channels) or one (samples,) note -> (B, samples)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        return audio[np.newaxis]
    if audio.ndim == 3:
        return audio.mean(axis=2)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (B, samples[, channels]), got shape {audio.shape}")
    return audio


# Importing librosa's pitch module compiles numba kernels (not cached: seconds of CPU).
# It is done once per pool (in the parent, or in the fork server), not once per worker.
_PRELOAD = ["librosa.core.pitch", "librosa.feature", "training.evaluate_model"]


def _pool_context():
    """fork when it is safe (fast: no re-imports); once TensorFlow is loaded, whose
    thread pools must not be forked, workers fork from a clean fork server instead
    (which, as usual for multiprocessing, needs the caller's ``__main__`` guard)."""
    import importlib

    methods = multiprocessing.get_all_start_methods()
    if "tensorflow" not in sys.modules and "fork" in methods:
        for name in _PRELOAD:
            importlib.import_module(name)
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
        return context
    return multiprocessing.get_context("spawn")


def analyze_notes(audio, sample_rate: int, pitches, *, jobs: int | None = 1,
                  pitch: bool = True, timbre: bool = True,
                  progress: str | None = None) -> list[NoteAnalysis]:
    """Analyse every note, grouped by requested pitch; with ``jobs`` > 1 in that many
    worker processes; with a progress bar labelled ``progress`` if given."""
    from tqdm import tqdm

    audio = as_mono(audio)
    pitches = np.broadcast_to(np.asarray(pitches, np.float64).reshape(-1), (len(audio),))
    groups = [np.flatnonzero(pitches == p) for p in np.unique(pitches)]
    # Split big groups so that every worker gets a share even when few pitches are asked.
    groups = [g[i:i + GROUP_SIZE] for g in groups for i in range(0, len(g), GROUP_SIZE)]
    work = [(audio[g], int(sample_rate), float(pitches[g[0]]), pitch, timbre) for g in groups]
    jobs = min(jobs or os.cpu_count() or 1, len(work))
    bar = dict(total=len(work), unit="group", desc=progress, file=sys.stderr,
               disable=progress is None)
    if jobs <= 1:
        results = [analyze_group(w) for w in tqdm(work, **bar)]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context()) as pool:
            results = list(tqdm(pool.map(analyze_group, work), **bar))
    out: list[NoteAnalysis | None] = [None] * len(audio)
    for g, notes in zip(groups, results):
        for i, note in zip(g, notes):
            out[i] = note
    return out


def cents_error(estimated_midi: np.ndarray, requested) -> np.ndarray:
    return 100.0 * (np.asarray(estimated_midi, np.float64) - np.asarray(requested, np.float64))


def pitch_accuracy(audio, sample_rate: int, requested_pitches, *,
                   jobs: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per note: (correct bool [B], estimated MIDI pitch float [B], NaN when unvoiced).

    ``audio``: (B, samples[, channels]) or one note; ``requested_pitches``: B MIDI notes
    (or one for all). Correct means within 50 cents of the requested pitch.
    """
    audio = as_mono(audio)
    requested = np.broadcast_to(np.asarray(requested_pitches, np.float64).reshape(-1),
                                (len(audio),))
    notes = analyze_notes(audio, sample_rate, requested, jobs=jobs, timbre=False)
    return _judge(notes, requested)


def _judge(notes: list[NoteAnalysis], requested) -> tuple[np.ndarray, np.ndarray]:
    est = np.array([n.estimated_midi for n in notes], np.float64)
    with np.errstate(invalid="ignore"):
        correct = np.abs(cents_error(est, requested)) <= TOLERANCE_CENTS
    return correct & np.isfinite(est), est


def _diversity(notes: list[NoteAnalysis], pitches) -> dict:
    pitches = np.asarray(pitches).reshape(-1)
    mfcc_d, spread = [], []
    for p in np.unique(pitches):
        group = [notes[i] for i in np.flatnonzero(pitches == p)]
        if len(group) < 2:
            continue
        feats = np.stack([n.mfcc for n in group])
        diff = feats[:, None, :] - feats[None, :, :]
        dist = np.sqrt((diff ** 2).sum(axis=-1))
        mfcc_d.append(dist[np.triu_indices(len(group), 1)].mean())
        cents = np.array([n.log2_centroid for n in group])
        cents = cents[np.isfinite(cents)]
        spread.append(cents.std() if len(cents) >= 2 else 0.0)
    if not mfcc_d:
        return {"mfcc_distance": math.nan, "centroid_spread_octaves": math.nan, "pitches": 0}
    return {"mfcc_distance": float(np.mean(mfcc_d)),
            "centroid_spread_octaves": float(np.mean(spread)),
            "pitches": len(mfcc_d)}


def timbre_diversity(audio, sample_rate: int, pitches, *, jobs: int | None = 1) -> dict:
    """How different the notes at the same pitch sound, averaged over the pitches.

    Returns ``mfcc_distance`` (mean pairwise distance of the notes' mean MFCC 1..19),
    ``centroid_spread_octaves`` (std of their mean spectral centroid, in octaves) and
    ``pitches`` (how many pitches had at least two notes).
    """
    audio = as_mono(audio)
    pitches = np.broadcast_to(np.asarray(pitches).reshape(-1), (len(audio),))
    notes = analyze_notes(audio, sample_rate, pitches, jobs=jobs, pitch=False)
    return _diversity(notes, pitches)


# ----------------------------------------------------------------------------- reports

def octave_name(pitch: int) -> str:
    return f"C{pitch // 12 - 1}"


def evaluate_audio(audio, sample_rate: int, pitches, *, jobs: int | None = None,
                   progress: str | None = None) -> dict:
    """All metrics for a batch of notes: accuracy overall and per octave, diversity."""
    audio = as_mono(audio)
    pitches = np.asarray(pitches, np.int64).reshape(-1)
    start = time.monotonic()
    notes = analyze_notes(audio, sample_rate, pitches, jobs=jobs, progress=progress)
    seconds = time.monotonic() - start
    correct, est = _judge(notes, pitches)
    per_octave = {}
    for octave in sorted(set(pitches // 12)):
        mask = pitches // 12 == octave
        name = octave_name(int(octave) * 12)
        per_octave[name] = {
            "pitches": [int(pitches[mask].min()), int(pitches[mask].max())],
            "notes": int(mask.sum()), "correct": int(correct[mask].sum()),
            "accuracy": float(correct[mask].mean()),
        }
    voiced = np.array([n.voiced_fraction for n in notes])
    with np.errstate(invalid="ignore"):
        err = np.abs(cents_error(est, pitches))
    return {
        "notes": int(len(pitches)),
        "pitches": [int(pitches.min()), int(pitches.max())],
        "correct": int(correct.sum()),
        "accuracy": float(correct.mean()),
        "per_octave": per_octave,
        "unvoiced": int(np.isnan(est).sum()),
        "median_abs_cents_error": float(np.nanmedian(err)) if np.isfinite(err).any() else None,
        "mean_voiced_fraction": float(voiced.mean()),
        "per_pitch": {str(int(p)): float(correct[pitches == p].mean())
                      for p in np.unique(pitches)},
        "diversity": _diversity(notes, pitches),
        "analysis_seconds": seconds,
    }


def _cell(result: dict | None, octave: str | None = None) -> str:
    if result is None:
        return "-"
    r = result if octave is None else result["per_octave"].get(octave)
    if r is None:
        return "-"
    return f"{100 * r['accuracy']:.1f} % ({r['correct']}/{r['notes']})"


def markdown_table(model: dict | None, data: dict | None, *, latents: int | None = None) -> str:
    """The pitch-accuracy and diversity tables, model next to training data."""
    columns = [(name, r) for name, r in (("Model", model), ("Training data", data)) if r]
    octaves = sorted({o for _, r in columns for o in r["per_octave"]},
                     key=lambda o: int(o[1:]))
    lines = []
    what = "Pitch accuracy (pYIN f0 within 50 cents of the requested pitch"
    if model is not None and latents:
        what += f"; model: {latents} random latents x each pitch"
    lines.append(what + ")")
    lines.append("")
    lines.append("| Octave | Pitches | " + " | ".join(n for n, _ in columns) + " |")
    lines.append("|---|---|" + "---|" * len(columns))
    for o in octaves:
        spans = [r["per_octave"][o]["pitches"] for _, r in columns if o in r["per_octave"]]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        pitches = f"{lo}-{hi}" if lo != hi else str(lo)
        lines.append(f"| {o} | {pitches} | " + " | ".join(_cell(r, o) for _, r in columns) + " |")
    lo = min(r["pitches"][0] for _, r in columns)
    hi = max(r["pitches"][1] for _, r in columns)
    lines.append(f"| **All** | {lo}-{hi} | " + " | ".join(f"**{_cell(r)}**" for _, r in columns)
                 + " |")
    lines.append("")
    lines.append("| Timbre diversity (same pitch, mean over pitches) | "
                 + " | ".join(n for n, _ in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    lines.append("| MFCC distance between notes (mean pairwise, c1..c19) | "
                 + " | ".join(f"{r['diversity']['mfcc_distance']:.1f}" for _, r in columns)
                 + " |")
    lines.append("| Spectral-centroid spread (std, octaves) | "
                 + " | ".join(f"{r['diversity']['centroid_spread_octaves']:.3f}"
                              for _, r in columns) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- inputs

def parse_pitch_list(tokens: list[str]) -> list[int]:
    """``["24-35", "48", "60"]`` -> sorted distinct pitches."""
    out: set[int] = set()
    for token in tokens:
        lo, sep, hi = token.partition("-")
        try:
            if sep:
                out.update(range(int(lo), int(hi) + 1))
            else:
                out.add(int(token))
        except ValueError:
            raise ValueError(f"--pitches: {token!r} is not a MIDI pitch or LO-HI range") from None
    return sorted(out)


def generate_model_notes(model, pitches: list[int], latents: int, seed: int):
    """(audio [P * latents, samples, channels], pitches [P * latents]): same z per pitch."""
    from tqdm import tqdm

    z = model.random_z(latents, seed)
    chunks = []
    for p in tqdm(pitches, unit="pitch", desc="generating", file=sys.stderr):
        chunks.append(model.generate(z, [p] * latents))
    return np.concatenate(chunks), np.repeat(np.asarray(pitches, np.int64), latents)


def _tfrecord_sample_rate(path: str, files: list[str]) -> int:
    tf = import_tensorflow()

    for serialized in tf.data.TFRecordDataset(files[:1]).take(1):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        if "sample_rate" in feature:
            return int(feature["sample_rate"].int64_list.value[0])
    raise ValueError(f"cannot tell the sample rate of {path}")


def load_dataset_notes(path: str, pitches: list[int] | None = None):
    """(audio [N, samples], pitches [N], sample_rate) of a dataset dir, .tfrecord or WAV
    folder; only the notes at `pitches` when given."""
    from training import dataset as ds

    is_wav_folder = (os.path.isdir(path) and not os.path.exists(os.path.join(path, ds.INFO_FILE))
                     and not any(n.endswith(".tfrecord") for n in os.listdir(path)))
    if is_wav_folder:
        import soundfile as sf

        wavs = sorted(n for n in os.listdir(path) if ds.is_wav_name(n) and not n.startswith("."))
        if not wavs:
            raise ValueError(f"{path}: no dataset.json, .tfrecord or .wav files")
        info = sf.info(os.path.join(path, wavs[0]))
        sample_rate = info.samplerate
        data = ds.load_wav_folder(path, sample_rate, info.frames, info.channels, (0, 127))
    else:
        files, info = ds._record_files(path)
        sample_rate = info.get("sample_rate") or _tfrecord_sample_rate(path, files)
        data = ds.read_dataset(path)
    audio, labels = [], []
    wanted = set(pitches) if pitches else None
    for x, p in data.as_numpy_iterator():
        if wanted is None or int(p) in wanted:
            audio.append(x.mean(axis=1))
            labels.append(int(p))
    if not audio:
        raise ValueError(f"{path}: no notes at the evaluated pitches")
    return np.stack(audio), np.asarray(labels, np.int64), int(sample_rate)


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Pitch accuracy and timbre diversity of a GANSynth "
                                            "model and of its training data.")
    p.add_argument("--model", default=None,
                   help="model directory (default: the embedded default model)")
    p.add_argument("--latents", type=int, default=20,
                   help="random latent vectors per pitch (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0)")
    p.add_argument("--pitches", nargs="+", default=None, metavar="P",
                   help="evaluate only these pitches (e.g. 48 60 72, or 24-35); "
                        "default: every pitch of the model (or of the dataset)")
    p.add_argument("--dataset", default=None,
                   help="training data to compare with: a make_dataset folder, a .tfrecord, "
                        "or a folder of <instrument>_<pitch>.wav")
    p.add_argument("--data_only", action="store_true",
                   help="evaluate only --dataset, no model")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="analysis processes (default %(default)s)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.latents < 1:
        p.error("--latents must be at least 1")
    if args.data_only and not args.dataset:
        p.error("--data_only needs --dataset")
    try:
        args.pitch_list = parse_pitch_list(args.pitches) if args.pitches else None
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    results: dict = {"settings": {
        "tolerance_cents": TOLERANCE_CENTS, "search_semitones": SEARCH_SEMITONES,
        "window_s": list(WINDOW_S), "min_voiced_fraction": MIN_VOICED_FRACTION,
        "latents": args.latents, "seed": args.seed, "jobs": args.jobs}}
    model_result = data_result = None
    pitches = args.pitch_list
    if not args.data_only:
        import gansynth_live as gl

        try:
            model = gl.load_model(args.model)
        except (gl.ModelLoadError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if pitches is None:
            pitches = list(model.pitches)
        missing = [p for p in pitches if p not in model.pitches]
        if missing:
            print(f"error: pitches {missing} are not in the model's vocabulary "
                  f"{model.pitches[0]}..{model.pitches[-1]}", file=sys.stderr)
            return 1
        start = time.monotonic()
        audio, labels = generate_model_notes(model, pitches, args.latents, args.seed)
        gen_s = time.monotonic() - start
        print(f"generated {len(labels)} notes ({args.latents} latents x {len(pitches)} pitches) "
              f"in {gen_s:.1f} s", file=sys.stderr)
        model_result = evaluate_audio(audio, model.sample_rate, labels, jobs=args.jobs,
                                      progress="analysing model notes")
        model_result.update(name=model.name, sample_rate=model.sample_rate,
                            generation_seconds=gen_s)
        print(f"analysed {len(labels)} model notes in {model_result['analysis_seconds']:.1f} s "
              f"({args.jobs} processes)", file=sys.stderr)
        results["model"] = model_result
    if args.dataset:
        try:
            audio, labels, rate = load_dataset_notes(args.dataset, pitches)
        except Exception as e:  # DatasetError, ValueError, TF's errors for bad records
            print(f"error: --dataset {args.dataset}: {e}", file=sys.stderr)
            return 1
        data_result = evaluate_audio(audio, rate, labels, jobs=args.jobs,
                                     progress="analysing dataset notes")
        data_result.update(path=args.dataset, sample_rate=rate)
        print(f"analysed {len(labels)} dataset notes in {data_result['analysis_seconds']:.1f} s "
              f"({args.jobs} processes)", file=sys.stderr)
        results["dataset"] = data_result
    print(markdown_table(model_result, data_result,
                         latents=None if args.data_only else args.latents))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    # Run the importable module's main, so that worker processes find the analysis
    # functions in training.evaluate_model (preloaded) rather than re-running this script.
    from training.evaluate_model import main as _main
    sys.exit(_main())
