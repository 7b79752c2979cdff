"""Render NSynth-style single notes from a General MIDI soundfont with FluidSynth.

Used by the tests (real instrument audio instead of sines) and by the recipe that
builds the bundled model's training set. A note is held for `hold_fraction` of the
clip and then released, as NSynth notes are (3 s held of 4 s).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import mido
import numpy as np
import soundfile as sf

TIMGM6MB = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3_GM = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def _write_note_midi(path: str, program: int, pitch: int, velocity: int,
                     hold_s: float, total_s: float) -> None:
    ticks_per_beat = 480
    # 120 bpm -> one beat is 0.5 s, so one second is 960 ticks.
    ticks_per_s = 2 * ticks_per_beat
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=500_000, time=0),
        mido.Message("program_change", channel=0, program=program, time=0),
        mido.Message("note_on", channel=0, note=pitch, velocity=velocity, time=0),
        mido.Message("note_off", channel=0, note=pitch, velocity=0,
                     time=round(hold_s * ticks_per_s)),
        mido.MetaMessage("end_of_track", time=round((total_s - hold_s) * ticks_per_s)),
    ])
    mido.MidiFile(ticks_per_beat=ticks_per_beat, tracks=[track]).save(path)


def render_note(program: int, pitch: int, *, velocity: int = 100,
                sample_rate: int = 16000, num_samples: int = 64000,
                hold_fraction: float = 0.75, gain: float = 1.0,
                soundfont: str = TIMGM6MB) -> np.ndarray:
    """Render one note as float32 mono samples in [-1, 1], exactly `num_samples` long.

    `program` is the 0-based General MIDI program, `pitch` the MIDI note number.
    Reverb and chorus are off so the note is dry; rendering is deterministic.
    """
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth is not installed (Debian package 'fluidsynth')")
    if not os.path.exists(soundfont):
        raise FileNotFoundError(f"soundfont not found: {soundfont}")
    total_s = num_samples / sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        midi_path = os.path.join(tmp, "note.mid")
        wav_path = os.path.join(tmp, "note.wav")
        _write_note_midi(midi_path, program, pitch, velocity, hold_fraction * total_s, total_s)
        subprocess.run(
            ["fluidsynth", "-q", "-n", "-i", "-R", "0", "-C", "0", "-g", str(gain),
             "-r", str(sample_rate), "-T", "wav", "-O", "float",
             "-F", wav_path, soundfont, midi_path],
            check=True, capture_output=True)
        stereo, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth rendered at {rate} Hz, asked for {sample_rate} Hz")
    mono = stereo.mean(axis=1)
    out = np.zeros(num_samples, np.float32)
    n = min(num_samples, len(mono))
    out[:n] = mono[:n]
    return np.clip(out, -1.0, 1.0)
