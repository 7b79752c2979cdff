"""Shared by the render tests: MIDI files built with mido, tiny saved models, the CLI runner."""
import mido
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
    gl.save_model(mono, root / "mono")
    gl.save_model(stereo, root / "stereo")
    return {"mono": root / "mono", "stereo": root / "stereo", "mono_model": mono}


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
