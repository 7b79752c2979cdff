"""Shared by the render tests: MIDI files built with mido, tiny saved models, the embedded
default model, the CLI runner, audio measures."""
import functools

import mido
import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.render import main

SR = 16000  # the tiny preset: 1 s notes at 16 kHz
L = 16000
TPB = 480


# Helpers --------------------------------------------------------------------------------

def write_midi(path, tracks, type=1):
    """tracks: lists of (delta_ticks, message); 120 bpm unless a set_tempo says otherwise."""
    midi = mido.MidiFile(type=type, ticks_per_beat=TPB)
    for events in tracks:
        track = mido.MidiTrack()
        for delta, msg in events:
            track.append(msg.copy(time=delta))
        midi.tracks.append(track)
    midi.save(path)
    return path


def on(note, vel=100, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0):
    return mido.Message("note_off", note=note, channel=ch)


def tempo(bpm):
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    mono = gl.Model(gl.preset("tiny"), range(36, 85), name="tiny-mono")
    stereo = gl.Model(gl.preset("tiny").replace(channels=2), range(48, 73), name="tiny-stereo")
    even = gl.Model(gl.preset("tiny"), range(48, 67, 2), name="tiny-even")  # 48, 50, ..., 66
    gl.save_model(mono, root / "mono")
    gl.save_model(stereo, root / "stereo")
    gl.save_model(even, root / "even")
    return {"mono": root / "mono", "stereo": root / "stereo", "even": root / "even",
            "mono_model": mono}


@functools.lru_cache(maxsize=1)
def _default_model():
    return gl.load_model()


@pytest.fixture
def default_model():
    """The embedded default model (pitches 24..84, 1 s notes at 16 kHz), loaded once."""
    model = _default_model()
    assert (model.sample_rate, model.num_samples, model.pitches[0], model.pitches[-1]) == \
        (SR, L, 24, 84)
    return model


@pytest.fixture
def song(tmp_path):
    """Tempo map on track 0 (120 bpm, 60 bpm from 1.0 s), notes on track 1: 60 at 0.0-0.25 s
    (velocity 127) and 64 at 2.0-2.5 s (velocity 64)."""
    conductor = [(0, tempo(120)), (2 * TPB, tempo(60))]  # beat 2 = 1.0 s, then 1 s per beat
    melody = [(0, on(60, 127)), (TPB // 2, off(60)),          # 0.0 .. 0.25
              (TPB * 5 // 2, on(64, 64)), (TPB // 2, off(64))]  # beat 3 = 2.0 s .. 2.5 s
    return write_midi(tmp_path / "song.mid", [conductor, melody])


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def rms(x):
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


def db(a, b):
    return 20.0 * np.log10(a / b)


def second_difference(x):
    """|x[n+1] - 2 x[n] + x[n-1]|: large where a waveform jumps (a click)."""
    return np.abs(np.diff(np.asarray(x, np.float64), 2))


def click_ratio(clip, note):
    """The largest |second difference| of `clip` over the 99.9th percentile of that of
    `note` (the unlooped generated note): <= 1.5 means no sample of the clip jumps more
    than the note's own waveform does."""
    return float(second_difference(clip).max() / np.percentile(second_difference(note), 99.9))


def pitch_shift_cents(reference, x, sample_rate=SR):
    """How far `x` is transposed from `reference` (cents, 5-cent steps, within +-15
    semitones): the lag that best aligns their log-magnitude spectra on a log-frequency
    axis (100 Hz .. 6.4 kHz). Robust to which partial is loudest."""
    grid = 100.0 * 2.0 ** (np.arange(0, 6 * 1200, 5) / 1200.0)

    def log_spectrum(y):
        y = np.asarray(y, np.float64) * np.hanning(len(y))
        spec = np.abs(np.fft.rfft(y, 1 << 16))
        freqs = np.fft.rfftfreq(1 << 16, 1.0 / sample_rate)
        s = np.log(np.interp(grid, freqs, spec) + 1e-6)
        return s - s.mean()

    a, b = log_spectrum(reference), log_spectrum(x)
    n = len(a)
    lags = np.arange(-300, 301)
    score = [np.dot(a[max(0, -k):n - max(0, k)], b[max(0, k):n - max(0, -k)]) / (n - abs(k))
             for k in lags]
    return int(lags[int(np.argmax(score))]) * 5
