"""Pictures and example sounds of a model, for its README.

    python training/showcase_model.py --model gansynth_live/models/default --out_dir docs/default_model

Writes to --out_dir (replacing these files only):
  pitches.jpg        rainbowgrams of one latent at every octave of the model's range
  interpolation.jpg  rainbowgrams of one pitch along a slerp between two latents
  pitches.wav        those notes, one every 0.6 s (16-bit mono)
  interpolation.wav  the interpolation's notes, one every 0.6 s
  arpeggio.wav       a C major arpeggio over two octaves, one note every 0.25 s, at three
                     latents in turn

A rainbowgram (Engel et al. 2017) shows the model's mel-IF image: brightness is the
log-magnitude, colour the instantaneous frequency.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

LATENT_SEEDS = (1, 2, 3)
INTERPOLATION_STEPS = 5
NOTE_SPACING_S = 0.6  # onset to onset in pitches.wav and interpolation.wav
ARPEGGIO_SPACING_S = 0.25


def octave_pitches(pitches: list[int]) -> list[int]:
    """Every C (multiple of 12) in the vocabulary, or every 12th pitch when there is none."""
    cs = [p for p in pitches if p % 12 == 0]
    return cs or pitches[::12]


def arpeggio_pitches(pitches: list[int]) -> list[int]:
    """C E G over two octaves, then the top C, from the C nearest C3 that has room."""
    roots = [p for p in pitches if p % 12 == 0 and p + 24 in pitches] or pitches[:1]
    root = min(roots, key=lambda p: abs(p - 48))
    wanted = [root + octave * 12 + step for octave in (0, 1) for step in (0, 4, 7)] + [root + 24]
    return [p for p in wanted if p in pitches]


def rainbowgram(ax, image: np.ndarray, title: str) -> None:
    """Draw one mel-IF image [frames, bins, 2] (normalised, in [-1, 1]) on `ax`."""
    from matplotlib.colors import hsv_to_rgb

    magnitude = (image[..., 0] + 1.0) / 2.0
    hue = (image[..., 1] + 1.0) / 2.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(magnitude, 0.0, 1.0)], axis=-1)
    ax.imshow(hsv_to_rgb(hsv).transpose(1, 0, 2), origin="lower", aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def figure(images: np.ndarray, titles: list[str], suptitle: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 3.0))
    for ax, image, title in zip(np.atleast_1d(axes), images, titles):
        rainbowgram(ax, image, title)
    fig.suptitle(suptitle, fontsize=10)
    fig.supxlabel("time", fontsize=8)
    fig.supylabel("mel frequency", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80, pil_kwargs={"quality": 85})  # JPEG: a tenth of the PNG
    plt.close(fig)


def normalised_images(model, z: np.ndarray, pitches: list[int]) -> np.ndarray:
    """The model's mel-IF images for (z, pitches), normalised to [-1, 1] as trained."""
    return np.asarray(model.converter.normalize(model.generate_specgrams(z, pitches)))


def note_sequence(audio: np.ndarray, sample_rate: int, spacing_s: float) -> np.ndarray:
    """Notes [N, samples, channels] mixed with onsets `spacing_s` apart (they may
    overlap, as played notes ring on), scaled to peak 0.9."""
    step = int(round(spacing_s * sample_rate))
    out = np.zeros([step * (len(audio) - 1) + audio.shape[1], audio.shape[2]], np.float32)
    for i, note in enumerate(audio):
        out[i * step:i * step + len(note)] += note
    return out * (0.9 / max(float(np.abs(out).max()), 1e-9))


def pitch_name(pitch: int) -> str:
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def showcase(model, out_dir: Path) -> list[Path]:
    """Write the pictures and WAVs of `model` into `out_dir`; return their paths."""
    import soundfile as sf

    from gansynth_live.latent import slerp

    out_dir.mkdir(parents=True, exist_ok=True)
    rate = model.sample_rate
    written = []

    def write_wav(name: str, audio: np.ndarray, spacing_s: float = NOTE_SPACING_S) -> None:
        sf.write(out_dir / name, note_sequence(audio, rate, spacing_s), rate, subtype="PCM_16")
        written.append(out_dir / name)

    z = model.random_z(1, seed=LATENT_SEEDS[0])
    octaves = octave_pitches(model.pitches)
    zs = np.repeat(z, len(octaves), axis=0)
    figure(normalised_images(model, zs, octaves), [pitch_name(p) for p in octaves],
           f"{model.name}: one latent (seed {LATENT_SEEDS[0]}) at every octave",
           out_dir / "pitches.jpg")
    written.append(out_dir / "pitches.jpg")
    write_wav("pitches.wav", model.generate(zs, octaves))

    pitch = 60 if 60 in model.pitches else model.pitches[len(model.pitches) // 2]
    z0, z1 = model.random_z(1, seed=LATENT_SEEDS[1])[0], model.random_z(1, seed=LATENT_SEEDS[2])[0]
    steps = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)
    path = slerp(z0, z1, steps).astype(np.float32)
    figure(normalised_images(model, path, [pitch] * len(steps)), [f"t = {t:.2f}" for t in steps],
           f"{model.name}: {pitch_name(pitch)} from seed {LATENT_SEEDS[1]} to seed "
           f"{LATENT_SEEDS[2]} (slerp)", out_dir / "interpolation.jpg")
    written.append(out_dir / "interpolation.jpg")
    write_wav("interpolation.wav", model.generate(path, [pitch] * len(steps)))

    notes = arpeggio_pitches(model.pitches)
    latents = np.concatenate([np.repeat(model.random_z(1, seed=s), len(notes), axis=0)
                              for s in LATENT_SEEDS])
    write_wav("arpeggio.wav", model.generate(latents, notes * len(LATENT_SEEDS)),
              ARPEGGIO_SPACING_S)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    p.add_argument("--out_dir", required=True, help="folder for the pictures and WAVs")
    args = p.parse_args(argv)
    import gansynth_live as gl

    try:
        model = gl.load_model(args.model)
    except gl.ModelLoadError as e:
        print(f"showcase_model: error: {e}", file=sys.stderr)
        return 1
    for path in showcase(model, Path(args.out_dir)):
        print(f"wrote {path} ({os.path.getsize(path):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
