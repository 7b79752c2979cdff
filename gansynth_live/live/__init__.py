"""Real-time GANSynth: timbre cache + render worker, voices + mixer, audio, OSC and MIDI.

    engine.py     control API and the render planner (what a played note goes through)
    timbre.py     four anchors, the (x, y) position and the grid of cached points
    cache.py      rendered notes by (grid point, pitch), memory budget, stand-ins on a miss
    worker.py     the render thread (batches, resampling to the device rate)
    voices.py     voices and the mixer: the audio callback's code
    audio.py      the sounddevice stream and the --record writer
    osc.py        the OSC server
    midi_input.py MIDI input (mido + python-rtmidi)
    cli.py        gansynth-live
"""
from gansynth_live.live.engine import Engine

__all__ = ["Engine"]
