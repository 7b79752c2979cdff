"""Shared pieces of the training tests: real soundfont notes and a small architecture.

Cost on a CPU is set by the spectrogram's pixel count, about 2 x the note length in
samples, and by tf.function tracing (one per training stage). The tests therefore train
on 512-sample notes (32 ms at 16 kHz) with a 16 x 64 mel-IF image and two resolutions
(start 8 x 32): three progressive stages, a few tenths of a second per batch of 8.
"""
from __future__ import annotations

import os

import soundfile as sf

from training.soundfont import render_note

SAMPLE_RATE = 16000
NOTE_SAMPLES = 512
# Architecture hparams for --config tiny: mel-IF 16 x 64 (n_fft 128, hop 32: 608 samples max).
TINY_ARCHITECTURE = {"num_resolutions": 2, "start_height": 8, "start_width": 32,
                     "audio_length": NOTE_SAMPLES / SAMPLE_RATE}  # seconds (< 1000)
INSTRUMENTS = {"piano": 0, "violin": 40}  # General MIDI programs (TimGM6mb)
PITCHES = (60, 62, 64, 65)


def render_note_folder(folder, num_samples: int = NOTE_SAMPLES, instruments=None,
                       pitches=PITCHES) -> list[str]:
    """Write <instrument>_<pitch>.wav notes (16-bit PCM) rendered with fluidsynth."""
    os.makedirs(folder, exist_ok=True)
    names = []
    for name, program in (instruments or INSTRUMENTS).items():
        for pitch in pitches:
            audio = render_note(program, pitch, num_samples=num_samples, sample_rate=SAMPLE_RATE)
            assert abs(audio).max() > 1e-3, f"{name} {pitch} rendered silent"
            path = os.path.join(folder, f"{name}_{pitch}.wav")
            sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
            names.append(os.path.basename(path))
    return names
