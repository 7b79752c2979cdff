"""What the first GANSpace directions of a model do, and whether notes along them stay in tune.

Meaning: along each of the first 4 directions (coefficients -2..2 in steps of 0.5, the
other coefficients 0) sound features are measured on two kinds of notes: pure
coefficient points at C2, C3, C4 and C5, and edits of 6 random latents at C3, C4 and
C5: 22 series of 9 notes per direction. Each cell gives the median over the series of
Spearman's rank correlation between coefficient and feature (+-1: monotonic), how many
series go the same way with |rho| >= 0.5, and the feature's median at -2 and at +2:

  centroid     spectral centroid, Hz (power-weighted over the audible frames)
  rolloff      frequency below which 85 % of the power lies, Hz (mean over frames)
  bandwidth    spectral bandwidth around the centroid, Hz (mean over frames)
  tilt         MFCC 1 (the cosine of the log-mel spectrum over frequency: larger is
               more of the energy low, i.e. darker)
  harmonicity  share of the power within a quarter tone of the requested pitch's
               harmonics, 0.1..0.6 s (C3 and up only: below, a 4096-point STFT does
               not resolve the harmonics)
  decay        level drop from 0.15..0.35 s to 0.65..0.85 s, dB
  attack       ms from the start until the 4 ms RMS envelope first reaches 90 % of its
               maximum
  loudness     RMS level of the whole note, dBFS

Pitch holds: every pitch of the model at coefficients -2..2 (step 0.5) along each of the
first 4 directions, as pure points and as edits of 4 random latents (coefficients
-2, -1, 1, 2); a note is in tune when pYIN's f0 is within 50 cents of the requested
pitch (training/evaluate_model.py, the README's quality measure). The 4 latents
unedited are the baseline. Accuracy per octave.

With --pictures DIR: mel spectrograms of the pure points at C4 along each direction
(coefficients -2, -1, 0, 1, 2), DIR/directions_c4.jpg, and a WAV of them in that
order, DIR/directions_c4.wav.

    python bench/ganspace_meaning.py [--model DIR] [--pictures docs/ganspace] [--jobs 1]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ for pYIN

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import gansynth_live as gl  # noqa: E402
from training.evaluate_model import octave_name, pitch_accuracy  # noqa: E402

DIRECTIONS = 4
STEPS = np.linspace(-2.0, 2.0, 9)
SHOWN = [-2.0, -1.0, 0.0, 1.0, 2.0]
PURE_PITCHES = [36, 48, 60, 72]
EDIT_PITCHES = [48, 60, 72]
EDIT_LATENTS = 6
PITCH_LATENTS = 4
FEATURES = {"centroid": "Hz", "rolloff": "Hz", "bandwidth": "Hz", "tilt": "",
            "harmonicity": "", "decay": "dB", "attack": "ms", "loudness": "dBFS"}
AGREE = 0.5  # |rho| of a series that counts as going the same way


def features(note: np.ndarray, sample_rate: int, pitch: int) -> dict[str, float]:
    import librosa

    y = np.ascontiguousarray(note, np.float32)
    power = np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2
    energy = power.sum(axis=0)
    audible = energy > energy.max() * 1e-6
    heard = power[:, audible]
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=1024)
    mel = librosa.feature.melspectrogram(S=heard, sr=sample_rate, n_mels=64)
    times = librosa.frames_to_time(np.arange(power.shape[1]), sr=sample_rate, hop_length=256)

    def level(start: float, end: float) -> float:
        return 10 * np.log10(energy[(times >= start) & (times < end)].mean() + 1e-12)

    n_fft = 4096
    start, end = int(0.1 * sample_rate), int(0.6 * sample_rate)
    held = np.abs(np.fft.rfft(y[start:end] * np.hanning(end - start), n_fft)) ** 2
    f = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    f0 = float(librosa.midi_to_hz(pitch))
    nearest = np.maximum(np.round(f / f0), 1) * f0
    harmonic = np.abs(f - nearest) <= np.maximum(nearest * (2 ** (0.5 / 12) - 1),
                                                 1.5 * sample_rate / n_fft)

    frame, hop = int(0.004 * sample_rate), int(0.001 * sample_rate)
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=False)[0]
    first = int(np.argmax(rms >= 0.9 * rms.max()))
    return {
        "centroid": float(freqs @ heard.sum(axis=1) / heard.sum()),
        "rolloff": float(librosa.feature.spectral_rolloff(S=np.sqrt(heard), sr=sample_rate,
                                                          roll_percent=0.85).mean()),
        "bandwidth": float(librosa.feature.spectral_bandwidth(S=np.sqrt(heard),
                                                              sr=sample_rate).mean()),
        "tilt": float(librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=2)[1].mean()),
        "harmonicity": float(held[harmonic].sum() / held.sum()) if pitch >= 48 else np.nan,
        "decay": level(0.15, 0.35) - level(0.65, 0.85),
        "attack": (first * hop + frame / 2) / sample_rate * 1e3,  # the frame's centre
        "loudness": float(10 * np.log10(np.mean(y ** 2) + 1e-12)),
    }


def along(model: gl.Model, direction: int, values, pitch: int, z: np.ndarray | None = None
          ) -> np.ndarray:
    """Mono notes at coefficients `values` on `direction` (the others 0), pure or edits of z."""
    c = np.zeros((len(values), direction + 1), np.float32)
    c[:, direction] = values
    latents = None if z is None else np.repeat(z[np.newaxis], len(values), axis=0)
    return model.generate(latents, pitch, ganspace=c)[..., 0]


def meaning(model: gl.Model) -> None:
    z = model.random_z(EDIT_LATENTS, seed=1)
    print(f"\n## Meaning: {len(PURE_PITCHES)} pure points + {EDIT_LATENTS} latents x "
          f"{len(EDIT_PITCHES)} pitches edited along each direction; median rho over the "
          f"series (series with |rho| >= {AGREE} the same way): median at -2 -> +2\n")
    print("| feature | " + " | ".join(f"direction {d + 1}" for d in range(DIRECTIONS)) + " |")
    print("|---|" + "---|" * DIRECTIONS)
    cells: dict[str, list[str]] = {name: [] for name in FEATURES}
    for d in range(DIRECTIONS):
        series = [(p, along(model, d, STEPS, p)) for p in PURE_PITCHES]
        series += [(p, along(model, d, STEPS, p, latent)) for p in EDIT_PITCHES for latent in z]
        measured = [[features(note, model.sample_rate, p) for note in notes]
                    for p, notes in series]
        for name in FEATURES:
            values = np.array([[f[name] for f in one] for one in measured])  # [series, step]
            values = values[~np.isnan(values).any(axis=1)]
            rhos = np.array([spearmanr(STEPS, v).statistic if np.ptp(v) > 0 else 0.0
                             for v in values])
            rho = float(np.median(rhos))
            same = int(np.sum((np.abs(rhos) >= AGREE) & (np.sign(rhos) == np.sign(rho))))
            low, high = np.median(values[:, 0]), np.median(values[:, -1])
            digits = 3 if name == "harmonicity" else 1 if name in ("tilt", "decay", "loudness") else 0
            cells[name].append(f"{rho:+.2f} ({same}/{len(values)}): "
                               f"{low:.{digits}f} -> {high:.{digits}f}")
    for name, unit in FEATURES.items():
        print(f"| {name}{f' ({unit})' if unit else ''} | " + " | ".join(cells[name]) + " |",
              flush=True)


def pitch_holds(model: gl.Model, jobs: int) -> None:
    pitches = np.array(model.pitches)
    notes, kinds = [], []
    for d in range(DIRECTIONS):
        for pitch in pitches:
            notes.append(along(model, d, STEPS, pitch))
            kinds += [("pure", pitch)] * len(STEPS)
    z = model.random_z(PITCH_LATENTS, seed=2)
    edits = np.array([-2.0, -1.0, 1.0, 2.0], np.float32)
    for pitch in pitches:
        notes.append(model.generate(z, pitch)[..., 0])
        kinds += [("unedited", pitch)] * len(z)
        for d in range(DIRECTIONS):
            for latent in z:
                notes.append(along(model, d, edits, pitch, latent))
                kinds += [("edited", pitch)] * len(edits)
    audio = np.concatenate(notes)
    requested = np.array([p for _, p in kinds])
    correct, _ = pitch_accuracy(audio, model.sample_rate, requested, jobs=jobs)
    octaves = sorted(set(pitches // 12))
    print("\n## Pitch holds: pYIN within 50 cents, per octave\n")
    print("| notes | " + " | ".join(octave_name(o * 12) for o in octaves) + " | all |")
    print("|---|" + "---|" * (len(octaves) + 1))
    for kind, label in (("pure", f"pure points, {DIRECTIONS} directions x {len(STEPS)} "
                                  f"coefficients in -2..2"),
                        ("edited", f"{PITCH_LATENTS} latents edited, {DIRECTIONS} directions "
                                   f"x coefficients -2, -1, 1, 2"),
                        ("unedited", f"the same {PITCH_LATENTS} latents unedited")):
        mask = np.array([k == kind for k, _ in kinds])
        cells = []
        for o in octaves:
            m = mask & (requested // 12 == o)
            cells.append(f"{100 * correct[m].mean():.1f} % ({m.sum()})")
        print(f"| {label} | " + " | ".join(cells) + f" | {100 * correct[mask].mean():.1f} % |",
              flush=True)


def pictures(model: gl.Model, folder: Path) -> None:
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(DIRECTIONS, len(SHOWN), figsize=(2.2 * len(SHOWN), 1.9 * DIRECTIONS),
                             sharex=True, sharey=True)
    sounds = []
    for d in range(DIRECTIONS):
        audio = along(model, d, SHOWN, 60)
        sounds.append(audio)
        for col, (note, value) in enumerate(zip(audio, SHOWN)):
            mel = librosa.feature.melspectrogram(y=note, sr=model.sample_rate, n_fft=1024,
                                                 hop_length=128, n_mels=96, fmax=8000)
            ax = axes[d, col]
            ax.imshow(librosa.power_to_db(mel, ref=1.0, top_db=80), origin="lower",
                      aspect="auto", cmap="magma", vmin=-80, vmax=0,
                      extent=[0, len(note) / model.sample_rate, 0, 96])
            ax.set_xticks([0, 0.5, 1.0])
            ax.set_yticks([])
            if d == 0:
                ax.set_title(f"c = {value:+g}")
            if col == 0:
                ax.set_ylabel(f"direction {d + 1}\nmel 0..8 kHz")
            if d == DIRECTIONS - 1:
                ax.set_xlabel("s")
    fig.suptitle(f"{model.name}: pure coefficient points at C4 along the first "
                 f"{DIRECTIONS} GANSpace directions")
    fig.tight_layout()
    fig.savefig(folder / "directions_c4.jpg", dpi=80, pil_kwargs={"quality": 85})
    soundfile.write(folder / "directions_c4.wav", np.concatenate(sounds).reshape(-1),
                    model.sample_rate, subtype="PCM_16")
    print(f"\nwrote {folder / 'directions_c4.jpg'} and {folder / 'directions_c4.wav'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model with a ganspace.npz (default: the embedded one)")
    parser.add_argument("--pictures", type=Path, help="folder for the pictures and sound")
    parser.add_argument("--jobs", type=int, default=1, help="pYIN worker processes")
    args = parser.parse_args()
    model = gl.load_model(args.model)
    if model.ganspace is None:
        sys.exit(f"{model.name} has no GANSpace directions: run gansynth-ganspace first")
    gs = model.ganspace
    print(f"{model.name}: {gs.layer}, {gs.num_components} directions from {gs.samples} "
          f"latents (seed {gs.seed}); variance share of the first {DIRECTIONS}: "
          + ", ".join(f"{100 * v:.1f} %" for v in gs.explained_variance_ratio[:DIRECTIONS]))
    meaning(model)
    pitch_holds(model, args.jobs)
    if args.pictures:
        pictures(model, args.pictures)


if __name__ == "__main__":
    main()
